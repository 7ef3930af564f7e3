//! Query documents (`contract.md` section 3): parsed, normalised and
//! validated into a [`Query`], or refused with a [`QueryError`] that names the
//! field, so a malformed query is never mistaken for "no such qualification".

use serde::Deserialize;

use crate::ids::{self, FieldError};

/// Error codes of `ProcessingResultCode` for refused queries: wire codes.
pub use elig_wire::codes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct QueryError {
    pub code: &'static str,
    /// The element at fault, e.g. `InsuranceCard.InsurerNumber`.
    pub field: String,
    pub message: String,
}

impl QueryError {
    pub fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        QueryError { code, field: field.into(), message: message.into() }
    }

    fn invalid(section: &str, e: FieldError) -> Self {
        let field = if section.is_empty() { e.field.to_string() } else { format!("{section}.{}", e.field) };
        let message = format!("{field} '{}': {}", e.value, e.reason);
        QueryError::new(codes::INVALID_VALUE, field, message)
    }
}

/// A validated query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The requesting institution (10 digits, checked).
    pub institution: String,
    /// The date eligibility is judged at, `YYYYMMDD`.
    pub date: u32,
    pub arbitrary_id: Option<String>,
    pub key: QueryKey,
    /// `MinimumDeltaSequence`: the answer must include batch N or newer
    /// (read-your-writes after a publish; `contract.md` section 2b).
    pub min_delta_seq: Option<u64>,
}

/// What a query looks up by (a usage row, a metric label, an audit field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    CertificateSerial,
    ProcessingNumber,
    InsuranceCard,
    MedicalTicket,
    DelegatedTickets,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::CertificateSerial => "certificate_serial",
            KeyKind::ProcessingNumber => "processing_number",
            KeyKind::InsuranceCard => "insurance_card",
            KeyKind::MedicalTicket => "medical_ticket",
            KeyKind::DelegatedTickets => "delegated_tickets",
        }
    }

    /// A My Number certificate check is made for it (J-LIS bills these).
    pub fn checks_certificate(self) -> bool {
        matches!(self, KeyKind::CertificateSerial | KeyKind::ProcessingNumber)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKey {
    CertificateSerial(String),
    ProcessingNumber(String),
    InsuranceCard(CardKey),
    MedicalTicket(TicketKey),
    DelegatedTickets { month: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardKey {
    pub insurer: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    pub birth_date: u32,
    pub limit_consent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKey {
    pub payer: String,
    pub recipient: String,
    pub birth_date: u32,
}

impl QueryKey {
    /// Short name of the lookup kind (metrics, usage, audit).
    pub fn kind(&self) -> &'static str {
        self.key_kind().name()
    }

    pub fn key_kind(&self) -> KeyKind {
        match self {
            QueryKey::CertificateSerial(_) => KeyKind::CertificateSerial,
            QueryKey::ProcessingNumber(_) => KeyKind::ProcessingNumber,
            QueryKey::InsuranceCard(_) => KeyKind::InsuranceCard,
            QueryKey::MedicalTicket(_) => KeyKind::MedicalTicket,
            QueryKey::DelegatedTickets { .. } => KeyKind::DelegatedTickets,
        }
    }

    /// The key as one string (hashed for the audit log).
    pub fn key_text(&self) -> String {
        match self {
            QueryKey::CertificateSerial(s) | QueryKey::ProcessingNumber(s) => s.clone(),
            QueryKey::InsuranceCard(c) => format!("{}|{}|{}|{}|{}", c.insurer, c.symbol, c.number, c.branch, c.birth_date),
            QueryKey::MedicalTicket(t) => format!("{}|{}|{}", t.payer, t.recipient, t.birth_date),
            QueryKey::DelegatedTickets { month } => month.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct RawQuery<S> {
    #[serde(rename = "MedicalInstitutionCode")]
    institution: Option<S>,
    #[serde(rename = "QualificationConfirmationDate")]
    date: Option<S>,
    #[serde(rename = "ArbitraryIdentifier")]
    arbitrary: Option<S>,
    #[serde(rename = "MyNumberCard")]
    my_number: Option<RawMyNumber<S>>,
    #[serde(rename = "InsuranceCard")]
    card: Option<RawCard<S>>,
    #[serde(rename = "MedicalTicket")]
    ticket: Option<RawTicket<S>>,
    #[serde(rename = "DelegatedTickets")]
    delegated: Option<RawDelegated<S>>,
    #[serde(rename = "MinimumDeltaSequence")]
    min_delta_seq: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct RawMyNumber<S> {
    #[serde(rename = "CertificateSerialNumber")]
    serial: Option<S>,
    #[serde(rename = "ProcessingNumber")]
    processing: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct RawCard<S> {
    #[serde(rename = "InsurerNumber")]
    insurer: Option<S>,
    #[serde(rename = "InsuredCardSymbol")]
    symbol: Option<S>,
    #[serde(rename = "InsuredIdentificationNumber")]
    number: Option<S>,
    #[serde(rename = "InsuredBranchNumber")]
    branch: Option<S>,
    #[serde(rename = "Birthdate")]
    birth: Option<S>,
    #[serde(rename = "LimitApplicationCertificateRelatedConsFlg")]
    limit: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct RawTicket<S> {
    #[serde(rename = "PayerNumber")]
    payer: Option<S>,
    #[serde(rename = "RecipientNumber")]
    recipient: Option<S>,
    #[serde(rename = "Birthdate")]
    birth: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "S: Deserialize<'de>"))]
struct RawDelegated<S> {
    #[serde(rename = "MedicalTreatmentMonth")]
    month: Option<S>,
}

fn required<'a, S: AsRef<str>>(v: &'a Option<S>, field: &str) -> Result<&'a str, QueryError> {
    match text(v) {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(QueryError::new(codes::MISSING_FIELD, field, format!("{field} is required"))),
    }
}

/// Parse tracking the path, to name the field at fault. A query document
/// is exactly one JSON value: anything after it but whitespace is refused
/// (`contract.md` section 3).
fn parse_tracked(json: &[u8]) -> Result<RawQuery<String>, QueryError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    let raw = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = inner.to_string();
        if text.starts_with("unknown field") {
            // The path already ends with the unknown name, except at the top level.
            let name = text.split('`').nth(1).unwrap_or("?").to_string();
            let field = if path == "." || path.is_empty() { name } else { path.trim_start_matches('.').to_string() };
            QueryError::new(codes::UNKNOWN_FIELD, field.clone(), format!("unknown field '{field}'"))
        } else {
            QueryError::new(codes::MALFORMED, path.clone(), format!("malformed query at '{path}': {text}"))
        }
    })?;
    de.end().map_err(|e| {
        QueryError::new(
            codes::MALFORMED,
            "",
            format!("malformed query: {e}: a query document is exactly one JSON value (use `elig bulk` for JSON Lines)"),
        )
    })?;
    Ok(raw)
}

/// A UTF-8 byte order mark some editors write at the start of a file.
pub use elig_wire::request::BOM;

/// Parse a query document. `today` is the default confirmation date.
pub fn parse_query(json: &[u8], today: u32) -> Result<Query, QueryError> {
    parse_query_for(json, today, None)
}

/// [`parse_query`] for a requester who may leave `MedicalInstitutionCode`
/// out (absent, null or blank): an institution's certificate says who it is.
/// A code the query does give is kept, for the caller to check.
pub fn parse_query_for(json: &[u8], today: u32, default_institution: Option<&str>) -> Result<Query, QueryError> {
    let json = json.strip_prefix(BOM).unwrap_or(json);
    // The quick parse borrows every value from the document: nothing is
    // allocated but the key and what the answer echoes. It fails on a
    // string with escapes (it cannot be borrowed) as on any other fault;
    // the owned parse then reads such a query, tracking the path, which
    // costs a third of the parse and is needed only to name a failing field.
    // `from_slice` refuses trailing bytes, so only a good document passes.
    match serde_json::from_slice::<RawQuery<&str>>(json) {
        Ok(raw) => validate(raw, today, default_institution),
        Err(_) => validate(parse_tracked(json)?, today, default_institution),
    }
}

/// A raw field's text, borrowed or owned alike.
fn text<S: AsRef<str>>(v: &Option<S>) -> Option<&str> {
    v.as_ref().map(S::as_ref)
}

/// Turn the raw fields of a parsed document into a [`Query`].
fn validate<S: AsRef<str>>(raw: RawQuery<S>, today: u32, default_institution: Option<&str>) -> Result<Query, QueryError> {
    let given = text(&raw.institution).filter(|s| !s.trim().is_empty());
    let institution = match (given, default_institution) {
        (None, Some(code)) => code,
        _ => required(&raw.institution, "MedicalInstitutionCode")?,
    };
    let institution = ids::institution_code(institution).map_err(|e| QueryError::invalid("", e))?;
    let date = match text(&raw.date) {
        None => today,
        Some(d) => ids::date("QualificationConfirmationDate", d).map_err(|e| QueryError::invalid("", e))?,
    };
    let given = [raw.my_number.is_some(), raw.card.is_some(), raw.ticket.is_some(), raw.delegated.is_some()];
    let kinds = given.iter().filter(|g| **g).count();
    if kinds != 1 {
        let msg = if kinds == 0 {
            "one of MyNumberCard, InsuranceCard, MedicalTicket, DelegatedTickets is required"
        } else {
            "only one of MyNumberCard, InsuranceCard, MedicalTicket, DelegatedTickets may be given"
        };
        return Err(QueryError::new(codes::KEY_KIND, "MessageBody", msg));
    }
    let key = if let Some(m) = raw.my_number {
        match (text(&m.serial), text(&m.processing)) {
            (Some(s), None) => QueryKey::CertificateSerial(
                ids::certificate_key("CertificateSerialNumber", s).map_err(|e| QueryError::invalid("MyNumberCard", e))?,
            ),
            (None, Some(p)) => {
                QueryKey::ProcessingNumber(ids::certificate_key("ProcessingNumber", p).map_err(|e| QueryError::invalid("MyNumberCard", e))?)
            }
            _ => {
                return Err(QueryError::new(
                    codes::KEY_KIND,
                    "MyNumberCard",
                    "MyNumberCard needs exactly one of CertificateSerialNumber, ProcessingNumber",
                ))
            }
        }
    } else if let Some(c) = raw.card {
        let s = "InsuranceCard";
        let inv = |e| QueryError::invalid(s, e);
        let limit = match text(&c.limit).map(str::trim) {
            None | Some("") | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                let field = format!("{s}.LimitApplicationCertificateRelatedConsFlg");
                return Err(QueryError::new(codes::INVALID_VALUE, field.clone(), format!("{field} '{other}': must be 0 or 1")));
            }
        };
        QueryKey::InsuranceCard(CardKey {
            insurer: ids::insurer_number(required(&c.insurer, "InsuranceCard.InsurerNumber")?).map_err(inv)?,
            symbol: ids::card_symbol(text(&c.symbol).unwrap_or("")).map_err(inv)?,
            number: ids::card_number(required(&c.number, "InsuranceCard.InsuredIdentificationNumber")?).map_err(inv)?,
            branch: ids::branch_number(text(&c.branch).unwrap_or("")).map_err(inv)?,
            birth_date: ids::date("Birthdate", required(&c.birth, "InsuranceCard.Birthdate")?).map_err(inv)?,
            limit_consent: limit,
        })
    } else if let Some(t) = raw.ticket {
        let inv = |e| QueryError::invalid("MedicalTicket", e);
        QueryKey::MedicalTicket(TicketKey {
            payer: ids::payer_number(required(&t.payer, "MedicalTicket.PayerNumber")?).map_err(inv)?,
            recipient: ids::recipient_number(required(&t.recipient, "MedicalTicket.RecipientNumber")?).map_err(inv)?,
            birth_date: ids::date("Birthdate", required(&t.birth, "MedicalTicket.Birthdate")?).map_err(inv)?,
        })
    } else if let Some(d) = raw.delegated {
        let month = ids::month("MedicalTreatmentMonth", required(&d.month, "DelegatedTickets.MedicalTreatmentMonth")?)
            .map_err(|e| QueryError::invalid("DelegatedTickets", e))?;
        QueryKey::DelegatedTickets { month }
    } else {
        unreachable!("exactly one key kind was checked above")
    };
    let min_delta_seq = text(&raw.min_delta_seq).map(delta_seq).transpose()?;
    let arbitrary_id = text(&raw.arbitrary).map(str::to_owned);
    Ok(Query { institution, date, arbitrary_id, key, min_delta_seq })
}

const MIN_SEQ_FIELD: &str = "MinimumDeltaSequence";

/// A `MinimumDeltaSequence` value: a batch seq, digits (sent as a string).
fn delta_seq(text: &str) -> Result<u64, QueryError> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(QueryError::new(
            codes::INVALID_VALUE,
            MIN_SEQ_FIELD,
            format!("{MIN_SEQ_FIELD} '{text}': must be a delta batch sequence number (digits)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> QueryError {
        parse_query(json.as_bytes(), 20261122).unwrap_err()
    }

    #[test]
    fn minimum_delta_sequence_is_read_and_checked() {
        let q =
            r#"{"MedicalInstitutionCode":"3410712362","MinimumDeltaSequence":"42","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#;
        assert_eq!(parse_query(q.as_bytes(), 20261122).unwrap().min_delta_seq, Some(42));
        let without = r#"{"MedicalInstitutionCode":"3410712362","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#;
        assert_eq!(parse_query(without.as_bytes(), 20261122).unwrap().min_delta_seq, None);
        for bad in ["", "4x", "-1", "1.5", "99999999999999999999"] {
            let q = format!(
                r#"{{"MedicalInstitutionCode":"3410712362","MinimumDeltaSequence":"{bad}","DelegatedTickets":{{"MedicalTreatmentMonth":"202611"}}}}"#
            );
            let e = err(&q);
            assert_eq!((e.code, e.field.as_str()), (codes::INVALID_VALUE, "MinimumDeltaSequence"), "{bad}: {e:?}");
            assert!(e.message.contains(&format!("'{bad}'")), "{}", e.message);
        }
    }

    #[test]
    fn a_card_query_is_normalised() {
        let q = parse_query(
            r#"{"MedicalInstitutionCode":"3410712362","InsuranceCard":{"InsurerNumber":"  273128","InsuredCardSymbol":"ＡＢ","InsuredIdentificationNumber":"１２","InsuredBranchNumber":"０１","Birthdate":"19800101","LimitApplicationCertificateRelatedConsFlg":"1"}}"#.as_bytes(),
            20261122,
        )
        .unwrap();
        assert_eq!(q.date, 20261122);
        let QueryKey::InsuranceCard(c) = q.key else { panic!("card key expected") };
        assert_eq!((c.insurer.as_str(), c.symbol.as_str(), c.number.as_str(), c.branch.as_str()), ("273128", "AB", "12", "01"));
        assert!(c.limit_consent);
    }

    #[test]
    fn a_default_institution_fills_only_an_absent_or_blank_code() {
        let month = r#""DelegatedTickets":{"MedicalTreatmentMonth":"202611"}"#;
        let with = |inst: &str| format!("{{{inst}{month}}}");
        let q = parse_query_for(with("").as_bytes(), 20261122, Some("3410712362")).unwrap();
        assert_eq!(q.institution, "3410712362");
        let q = parse_query_for(with(r#""MedicalInstitutionCode":" ","#).as_bytes(), 20261122, Some("3410712362")).unwrap();
        assert_eq!(q.institution, "3410712362");
        let q = parse_query_for(with(r#""MedicalInstitutionCode":"1311111114","#).as_bytes(), 20261122, Some("3410712362")).unwrap();
        assert_eq!(q.institution, "1311111114", "a given code is kept for the caller to check");
        let e = parse_query(with("").as_bytes(), 20261122).unwrap_err();
        assert_eq!(e.code, codes::MISSING_FIELD);
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(
            r#"{"MedicalInstitutionCode":"3410712362","MedicalTicket":{"PayerNumber":"88134458","RecipientNumber":"1234566","Birthdate":"19800101"}}"#,
        );
        assert_eq!((e.code, e.field.as_str()), (codes::INVALID_VALUE, "MedicalTicket.PayerNumber"));
        assert!(e.message.contains("88134458") && e.message.contains("expected 7"), "{}", e.message);

        let e = err(
            r#"{"MedicalInstitutionCode":"3410712362","InsuranceCard":{"InsurerNumber":"06130488","InsuredIdentificationNumber":"1","Birthdate":"19800101","Colour":"red"}}"#,
        );
        assert_eq!((e.code, e.field.as_str()), (codes::UNKNOWN_FIELD, "InsuranceCard.Colour"));

        let e = err(
            r#"{"MedicalInstitutionCode":"3410712362","MyNumberCard":{"CertificateSerialNumber":"AB"},"DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#,
        );
        assert_eq!(e.code, codes::KEY_KIND);

        let e = err(r#"{"InsuranceCard":{}}"#);
        assert_eq!((e.code, e.field.as_str()), (codes::MISSING_FIELD, "MedicalInstitutionCode"));

        let e = err(r#"{"MedicalInstitutionCode":3410712362}"#);
        assert_eq!((e.code, e.field.as_str()), (codes::MALFORMED, "MedicalInstitutionCode"));

        let e = err("not json");
        assert_eq!(e.code, codes::MALFORMED);

        let e = err(
            r#"{"MedicalInstitutionCode":"3410712362","QualificationConfirmationDate":"20261131","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#,
        );
        assert_eq!(e.field, "QualificationConfirmationDate");
    }

    #[test]
    fn failures_of_the_quick_parse_are_named_as_before() {
        // The path and serde's text, as the path-tracking parse alone gave them.
        let e = err(r#"{"MedicalInstitutionCode":"3410712362","InsuranceCard":{"InsurerNumber":6130488}}"#);
        assert_eq!((e.code, e.field.as_str()), (codes::MALFORMED, "InsuranceCard.InsurerNumber"));
        assert_eq!(
            e.message,
            "malformed query at 'InsuranceCard.InsurerNumber': invalid type: integer `6130488`, expected a string at line 1 column 79"
        );
        let e = err(r#"{"Colour":"red"}"#);
        assert_eq!((e.code, e.field.as_str(), e.message.as_str()), (codes::UNKNOWN_FIELD, "Colour", "unknown field 'Colour'"));
    }

    #[test]
    fn a_query_document_is_exactly_one_json_value() {
        let doc = r#"{"MedicalInstitutionCode":"3410712362","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#;
        for tail in [" trailing", "garbage", "{}", "\n{\"MedicalInstitutionCode\":\"3410712362\"}"] {
            let e = err(&format!("{doc}{tail}"));
            assert_eq!(e.code, codes::MALFORMED, "{tail:?}");
            assert!(e.message.starts_with("malformed query: trailing characters at line "), "{}", e.message);
            assert!(e.message.ends_with("a query document is exactly one JSON value (use `elig bulk` for JSON Lines)"), "{}", e.message);
        }
        // Whitespace after it, and a UTF-8 byte order mark before it, are fine.
        for text in [format!("{doc} \r\n\t"), format!("\u{FEFF}{doc}")] {
            let q = parse_query(text.as_bytes(), 20261122);
            assert_eq!(q.map(|q| q.key), Ok(QueryKey::DelegatedTickets { month: 202611 }));
        }
    }

    #[test]
    fn escaped_strings_are_read_as_the_characters_they_stand_for() {
        // A string with escapes cannot be borrowed from the document: the
        // owned parse reads it, to the same query as the plain spelling.
        let plain = r#"{"MedicalInstitutionCode":"3410712362","ArbitraryIdentifier":"p/1","InsuranceCard":{"InsurerNumber":"06130488","InsuredCardSymbol":"AB","InsuredIdentificationNumber":"12","InsuredBranchNumber":"01","Birthdate":"19800101"}}"#;
        let escaped = r#"{"MedicalInstitutionCode":"341071236\u0032","ArbitraryIdentifier":"p\/1","InsuranceCard":{"InsurerNumber":"0613048\u0038","InsuredCardSymbol":"\uFF21B","InsuredIdentificationNumber":"1\u0032","InsuredBranchNumber":"01","Birthdate":"1980010\u0031"}}"#;
        let (a, b) = (parse_query(plain.as_bytes(), 20261122).unwrap(), parse_query(escaped.as_bytes(), 20261122).unwrap());
        assert_eq!(a, b);
        assert_eq!(b.arbitrary_id.as_deref(), Some("p/1"));
        // A bad value behind an escape is still named.
        let e = err(&escaped.replace("341071236\\u0032", "341071236\\u0033"));
        assert_eq!((e.code, e.field.as_str()), (codes::INVALID_VALUE, "MedicalInstitutionCode"));
        assert!(e.message.contains("'3410712363'"), "{}", e.message);
    }

    #[test]
    fn a_one_digit_branch_number_is_refused_not_padded() {
        let e = err(
            r#"{"MedicalInstitutionCode":"3410712362","InsuranceCard":{"InsurerNumber":"06130488","InsuredIdentificationNumber":"1","InsuredBranchNumber":"1","Birthdate":"19800101"}}"#,
        );
        assert_eq!((e.code, e.field.as_str()), (codes::INVALID_VALUE, "InsuranceCard.InsuredBranchNumber"));
        assert!(e.message.contains("'1': must be 2 digits"), "{}", e.message);
    }
}
