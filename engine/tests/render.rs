//! The rendered JSON answer is, byte for byte, the serde JSON of the wire
//! struct the same reply builds (`Reply::build`, the way answers were made
//! before they were rendered): for every lookup kind over every person of
//! the golden snapshot (`loader/tests/golden/v2`), with and without
//! entries, absent keys and refusals, and (proptest) after delta batches
//! that change persons to any text, so the overlay's versions are rendered
//! and every escape is met. A delegated fetch is checked whole (offline)
//! and split into units and a summary (eligd's frames).

mod common;

use common::engine;
use elig_engine::answer::Answer;
use elig_engine::lookup::{hints, Clock, Reply, View};
use elig_engine::model::ArchivedPersonRecord;
use elig_engine::query::parse_query;
use proptest::prelude::*;
use serde_json::{json, Value};

const NOW: u64 = 20261122100000;
const CLINIC: &str = "1310000011";

/// The reply's bytes against the struct's serde bytes, whole and split;
/// the facts against the struct's. The validity or error code, for the
/// callers' counts.
fn same_bytes(reply: &Reply<'_>, doc: &str) -> String {
    let built = reply.build();
    let mut out = Vec::new();
    let facts = reply.render_to(&mut out);
    let want = serde_json::to_vec(&built).unwrap();
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "query {doc}");
    assert_eq!(
        (facts.status, facts.validity, facts.code),
        (built.status(), built.validity_code(), built.message_body.processing_result_code.as_deref()),
        "query {doc}"
    );
    let mut rest = built.clone();
    let units = std::mem::take(&mut rest.message_body.bulk_confirm_unit_list);
    assert_eq!(reply.units(), units.len());
    for (at, unit) in units.iter().enumerate() {
        let mut out = Vec::new();
        reply.render_unit(at, &mut out);
        assert_eq!(out, serde_json::to_vec(unit).unwrap(), "unit {at} of {doc}");
    }
    let mut out = Vec::new();
    reply.render_summary(&mut out);
    assert_eq!(out, serde_json::to_vec(&rest).unwrap(), "summary of {doc}");
    built.validity().or(built.message_body.processing_result_code.as_deref()).unwrap_or("units").to_string()
}

/// One query document through the one parse, rendered and built.
fn check(view: &View<'_>, doc: &Value, clock: Clock) -> String {
    let text = doc.to_string();
    let mut out = Vec::new();
    let facts = view.render_document(text.as_bytes(), clock, &mut out);
    let answer: Answer = view.answer_document(text.as_bytes(), clock);
    assert_eq!(out, serde_json::to_vec(&answer).unwrap(), "document {text}");
    assert_eq!(facts.status, answer.status());
    match parse_query(text.as_bytes(), clock.today) {
        Ok(q) => same_bytes(&view.reply(&q, clock), &text),
        Err(e) => same_bytes(&view.refusal(&e, &hints(text.as_bytes()), clock), &text),
    }
}

/// The institutions a person's answers differ by: where they consented,
/// hold a reference number or a ticket, and one with nothing.
fn institutions(p: &ArchivedPersonRecord) -> Vec<String> {
    let mut all = vec![CLINIC.to_string()];
    all.extend(p.consents.iter().map(|c| c.institution_code.to_string()));
    all.extend(p.reference_numbers.iter().map(|r| r.institution_code.to_string()));
    all.extend(p.assistance.iter().flat_map(|a| a.tickets.iter().map(|t| t.institution_code.to_string())));
    all.sort();
    all.dedup();
    all
}

/// Confirmation dates around a person's periods: before, on and after.
fn dates(p: &ArchivedPersonRecord) -> Vec<u32> {
    let mut all = vec![20261122, 20100101, 20300101];
    for i in p.insurance.iter() {
        all.extend([i.qualification_date.to_native(), i.disqualification_date.to_native()]);
    }
    for a in p.assistance.iter() {
        all.extend([a.start_date.to_native(), a.end_date.to_native()]);
        all.extend(a.tickets.iter().map(|t| t.treatment_month.to_native() * 100 + 1));
    }
    all.retain(|d| (18500101..=99991231).contains(d));
    all.sort();
    all.dedup();
    all
}

/// Every query of every kind about `p`, at each of its institutions and
/// dates, plus the same keys made absent.
fn queries(p: &ArchivedPersonRecord) -> Vec<Value> {
    let birth = p.birth_date.to_native().to_string();
    let mut all = Vec::new();
    for inst in institutions(p) {
        for d in dates(p) {
            let head = |body: (&str, Value)| {
                json!({"MedicalInstitutionCode": inst, "QualificationConfirmationDate": d.to_string(),
                       "ArbitraryIdentifier": format!("id-{d}"), body.0: body.1})
            };
            for c in p.certificates.iter() {
                all.push(head(("MyNumberCard", json!({"CertificateSerialNumber": c.serial_number.to_string()}))));
                all.push(head(("MyNumberCard", json!({"ProcessingNumber": c.processing_number.to_string()}))));
            }
            for i in p.insurance.iter() {
                for (flag, born) in [("1", birth.as_str()), ("0", birth.as_str()), ("0", "19000101")] {
                    let card = json!({"InsurerNumber": i.insurer_number.to_string(), "InsuredCardSymbol": i.card_symbol.as_str(),
                        "InsuredIdentificationNumber": i.card_number.as_str(), "InsuredBranchNumber": i.branch_number.to_string(),
                        "Birthdate": born, "LimitApplicationCertificateRelatedConsFlg": flag});
                    all.push(head(("InsuranceCard", card)));
                }
            }
            for a in p.assistance.iter() {
                for born in [birth.as_str(), "19000101"] {
                    let ticket =
                        json!({"PayerNumber": a.payer_number.as_str(), "RecipientNumber": a.recipient_number.as_str(), "Birthdate": born});
                    all.push(head(("MedicalTicket", ticket)));
                }
                for t in a.tickets.iter() {
                    all.push(head(("DelegatedTickets", json!({"MedicalTreatmentMonth": t.treatment_month.to_native().to_string()}))));
                }
            }
        }
    }
    all
}

/// Refused documents: malformed, unknown or missing fields, bad values,
/// with and without a key whole enough to echo.
fn refusals() -> Vec<Value> {
    let card = json!({"InsurerNumber": "  273128", "InsuredIdentificationNumber": "１２\"\\", "Birthdate": "19800101"});
    vec![
        json!({"InsuranceCard": card}),
        json!({"MedicalInstitutionCode": CLINIC, "InsuranceCard": {"InsurerNumber": "06130489", "InsuredIdentificationNumber": "1", "Birthdate": "19800101", "InsuredCardSymbol": "記号\u{1}", "InsuredBranchNumber": ""}}),
        json!({"MedicalInstitutionCode": CLINIC, "ArbitraryIdentifier": "a\"b\n", "MedicalTicket": {"PayerNumber": "12130018", "RecipientNumber": "1234566", "Birthdate": "19800101"}}),
        json!({"MedicalInstitutionCode": CLINIC, "MyNumberCard": {"CertificateSerialNumber": ""}}),
        json!({"MedicalInstitutionCode": "3410712363", "DelegatedTickets": {"MedicalTreatmentMonth": "202613"}}),
        json!({"MedicalInstitutionCode": CLINIC, "Colour": "red"}),
        json!({"MedicalInstitutionCode": CLINIC, "MinimumDeltaSequence": "x", "DelegatedTickets": {"MedicalTreatmentMonth": "202611"}}),
        json!([1, 2]),
        json!("not a query"),
    ]
}

/// A batch giving a twin of the first person with a certificate and a
/// card: its card key matches two persons (5) and its serial two (EC03);
/// and revoking the next certificate holder's serials (EC01).
fn twins_and_revocations(persons: &[&ArchivedPersonRecord]) -> Vec<u8> {
    let holders: Vec<_> = persons.iter().filter(|p| !p.certificates.is_empty() && !p.insurance.is_empty()).collect();
    let (p, other) = (holders[0], holders[1]);
    let (ins, cert) = (&p.insurance[0], &p.certificates[0]);
    let mut lines = vec![
        json!({"seq": 1, "created": "20261122101500"}),
        json!({"op": "upsert", "table": "persons", "row": {"person_id": "TWIN", "name": "双子", "sex": "1",
            "birth_date": p.birth_date.to_native().to_string()}}),
        json!({"op": "upsert", "table": "insurance", "row": {"qualification_id": "QTWIN", "person_id": "TWIN",
            "insurer_number": ins.insurer_number.to_string(), "card_symbol": ins.card_symbol.as_str(),
            "card_number": ins.card_number.as_str(), "branch_number": ins.branch_number.to_string(),
            "card_classification": "01", "personal_family": "1", "insurer_name": "組合", "qualification_date": "20200101"}}),
        json!({"op": "upsert", "table": "certificates", "row": {"serial_number": cert.serial_number.to_string(),
            "processing_number": "1234567890123456", "person_id": "TWIN", "valid_from": "20200101", "valid_to": "20351231"}}),
    ];
    for c in other.certificates.iter() {
        lines.push(json!({"op": "upsert", "table": "revoked_certificates",
            "row": {"serial_number": c.serial_number.to_string(), "revoked_at": "20260101000000"}}));
    }
    lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n").into_bytes()
}

#[test]
fn every_query_of_the_golden_snapshot_renders_the_structs_bytes() {
    let e = engine();
    let mut codes = std::collections::BTreeMap::new();
    let snapshot = e.pin();
    let persons: Vec<&ArchivedPersonRecord> = snapshot.snapshot.iter_persons().map(|(_, p)| p).collect();
    let all: Vec<Value> = persons.iter().flat_map(|p| queries(p)).collect();
    // The snapshot alone, then with a batch in the overlay.
    for batch in [None, Some(twins_and_revocations(&persons))] {
        if let Some(b) = batch {
            e.apply(&b).unwrap();
        }
        let g = e.pin();
        let view = g.view();
        for clock in [Clock::at(NOW), Clock::at(20300101000000)] {
            for q in &all {
                *codes.entry(check(&view, q, clock)).or_insert(0) += 1;
            }
            for q in refusals() {
                *codes.entry(check(&view, &q, clock)).or_insert(0) += 1;
            }
        }
    }
    // Every validity, the refusals and fetches were met, not only one kind.
    for code in ["1", "2", "3", "4", "5", "6", "units", "EC01", "EC02", "EC03", "EQ01", "EQ02", "EQ03", "EQ04"] {
        assert!(codes.contains_key(code), "no answer {code} among {codes:?}");
    }
}

/// Text a delta may carry: quotes, backslashes, control characters,
/// kana, full-width and other non-ASCII.
fn any_text() -> impl Strategy<Value = String> {
    prop::string::string_regex("[a-z\"\\\\/\u{1}-\u{1f}\u{7f} ｱ-ﾝ山田●\u{2028}]{0,12}").unwrap()
}

fn kana_text() -> impl Strategy<Value = String> {
    prop_oneof![prop::string::string_regex("[ｱ-ﾝﾞﾟ ]{0,20}").unwrap(), any_text()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn overlay_versions_render_the_structs_bytes(
        changes in prop::collection::vec((0usize..60, any_text(), kana_text(), any_text(), any_text(), any_text()), 1..6),
    ) {
        let e = engine();
        let before = e.pin();
        let persons: Vec<&ArchivedPersonRecord> = before.snapshot.iter_persons().map(|(_, p)| p).collect();
        let mut lines = vec![json!({"seq": 1, "created": "20261122101500"}).to_string()];
        for (at, name, kana, other, address, reference) in &changes {
            let p = persons[*at];
            let id = p.person_id.to_string();
            let name = if name.trim().is_empty() { "名" } else { name.as_str() };
            lines.push(json!({"op": "upsert", "table": "persons", "row": {"person_id": id, "name": name, "sex": "2",
                "birth_date": p.birth_date.to_native().to_string(), "name_kana": kana, "other_name": other,
                "other_name_kana": kana, "address": address}}).to_string());
            if !reference.trim().is_empty() {
                lines.push(json!({"op": "upsert", "table": "reference_numbers",
                    "row": {"institution_code": CLINIC, "person_id": id, "reference_number": reference}}).to_string());
            }
        }
        let applied = e.apply(lines.join("\n").as_bytes());
        prop_assert!(applied.is_ok(), "{applied:?}");
        let g = e.pin();
        let view = g.view();
        prop_assert_eq!(view.delta_seq, 1);
        for (at, ..) in &changes {
            for q in queries(persons[*at]) {
                check(&view, &q, Clock::at(NOW));
            }
        }
    }
}
