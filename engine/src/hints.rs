//! What the answer to a refused query can still say about it, read from the
//! bytes the caller sent: the requesting institution, the caller's
//! identifier, and the echo of the card-data key.
//!
//! Only the refusal path reads these (a good query is parsed by
//! `query.rs`), so they take the slow road through `serde_json::Value`.

use serde_json::Value;

use crate::answer::{SearchInfo, Str};
use crate::ids;

/// The parts of a refused query document that could be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    /// `MedicalInstitutionCode`, normalised when it is a valid code, else empty.
    pub institution: String,
    /// `ArbitraryIdentifier` as sent.
    pub arbitrary: Option<String>,
    /// The echo of an `InsuranceCard` or `MedicalTicket` key, as sent; `None`
    /// when the document could not be read far enough to echo a whole key.
    pub echo: Option<SearchInfo>,
}

/// Read what can be read of `json`. Never fails: a document that is not a
/// JSON object gives empty hints.
pub fn hints(json: &[u8]) -> Hints {
    let json = json.strip_prefix(crate::query::BOM).unwrap_or(json);
    // A document with trailing bytes is refused, but its first value can still be read.
    let mut values = serde_json::Deserializer::from_slice(json).into_iter::<Value>();
    let Some(Ok(doc)) = values.next() else { return Hints::default() };
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let institution = text(&doc, "MedicalInstitutionCode").and_then(|c| ids::institution_code(&c).ok()).unwrap_or_default();
    let arbitrary = text(&doc, "ArbitraryIdentifier");
    Hints { institution, echo: echo(&doc, arbitrary.as_deref()), arbitrary }
}

/// The search-info echo of a refused card or ticket query. Real clients
/// refuse a `QualificationConfirmSearchInfo` without `InsurerNumber`,
/// `InsuredIdentificationNumber`, `Birthdate` or the consent flag, so the
/// echo is complete or absent (`interface.md`, "What real clients require").
fn echo(doc: &Value, arbitrary: Option<&str>) -> Option<SearchInfo> {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(Str::from);
    let arbitrary = arbitrary.map(Str::from);
    if let Some(card) = doc.get("InsuranceCard") {
        return Some(SearchInfo {
            insurer_number: Some(field(card, "InsurerNumber")?),
            insured_card_symbol: field(card, "InsuredCardSymbol").filter(|s| !s.is_empty()),
            insured_identification_number: Some(field(card, "InsuredIdentificationNumber")?),
            insured_branch_number: field(card, "InsuredBranchNumber").filter(|s| !s.is_empty()),
            birthdate: Some(field(card, "Birthdate")?),
            limit_application_certificate_related_cons_flg: Some(
                field(card, "LimitApplicationCertificateRelatedConsFlg").filter(|s| !s.is_empty()).unwrap_or(Str::const_new("0")),
            ),
            arbitrary_identifier: arbitrary,
        });
    }
    let ticket = doc.get("MedicalTicket")?;
    Some(SearchInfo {
        insurer_number: Some(field(ticket, "PayerNumber")?),
        insured_identification_number: Some(field(ticket, "RecipientNumber")?),
        birthdate: Some(field(ticket, "Birthdate")?),
        limit_application_certificate_related_cons_flg: Some(Str::const_new("0")),
        arbitrary_identifier: arbitrary,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_key_is_echoed_as_sent_with_the_consent_flag() {
        let h = hints(
            r#"{"MedicalInstitutionCode":"３４１０７１２３６２","ArbitraryIdentifier":"p-1","InsuranceCard":{"InsurerNumber":"  273129","InsuredIdentificationNumber":"１２","Birthdate":"19800101"}}"#
                .as_bytes(),
        );
        assert_eq!(h.institution, "3410712362");
        assert_eq!(h.arbitrary.as_deref(), Some("p-1"));
        let e = h.echo.expect("a whole card key");
        assert_eq!(e.insurer_number.as_deref(), Some("  273129"));
        assert_eq!(e.insured_identification_number.as_deref(), Some("１２"));
        assert_eq!(e.limit_application_certificate_related_cons_flg.as_deref(), Some("0"));
        assert_eq!(e.arbitrary_identifier.as_deref(), Some("p-1"));
    }

    #[test]
    fn a_ticket_key_is_echoed_in_the_card_fields() {
        let h = hints(br#"{"MedicalTicket":{"PayerNumber":"12130019","RecipientNumber":"1234567","Birthdate":"19800101"}} trailing"#);
        let e = h.echo.expect("a whole ticket key, read before the trailing bytes");
        assert_eq!((e.insurer_number.as_deref(), e.insured_identification_number.as_deref()), (Some("12130019"), Some("1234567")));
        assert_eq!(e.limit_application_certificate_related_cons_flg.as_deref(), Some("0"));
    }

    #[test]
    fn no_echo_without_a_whole_key() {
        for doc in [
            r#"{"InsuranceCard":{"InsurerNumber":"06130488","Birthdate":"19800101"}}"#,
            r#"{"MedicalTicket":{"PayerNumber":"12130019","RecipientNumber":1234567,"Birthdate":"19800101"}}"#,
            r#"{"MyNumberCard":{"CertificateSerialNumber":"AB"},"ArbitraryIdentifier":"x"}"#,
            r#"{"MedicalInstitutionCode":"1"#,
            "[1,2]",
        ] {
            assert_eq!(hints(doc.as_bytes()).echo, None, "{doc}");
        }
        assert_eq!(hints(br#"{"MedicalInstitutionCode":"3410712363"}"#).institution, "", "a bad code is not repeated");
    }
}
