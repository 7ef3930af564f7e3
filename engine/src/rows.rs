//! The validation of one row of an export table (`contract.md` section 1,
//! [`Table`]), shared by the loader (CSV) and the delta feed (JSON).

use crate::ids::{self, FieldError};
use crate::model::*;
pub use crate::table::Table;

/// A rejected row: the column, its value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column '{column}' value '{value}': {reason}")]
pub struct RowError {
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl RowError {
    pub fn new(column: &str, value: &str, reason: impl std::fmt::Display) -> Self {
        RowError { column: column.to_string(), value: value.to_string(), reason: reason.to_string() }
    }
}

/// Access to one row's columns; `None` for an absent or empty value.
pub trait Fields {
    fn get(&self, column: &str) -> Option<&str>;

    /// Why the row could not be read at all (bytes that do not decode in
    /// the export's encoding): it is rejected with this, before any rule.
    fn unreadable(&self) -> Option<RowError> {
        None
    }
}

/// One validated row. Rows live only between parsing and staging, so the
/// person variant's size is not worth an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Person(PersonRecord),
    Certificate { person_id: String, cert: Certificate },
    Revoked { serial: String, revoked_at: u64 },
    Insurance { person_id: String, ins: Insurance },
    Elderly { qualification_id: String, elderly: Elderly },
    Limit { qualification_id: String, limit: Limit },
    SpecificDisease { qualification_id: String, disease: SpecificDisease },
    Assistance { person_id: String, asst: Assistance },
    Ticket { assistance_id: String, ticket: Ticket },
    Reference { person_id: String, reference: ReferenceNumber },
    Consent { person_id: String, consent: Consent },
}

struct R<'a, F: Fields>(&'a F);

impl<F: Fields> R<'_, F> {
    fn opt(&self, c: &str) -> Option<&str> {
        self.0.get(c).map(str::trim).filter(|v| !v.is_empty())
    }

    fn req(&self, c: &str) -> Result<&str, RowError> {
        self.opt(c).ok_or_else(|| RowError::new(c, "", "required value is missing"))
    }

    fn text(&self, c: &str, max_chars: usize) -> Result<String, RowError> {
        let v = self.opt(c).unwrap_or("");
        if v.chars().count() > max_chars {
            return Err(RowError::new(c, v, format!("longer than {max_chars} characters")));
        }
        Ok(v.to_string())
    }

    fn req_text(&self, c: &str, max_chars: usize) -> Result<String, RowError> {
        self.req(c)?;
        self.text(c, max_chars)
    }

    fn id(&self, c: &str) -> Result<String, RowError> {
        let v = self.req(c)?;
        if v.len() > 64 || v.contains('\u{1f}') {
            return Err(RowError::new(c, v, "ids are at most 64 bytes"));
        }
        Ok(v.to_string())
    }

    fn field(&self, c: &str, f: impl FnOnce(&str) -> Result<String, FieldError>) -> Result<String, RowError> {
        let v = self.req(c)?;
        f(v).map_err(|e| RowError::new(c, v, e.reason))
    }

    fn date(&self, c: &'static str) -> Result<u32, RowError> {
        let v = self.req(c)?;
        ids::date(c, v).map_err(|e| RowError::new(c, v, e.reason))
    }

    fn opt_date(&self, c: &'static str) -> Result<u32, RowError> {
        match self.opt(c) {
            None => Ok(0),
            Some(_) => self.date(c),
        }
    }

    fn timestamp(&self, c: &'static str) -> Result<u64, RowError> {
        let v = self.req(c)?;
        ids::timestamp(c, v).map_err(|e| RowError::new(c, v, e.reason))
    }

    fn code(&self, c: &'static str, allowed: &[&str]) -> Result<String, RowError> {
        let v = self.req(c)?;
        ids::code(c, v, allowed).map_err(|e| RowError::new(c, v, e.reason))
    }

    fn opt_code(&self, c: &'static str, allowed: &[&str]) -> Result<String, RowError> {
        match self.opt(c) {
            None => Ok(String::new()),
            Some(_) => self.code(c, allowed),
        }
    }

    fn digits(&self, c: &str, max: usize) -> Result<String, RowError> {
        let v = self.opt(c).unwrap_or("");
        if v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RowError::new(c, v, format!("must be up to {max} digits")));
        }
        Ok(v.to_string())
    }
}

/// A validated numeric code as its number (0 for absent).
fn num(code: String) -> u8 {
    code.parse().unwrap_or(0)
}

fn ordered(from_col: &str, from: u32, to_col: &str, to: u32) -> Result<(), RowError> {
    if to != 0 && to < from {
        return Err(RowError::new(to_col, &to.to_string(), format!("is before {from_col} {from}")));
    }
    Ok(())
}

const CARD_CLASSES: &[&str] = &["01", "02", "03", "04", "05", "06", "07"];
const RATIOS: &[&str] = &["010", "020", "030"];
const LIMIT_CATEGORIES: &[&str] =
    &["A01", "A02", "A03", "A04", "A05", "A06", "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10"];

fn post_number(c: &str, v: &str) -> Result<String, RowError> {
    let d: String = ids::clean(v).chars().filter(|c| *c != '-').collect();
    if d.len() != 7 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RowError::new(c, v, "must be a postal code 123-4567"));
    }
    Ok(format!("{}-{}", &d[..3], &d[3..]))
}

/// Validate one row of `table`.
pub fn parse_row(table: Table, f: &impl Fields) -> Result<Row, RowError> {
    if let Some(e) = f.unreadable() {
        return Err(e);
    }
    let r = R(f);
    Ok(match table {
        Table::Persons => {
            let post = match r.opt("post_number") {
                None => String::new(),
                Some(v) => post_number("post_number", v)?,
            };
            Row::Person(PersonRecord {
                person_id: r.id("person_id")?,
                name: r.req_text("name", 100)?,
                name_kana: r.text("name_kana", 100)?,
                other_name: {
                    let (name, kana) = (r.text("other_name", 100)?, r.text("other_name_kana", 100)?);
                    (!name.is_empty() || !kana.is_empty()).then(|| Box::new(OtherName { name, kana }))
                },
                sex: r.code("sex", &["1", "2", "3"])?.parse().unwrap_or(3),
                birth_date: r.date("birth_date")?,
                address: Address::new(&r.text("address", 200)?),
                post_number: post,
                ..Default::default()
            })
        }
        Table::Certificates => {
            let cert = Certificate {
                serial_number: r.field("serial_number", |v| ids::certificate_key("serial_number", v))?,
                processing_number: r.field("processing_number", |v| ids::certificate_key("processing_number", v))?,
                valid_from: r.date("valid_from")?,
                valid_to: r.date("valid_to")?,
                revoked_at: 0,
            };
            ordered("valid_from", cert.valid_from, "valid_to", cert.valid_to)?;
            Row::Certificate { person_id: r.id("person_id")?, cert }
        }
        Table::RevokedCertificates => Row::Revoked {
            serial: r.field("serial_number", |v| ids::certificate_key("serial_number", v))?,
            revoked_at: r.timestamp("revoked_at")?,
        },
        Table::Insurance => {
            let disq = r.opt_date("disqualification_date")?;
            let ins = Insurance {
                qualification_id: r.id("qualification_id")?,
                insurer_number: r.field("insurer_number", ids::insurer_number)?,
                card_symbol: match r.opt("card_symbol") {
                    None => String::new(),
                    Some(v) => ids::card_symbol(v).map_err(|e| RowError::new("card_symbol", v, e.reason))?,
                },
                card_number: r.field("card_number", ids::card_number)?,
                branch_number: match r.opt("branch_number") {
                    None => String::new(),
                    Some(v) => ids::branch_number(v).map_err(|e| RowError::new("branch_number", v, e.reason))?,
                },
                card_classification: num(r.code("card_classification", CARD_CLASSES)?),
                personal_family: r.code("personal_family", &["1", "2"])?.parse().unwrap_or(1),
                insured_name: r.text("insured_name", 100)?.into(),
                insurer_name: r.req_text("insurer_name", 100)?.into(),
                qualification_date: r.date("qualification_date")?,
                disqualification_date: disq,
                reason_of_loss: num(r.opt_code("reason_of_loss", &["01", "02", "03", "99"])?),
                card_issue_date: r.opt_date("card_issue_date")?,
                card_valid_from: r.opt_date("card_valid_from")?,
                card_valid_to: r.opt_date("card_valid_to")?,
                contribution_ratio: num(r.opt_code("contribution_ratio", RATIOS)?),
                preschool: r.opt_code("preschool", &["0", "1"])? == "1",
                ..Default::default()
            };
            ordered("qualification_date", ins.qualification_date, "disqualification_date", disq)?;
            if disq == 0 && ins.reason_of_loss != 0 {
                return Err(RowError::new(
                    "reason_of_loss",
                    &crate::values::code(ins.reason_of_loss, 2).unwrap_or_default(),
                    "given without a disqualification_date",
                ));
            }
            ordered("card_valid_from", ins.card_valid_from, "card_valid_to", ins.card_valid_to)?;
            Row::Insurance { person_id: r.id("person_id")?, ins }
        }
        Table::ElderlyCertificates => {
            let elderly = Elderly {
                issue_date: r.opt_date("issue_date")?,
                valid_from: r.date("valid_from")?,
                valid_to: r.date("valid_to")?,
                contribution_ratio: num(r.code("contribution_ratio", RATIOS)?),
            };
            ordered("valid_from", elderly.valid_from, "valid_to", elderly.valid_to)?;
            Row::Elderly { qualification_id: r.id("qualification_id")?, elderly }
        }
        Table::LimitCertificates => {
            let limit = Limit {
                classification: r.code("classification", &["01", "02", "03"])?,
                category: r.code("category", LIMIT_CATEGORIES)?,
                issue_date: r.opt_date("issue_date")?,
                valid_from: r.date("valid_from")?,
                valid_to: r.date("valid_to")?,
                long_term_date: r.opt_date("long_term_date")?,
            };
            ordered("valid_from", limit.valid_from, "valid_to", limit.valid_to)?;
            Row::Limit { qualification_id: r.id("qualification_id")?, limit }
        }
        Table::SpecificDiseaseCertificates => {
            let disease = SpecificDisease {
                category: r.code("category", &["1", "2", "3"])?,
                issue_date: r.opt_date("issue_date")?,
                valid_from: r.date("valid_from")?,
                valid_to: r.opt_date("valid_to")?,
                self_pay: r.digits("self_pay", 9)?,
            };
            ordered("valid_from", disease.valid_from, "valid_to", disease.valid_to)?;
            Row::SpecificDisease { qualification_id: r.id("qualification_id")?, disease }
        }
        Table::Assistance => {
            let payer = r.field("payer_number", ids::payer_number)?;
            if !payer.starts_with("12") {
                return Err(RowError::new("payer_number", &payer, "medical assistance payers have law code 12"));
            }
            let asst = Assistance {
                assistance_id: r.id("assistance_id")?,
                payer_number: payer,
                recipient_number: r.field("recipient_number", ids::recipient_number)?,
                welfare_office: r.req_text("welfare_office", 100)?.into(),
                start_date: r.date("start_date")?,
                end_date: r.opt_date("end_date")?,
                tickets: Vec::new(),
            };
            ordered("start_date", asst.start_date, "end_date", asst.end_date)?;
            Row::Assistance { person_id: r.id("person_id")?, asst }
        }
        Table::Tickets => {
            let ticket = Ticket {
                ticket_id: r.id("ticket_id")?,
                ticket_type: r.code("ticket_type", &["01", "02"])?,
                treatment_month: {
                    let v = r.req("treatment_month")?;
                    ids::month("treatment_month", v).map_err(|e| RowError::new("treatment_month", v, e.reason))?
                },
                valid_from: r.date("valid_from")?,
                valid_to: r.date("valid_to")?,
                issue_number: r.text("issue_number", 20)?,
                institution_code: r.field("institution_code", ids::institution_code)?,
                institution_name: r.text("institution_name", 100)?.into(),
                treatment_type: r.opt_code("treatment_type", &["01", "02", "03", "04", "05"])?,
                self_pay: r.digits("self_pay", 9)?,
                injury_names: [r.text("injury_name_1", 100)?, r.text("injury_name_2", 100)?, r.text("injury_name_3", 100)?],
                single_or_combined: r.opt_code("single_or_combined", &["01", "02"])?,
                social_insurance: r.opt_code("social_insurance", &["01", "02"])?,
                consistency_flag: r.opt_code("consistency_flag", &["0", "1"])?,
                infectious_disease: r.opt_code("infectious_disease", &["01", "02"])?,
                elderly_medical_care: r.opt_code("elderly_medical_care", &["01", "02"])?,
                prefectural_expenses: r.opt_code("prefectural_expenses", &["01", "02"])?,
                prescriber_code: match r.opt("prescriber_code") {
                    None => String::new(),
                    Some(_) => r.field("prescriber_code", ids::institution_code)?,
                },
                prescriber_name: r.text("prescriber_name", 100)?,
                district_contact: r.text("district_contact", 100)?,
                handling_contact: r.text("handling_contact", 100)?,
                remarks: [r.text("remarks_1", 200)?, r.text("remarks_2", 200)?, r.text("remarks_3", 200)?],
            };
            ordered("valid_from", ticket.valid_from, "valid_to", ticket.valid_to)?;
            Row::Ticket { assistance_id: r.id("assistance_id")?, ticket }
        }
        Table::ReferenceNumbers => Row::Reference {
            person_id: r.id("person_id")?,
            reference: ReferenceNumber {
                institution_code: r.field("institution_code", ids::institution_code)?,
                reference_number: r.req_text("reference_number", 50)?,
            },
        },
        Table::Consents => {
            let kind_text = r.req("kind")?;
            let kind = ConsentKind::parse(kind_text).ok_or_else(|| {
                RowError::new("kind", kind_text, "must be one of pharmacy, checkup, diagnosis, operation, limit, specific_disease")
            })?;
            let consented_at = r.timestamp("consented_at")?;
            let expires_at = match r.opt("expires_at") {
                None => 0,
                Some(_) => r.timestamp("expires_at")?,
            };
            if expires_at != 0 && expires_at < consented_at {
                return Err(RowError::new("expires_at", &expires_at.to_string(), "is before consented_at"));
            }
            Row::Consent {
                person_id: r.id("person_id")?,
                consent: Consent { institution_code: r.field("institution_code", ids::institution_code)?, kind, consented_at, expires_at },
            }
        }
    })
}

/// The key of a row (`Table::key` columns joined), for uniqueness checks.
pub fn row_key(row: &Row) -> (Table, String) {
    match row {
        Row::Person(p) => (Table::Persons, p.person_id.clone()),
        Row::Certificate { person_id, cert } => (Table::Certificates, format!("{}|{person_id}", cert.serial_number)),
        Row::Revoked { serial, .. } => (Table::RevokedCertificates, serial.clone()),
        Row::Insurance { ins, .. } => (Table::Insurance, ins.qualification_id.clone()),
        Row::Elderly { qualification_id, .. } => (Table::ElderlyCertificates, qualification_id.clone()),
        Row::Limit { qualification_id, .. } => (Table::LimitCertificates, qualification_id.clone()),
        Row::SpecificDisease { qualification_id, disease } => {
            (Table::SpecificDiseaseCertificates, format!("{qualification_id}|{}", disease.category))
        }
        Row::Assistance { asst, .. } => (Table::Assistance, asst.assistance_id.clone()),
        Row::Ticket { ticket, .. } => (Table::Tickets, ticket.ticket_id.clone()),
        Row::Reference { person_id, reference } => (Table::ReferenceNumbers, format!("{}|{person_id}", reference.institution_code)),
        Row::Consent { person_id, consent } => {
            (Table::Consents, format!("{}|{person_id}|{}", consent.institution_code, consent.kind.name()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct M(HashMap<&'static str, &'static str>);
    impl Fields for M {
        fn get(&self, c: &str) -> Option<&str> {
            self.0.get(c).copied()
        }
    }

    fn row(table: &str, cols: &[(&'static str, &'static str)]) -> Result<Row, RowError> {
        parse_row(Table::parse(table).unwrap(), &M(cols.iter().copied().collect()))
    }

    #[test]
    fn a_person_row_is_normalised() {
        let Row::Person(p) = row(
            "persons",
            &[("person_id", "P1"), ("name", "山田　太郎"), ("sex", "1"), ("birth_date", "19800101"), ("post_number", "1000001")],
        )
        .unwrap() else {
            panic!("person expected")
        };
        assert_eq!((p.post_number.as_str(), p.birth_date, p.sex), ("100-0001", 19800101, 1));
    }

    #[test]
    fn each_rule_names_column_value_and_reason() {
        let e = row("persons", &[("person_id", "P1"), ("name", "x"), ("sex", "4"), ("birth_date", "19800101")]).unwrap_err();
        assert_eq!(e.to_string(), "column 'sex' value '4': must be one of 1, 2, 3");
        let e = row("persons", &[("person_id", "P1"), ("name", "x"), ("sex", "1"), ("birth_date", "19800230")]).unwrap_err();
        assert_eq!(e.column, "birth_date");
        let e = row("persons", &[("person_id", "P1"), ("sex", "1"), ("birth_date", "19800101")]).unwrap_err();
        assert_eq!(e.to_string(), "column 'name' value '': required value is missing");
        let base = [
            ("qualification_id", "Q1"),
            ("person_id", "P1"),
            ("card_number", "1"),
            ("card_classification", "01"),
            ("personal_family", "1"),
            ("insurer_name", "x"),
            ("qualification_date", "20200101"),
        ];
        let mut bad = base.to_vec();
        bad.push(("insurer_number", "06130489"));
        let e = row("insurance", &bad).unwrap_err();
        assert_eq!(e.to_string(), "column 'insurer_number' value '06130489': fails its check digit (expected 8)");
        let mut late = base.to_vec();
        late.extend([("insurer_number", "06130488"), ("disqualification_date", "20190101")]);
        assert_eq!(row("insurance", &late).unwrap_err().column, "disqualification_date");
        let e = row(
            "assistance",
            &[
                ("assistance_id", "A1"),
                ("person_id", "P1"),
                ("payer_number", "88134457"),
                ("recipient_number", "1234566"),
                ("welfare_office", "x"),
                ("start_date", "20200101"),
            ],
        )
        .unwrap_err();
        assert!(e.reason.contains("law code 12"), "{e}");
        let e = row(
            "consents",
            &[("institution_code", "3410712362"), ("person_id", "P1"), ("kind", "dental"), ("consented_at", "20261122090000")],
        )
        .unwrap_err();
        assert_eq!(e.column, "kind");
    }
}
