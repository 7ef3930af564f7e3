//! The files of the export, their columns in the order written, and the
//! index of each file in [`FILES`] (what `Out::emit` takes).

/// The files of the export and their columns, in the order written.
#[rustfmt::skip]
pub const FILES: [(&str, &[&str]); 11] = [
    ("persons.csv", &["person_id", "name", "name_kana", "other_name", "other_name_kana", "sex", "birth_date", "address", "post_number"]),
    ("certificates.csv", &["serial_number", "processing_number", "person_id", "valid_from", "valid_to"]),
    ("revoked_certificates.csv", &["serial_number", "revoked_at"]),
    ("insurance.csv", &[
        "qualification_id", "person_id", "insurer_number", "card_symbol", "card_number", "branch_number",
        "card_classification", "personal_family", "insured_name", "insurer_name", "qualification_date",
        "disqualification_date", "reason_of_loss", "card_issue_date", "card_valid_from", "card_valid_to",
        "contribution_ratio", "preschool",
    ]),
    ("elderly_certificates.csv", &["qualification_id", "issue_date", "valid_from", "valid_to", "contribution_ratio"]),
    ("limit_certificates.csv", &["qualification_id", "classification", "category", "issue_date", "valid_from", "valid_to", "long_term_date"]),
    ("specific_disease_certificates.csv", &["qualification_id", "category", "issue_date", "valid_from", "valid_to", "self_pay"]),
    ("assistance.csv", &["assistance_id", "person_id", "payer_number", "recipient_number", "welfare_office", "start_date", "end_date"]),
    ("tickets.csv", &[
        "ticket_id", "assistance_id", "ticket_type", "treatment_month", "valid_from", "valid_to", "issue_number",
        "institution_code", "institution_name", "treatment_type", "self_pay", "injury_name_1", "injury_name_2",
        "injury_name_3", "single_or_combined", "social_insurance", "consistency_flag", "infectious_disease",
        "elderly_medical_care", "prefectural_expenses", "prescriber_code", "prescriber_name", "district_contact",
        "handling_contact", "remarks_1", "remarks_2", "remarks_3",
    ]),
    ("reference_numbers.csv", &["institution_code", "person_id", "reference_number"]),
    ("consents.csv", &["institution_code", "person_id", "kind", "consented_at", "expires_at"]),
];
pub(super) const PERSONS: usize = 0;
pub(super) const CERTS: usize = 1;
pub(super) const REVOKED: usize = 2;
pub(super) const INSURANCE: usize = 3;
pub(super) const ELDERLY: usize = 4;
pub(super) const LIMIT: usize = 5;
pub(super) const DISEASE: usize = 6;
pub(super) const ASSISTANCE: usize = 7;
pub(super) const TICKETS: usize = 8;
pub(super) const REFERENCES: usize = 9;
pub(super) const CONSENTS: usize = 10;
