//! The tables of the export (`contract.md` section 1): their names and
//! columns.

/// One table of the export: a delta batch's `table` field, an export
/// file's name. Parsed once ([`Table::parse`]), matched exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Persons,
    Certificates,
    RevokedCertificates,
    Insurance,
    ElderlyCertificates,
    LimitCertificates,
    SpecificDiseaseCertificates,
    Assistance,
    Tickets,
    ReferenceNumbers,
    Consents,
}

/// The columns of a table.
#[derive(Debug)]
struct Spec {
    required: &'static [&'static str],
    optional: &'static [&'static str],
    /// The columns that identify a row (delta deletes, uniqueness).
    key: &'static [&'static str],
}

impl Table {
    /// Every table in dependency order: parents before the rows that
    /// refer to them (the order a compile reads them in).
    pub const ALL: [Table; 11] = [
        Table::Persons,
        Table::RevokedCertificates,
        Table::Certificates,
        Table::Insurance,
        Table::ElderlyCertificates,
        Table::LimitCertificates,
        Table::SpecificDiseaseCertificates,
        Table::Assistance,
        Table::Tickets,
        Table::ReferenceNumbers,
        Table::Consents,
    ];

    /// Name in delta batches (`persons`), file name without `.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Persons => "persons",
            Table::Certificates => "certificates",
            Table::RevokedCertificates => "revoked_certificates",
            Table::Insurance => "insurance",
            Table::ElderlyCertificates => "elderly_certificates",
            Table::LimitCertificates => "limit_certificates",
            Table::SpecificDiseaseCertificates => "specific_disease_certificates",
            Table::Assistance => "assistance",
            Table::Tickets => "tickets",
            Table::ReferenceNumbers => "reference_numbers",
            Table::Consents => "consents",
        }
    }

    /// The table named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn required(self) -> &'static [&'static str] {
        self.spec().required
    }

    pub fn optional(self) -> &'static [&'static str] {
        self.spec().optional
    }

    /// The columns that identify a row (delta deletes, uniqueness).
    pub fn key(self) -> &'static [&'static str] {
        self.spec().key
    }

    pub fn file_name(self) -> String {
        format!("{}.csv", self.name())
    }

    pub fn knows(self, column: &str) -> bool {
        self.required().contains(&column) || self.optional().contains(&column)
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// By `Table as usize`: the enum's declaration order.
static SPECS: [Spec; 11] = [
    Spec {
        required: &["person_id", "name", "sex", "birth_date"],
        optional: &["name_kana", "other_name", "other_name_kana", "address", "post_number"],
        key: &["person_id"],
    },
    Spec {
        required: &["serial_number", "processing_number", "person_id", "valid_from", "valid_to"],
        optional: &[],
        key: &["serial_number", "person_id"],
    },
    Spec { required: &["serial_number", "revoked_at"], optional: &[], key: &["serial_number"] },
    Spec {
        required: &[
            "qualification_id",
            "person_id",
            "insurer_number",
            "card_number",
            "card_classification",
            "personal_family",
            "insurer_name",
            "qualification_date",
        ],
        optional: &[
            "card_symbol",
            "branch_number",
            "insured_name",
            "disqualification_date",
            "reason_of_loss",
            "card_issue_date",
            "card_valid_from",
            "card_valid_to",
            "contribution_ratio",
            "preschool",
        ],
        key: &["qualification_id"],
    },
    Spec {
        required: &["qualification_id", "valid_from", "valid_to", "contribution_ratio"],
        optional: &["issue_date"],
        key: &["qualification_id"],
    },
    Spec {
        required: &["qualification_id", "classification", "category", "valid_from", "valid_to"],
        optional: &["issue_date", "long_term_date"],
        key: &["qualification_id"],
    },
    Spec {
        required: &["qualification_id", "category", "valid_from"],
        optional: &["issue_date", "valid_to", "self_pay"],
        key: &["qualification_id", "category"],
    },
    Spec {
        required: &["assistance_id", "person_id", "payer_number", "recipient_number", "welfare_office", "start_date"],
        optional: &["end_date"],
        key: &["assistance_id"],
    },
    Spec {
        required: &["ticket_id", "assistance_id", "ticket_type", "treatment_month", "valid_from", "valid_to", "institution_code"],
        optional: &[
            "issue_number",
            "institution_name",
            "treatment_type",
            "self_pay",
            "injury_name_1",
            "injury_name_2",
            "injury_name_3",
            "single_or_combined",
            "social_insurance",
            "consistency_flag",
            "infectious_disease",
            "elderly_medical_care",
            "prefectural_expenses",
            "prescriber_code",
            "prescriber_name",
            "district_contact",
            "handling_contact",
            "remarks_1",
            "remarks_2",
            "remarks_3",
        ],
        key: &["ticket_id"],
    },
    Spec { required: &["institution_code", "person_id", "reference_number"], optional: &[], key: &["institution_code", "person_id"] },
    Spec {
        required: &["institution_code", "person_id", "kind", "consented_at"],
        optional: &["expires_at"],
        key: &["institution_code", "person_id", "kind"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_parses_from_its_name_and_keys_on_its_columns() {
        for t in Table::ALL {
            assert_eq!(Table::parse(t.name()), Some(t));
            assert_eq!(t.to_string(), t.name());
            assert!(t.key().iter().all(|c| t.required().contains(c)), "{t}: key columns are required columns");
        }
        assert_eq!(Table::parse("person"), None);
        assert_eq!((Table::Persons.key(), Table::Consents.key()), (&["person_id"][..], &["institution_code", "person_id", "kind"][..]));
    }
}
