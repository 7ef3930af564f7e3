//! One test per validity code and key family (domain.md section 5).

use crate::fixture::*;
use serde_json::json;

const KENPO: &str = "01130012"; // 協会けんぽ
const SOCIETY: &str = "06130488";
const NHI: &str = "273128";
const PAYER: &str = "12130019";

fn world() -> Compiled {
    let mut e = Export::default();
    // P1: changed jobs: lost at KENPO, now at SOCIETY.
    e.person("P1", "山田　太郎", "19800101")
        .insurance("Q1a", "P1", KENPO, "記号１", "100", "01", "20150401", "20240401")
        .insurance("Q1b", "P1", SOCIETY, "A1", "555", "01", "20240401", "")
        .certificate("AB01", "1000000000000001", "P1", "20220101", "20301231")
        .row(
            "limit_certificates",
            &[
                ("qualification_id", "Q1b"),
                ("classification", "01"),
                ("category", "A03"),
                ("valid_from", "20260101"),
                ("valid_to", "20271231"),
            ],
        )
        .row("reference_numbers", &[("institution_code", CLINIC), ("person_id", "P1"), ("reference_number", "K-42")])
        .row("reference_numbers", &[("institution_code", PHARMACY), ("person_id", "P1"), ("reference_number", "PH-7")])
        .row(
            "consents",
            &[
                ("institution_code", CLINIC),
                ("person_id", "P1"),
                ("kind", "pharmacy"),
                ("consented_at", "20261122090000"),
                ("expires_at", "20261123090000"),
            ],
        )
        .row(
            "consents",
            &[
                ("institution_code", CLINIC),
                ("person_id", "P1"),
                ("kind", "diagnosis"),
                ("consented_at", "20261120090000"),
                ("expires_at", "20261121090000"),
            ],
        )
        .row(
            "consents",
            &[
                ("institution_code", CLINIC),
                ("person_id", "P1"),
                ("kind", "limit"),
                ("consented_at", "20261122090000"),
                ("expires_at", "20261123090000"),
            ],
        );
    // P2: only a lost qualification (NHI), revoked and expired certificates.
    e.person("P2", "佐藤　花子", "19500505")
        .insurance("Q2", "P2", NHI, "", "77", "00", "20000101", "20250101")
        .certificate("CD02", "1000000000000002", "P2", "20220101", "20301231")
        .certificate("EF03", "1000000000000003", "P2", "20150101", "20201231")
        .row("revoked_certificates", &[("serial_number", "CD02"), ("revoked_at", "20260101000000")]);
    // P3 and P4 share one insurance key and birth date (a data defect), and one serial.
    e.person("P3", "鈴木　一郎", "19900303").insurance("Q3", "P3", SOCIETY, "B", "9", "01", "20200101", "");
    e.person("P4", "鈴木　次郎", "19900303").insurance("Q4", "P4", SOCIETY, "B", "9", "01", "20200101", "");
    e.certificate("DUP1", "1000000000000009", "P3", "20220101", "20301231").certificate(
        "DUP1",
        "1000000000000010",
        "P4",
        "20220101",
        "20301231",
    );
    // P5: public assistance (and insurance lost with reason 02), tickets for the clinic this month.
    e.person("P5", "高橋　三郎", "19700707")
        .insurance("Q5", "P5", KENPO, "S", "5", "01", "20100101", "20250101")
        .assistance("A5", "P5", PAYER, "1234566", "20250101", "")
        .ticket("T5", "A5", "202611", CLINIC)
        .ticket("T5old", "A5", "202610", PHARMACY)
        .certificate("GH05", "1000000000000005", "P5", "20220101", "20301231");
    // P6: assistance ended.
    e.person("P6", "田中　四郎", "19600606").assistance("A6", "P6", PAYER, "2345676", "20200101", "20251231");
    build(&e)
}

#[test]
fn card_valid_answers_the_record_and_withholds_limit_without_consent() {
    let w = world();
    let a = w.ask(card(SOCIETY, "A1", "555", "01", "19800101"));
    assert_eq!(validity(&a), "1");
    let r = &a.message_body.result_list;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].insurer_number.as_deref(), Some(SOCIETY));
    assert_eq!(r[0].name.as_deref(), Some("山田　太郎"));
    assert!(r[0].limit_application_certificate_related_info.is_none());
    assert_eq!(a.message_header.snapshot_generation, "1");

    let mut q = card(SOCIETY, "A1", "555", "01", "19800101");
    q["InsuranceCard"]["LimitApplicationCertificateRelatedConsFlg"] = json!("1");
    let a = w.ask(q);
    let info = a.message_body.result_list[0].limit_application_certificate_related_info.as_ref().expect("limit info with consent");
    assert_eq!(info.limit_application_certificate_classification_flag.as_deref(), Some("A03"));
}

#[test]
fn card_normalises_full_width_and_padded_nhi() {
    let w = world();
    let a = w.ask(card("０１１３００１２", "記号１", "１００", "０１", "19800101"));
    assert_eq!(validity(&a), "3", "full-width key finds the lost KENPO card");
    let a = w.ask(card("  273128", "", "77", "00", "19500505"));
    assert_eq!(validity(&a), "2");
    let a = w.ask(card("00273128", "", "77", "00", "19500505"));
    assert_eq!(validity(&a), "2");
}

#[test]
fn card_lost_with_new_qualification_is_3_and_never_reveals_the_new_insurer() {
    let w = world();
    let a = w.ask(card(KENPO, "記号１", "100", "01", "19800101"));
    assert_eq!(validity(&a), "3");
    let text = serde_json::to_string(&a).unwrap();
    assert!(!text.contains(SOCIETY), "the new insurer leaked: {text}");
    assert_eq!(a.message_body.result_list[0].disqualification_date.as_deref(), Some("20240401"));
}

#[test]
fn card_lost_without_other_is_2_with_the_lost_record() {
    let w = world();
    let a = w.ask(card(NHI, "", "77", "00", "19500505"));
    assert_eq!(validity(&a), "2");
    assert_eq!(a.message_body.result_list[0].reason_of_loss.as_deref(), Some("03"));
}

#[test]
fn card_no_match_and_birth_mismatch_are_both_4_without_leaking() {
    let w = world();
    let none = w.ask(card(SOCIETY, "A1", "556", "01", "19800101"));
    let wrong_birth = w.ask(card(SOCIETY, "A1", "555", "01", "19800102"));
    for a in [&none, &wrong_birth] {
        assert_eq!(validity(a), "4");
        assert!(a.message_body.result_list.is_empty());
    }
    assert_eq!(none.message_body.result_list, wrong_birth.message_body.result_list);
}

#[test]
fn card_key_on_two_persons_is_5_and_picks_no_one() {
    let w = world();
    let a = w.ask(card(SOCIETY, "B", "9", "01", "19900303"));
    assert_eq!(validity(&a), "5");
    assert!(a.message_body.result_list.is_empty());
    let kinds: Vec<&str> = w.summary.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert!(kinds.contains(&"shared_key:insurance") && kinds.contains(&"shared_key:serial"), "{kinds:?}");
}

#[test]
fn my_number_answers_consents_and_own_reference_number() {
    let w = world();
    let a = w.ask(serial("ab01", CLINIC));
    assert_eq!(validity(&a), "1");
    assert_eq!(a.message_header.reference_classification, "1");
    let r = &a.message_body.result_list;
    assert_eq!(r.len(), 1, "only the qualification in force");
    assert_eq!(r[0].insurer_number.as_deref(), Some(SOCIETY), "My Number shows the current insurer");
    assert_eq!(r[0].reference_number.as_deref(), Some("K-42"));
    assert_eq!(r[0].pharmacists_info_cons_flg.as_deref(), Some("1"));
    assert_eq!(r[0].diagnosis_info_cons_flg.as_deref(), Some("2"), "expired consent");
    assert_eq!(r[0].operation_info_cons_flg.as_deref(), Some("0"));
    assert!(r[0].limit_application_certificate_related_info.is_some(), "limit consent registered at the reader");

    let other = w.ask(serial("AB01", PHARMACY));
    let r = &other.message_body.result_list[0];
    assert_eq!(r.reference_number.as_deref(), Some("PH-7"), "each institution sees its own reference number");
    assert_eq!(r.pharmacists_info_cons_flg.as_deref(), Some("0"), "consents are per institution");
    assert!(r.limit_application_certificate_related_info.is_none());

    let by_processing = w.ask(json!({"MedicalInstitutionCode": CLINIC, "QualificationConfirmationDate": "20261122",
        "MyNumberCard": {"ProcessingNumber": "1000000000000001"}}));
    assert_eq!(by_processing.message_body.result_list, a.message_body.result_list);
}

#[test]
fn my_number_insurance_and_assistance_side_by_side() {
    let w = world();
    let mut e = Export::default();
    e.person("P7", "伊藤　五郎", "19550505")
        .insurance("Q7", "P7", KENPO, "S", "77", "01", "20100101", "")
        .assistance("A7", "P7", PAYER, "3456787", "20250101", "")
        .ticket("T7", "A7", "202611", CLINIC)
        .certificate("IJ07", "1000000000000007", "P7", "20220101", "20301231");
    let w7 = build(&e);
    let a = w7.ask(serial("IJ07", CLINIC));
    assert_eq!(validity(&a), "1");
    let classes: Vec<&str> = a.message_body.result_list.iter().filter_map(|r| r.insured_card_classification.as_deref()).collect();
    assert_eq!(classes, ["01", "A1"]);
    let a1 = &a.message_body.result_list[1];
    assert_eq!(a1.insurer_number.as_deref(), Some(PAYER), "delegated: numbers shown");
    assert_eq!(a1.public_expense_result_list.as_ref().map(|t| t.len()), Some(1));
    // Only assistance in force and the pharmacy not delegated: 6, numbers withheld.
    let a = w.ask(serial("GH05", PHARMACY));
    assert_eq!(validity(&a), "6");
    let r = &a.message_body.result_list[0];
    assert_eq!(r.insurer_name.as_deref(), Some("千代田区福祉事務所"));
    assert!(r.insurer_number.is_none() && r.insured_identification_number.is_none());
}

#[test]
fn my_number_revoked_expired_shared_and_unknown() {
    let w = world();
    let revoked = w.ask(serial("CD02", CLINIC));
    assert_eq!(revoked.message_body.processing_result_status, "2");
    assert_eq!(revoked.message_body.processing_result_code.as_deref(), Some("EC01"));
    let expired = w.ask(serial("EF03", CLINIC));
    assert_eq!(expired.message_body.processing_result_code.as_deref(), Some("EC02"));
    let shared = w.ask(serial("DUP1", CLINIC));
    assert_eq!(shared.message_body.processing_result_code.as_deref(), Some("EC03"));
    assert!(shared.message_body.result_list.is_empty());
    let unknown = w.ask(serial("FFFF", CLINIC));
    assert_eq!(validity(&unknown), "4");
}

#[test]
fn my_number_with_nothing_in_force_is_2_with_the_latest_lost() {
    let mut e = Export::default();
    e.person("P8", "渡辺　六郎", "19450101")
        .insurance("Q8a", "P8", KENPO, "S", "8", "01", "19900101", "20100101")
        .insurance("Q8b", "P8", SOCIETY, "S", "8", "01", "20100101", "20260101")
        .certificate("KL08", "1000000000000008", "P8", "20220101", "20301231");
    let w = build(&e);
    let a = w.ask(serial("KL08", CLINIC));
    assert_eq!(validity(&a), "2");
    assert_eq!(a.message_body.result_list.len(), 1);
    assert_eq!(a.message_body.result_list[0].insurer_number.as_deref(), Some(SOCIETY));
}

#[test]
fn ticket_delegated_not_delegated_ended_and_mismatch() {
    let w = world();
    let a = w.ask(ticket_query(PAYER, "1234566", "19700707", CLINIC));
    assert_eq!(validity(&a), "1");
    let r = &a.message_body.result_list[0];
    assert_eq!(r.insured_card_classification.as_deref(), Some("A1"));
    let tickets = r.public_expense_result_list.as_ref().unwrap();
    assert_eq!(tickets.len(), 1, "only this month's ticket for this institution");
    assert_eq!(tickets[0].designated_medical_institution_flag.as_deref(), Some("0"));

    let a = w.ask(ticket_query(PAYER, "1234566", "19700707", PHARMACY));
    assert_eq!(validity(&a), "6");
    let r = &a.message_body.result_list[0];
    assert!(r.insurer_number.is_none() && r.insured_identification_number.is_none() && r.public_expense_result_list.is_none());
    assert_eq!(r.name.as_deref(), Some("高橋　三郎"));

    assert_eq!(validity(&w.ask(ticket_query(PAYER, "2345676", "19600606", CLINIC))), "2");
    assert_eq!(validity(&w.ask(ticket_query(PAYER, "1234566", "19700708", CLINIC))), "4");
    assert_eq!(validity(&w.ask(ticket_query(PAYER, "3456787", "19700707", CLINIC))), "4");
}

#[test]
fn delegated_ticket_fetch_lists_this_institutions_tickets() {
    let w = world();
    let q = |inst: &str, month: &str| json!({"MedicalInstitutionCode": inst, "QualificationConfirmationDate": "20261122", "DelegatedTickets": {"MedicalTreatmentMonth": month}});
    let a = w.ask(q(CLINIC, "202611"));
    let units = &a.message_body.bulk_confirm_unit_list;
    assert_eq!(units.len(), 1);
    assert_eq!(a.message_header.number_of_processing_result.as_deref(), Some("1"));
    let entry = units[0].result_of_qualification_confirmation.as_ref().unwrap();
    assert_eq!(entry.insurer_number.as_deref(), Some(PAYER));
    assert_eq!(entry.public_expense_result_list.as_ref().unwrap()[0].medical_treatment_month.as_deref(), Some("202611"));
    assert_eq!(w.ask(q(PHARMACY, "202610")).message_body.bulk_confirm_unit_list.len(), 1);
    assert!(w.ask(q(PHARMACY, "202611")).message_body.bulk_confirm_unit_list.is_empty());
    // Counted by the engine itself, for a parsed query too, and for no tickets.
    let parsed = elig_engine::query::parse_query(q(PHARMACY, "202611").to_string().as_bytes(), 20261122).unwrap();
    let empty = elig_engine::lookup::View::new(&w.snapshot).answer(&parsed, elig_engine::lookup::Clock::at(NOW));
    assert_eq!(empty.message_header.number_of_processing_result.as_deref(), Some("0"));
    assert_eq!(empty.message_header.number_of_error.as_deref(), Some("0"));
}

#[test]
fn malformed_queries_are_errors_not_not_found() {
    let w = world();
    let a = w.ask(card("06130489", "A1", "555", "01", "19800101"));
    assert_eq!(a.message_body.processing_result_status, "2");
    assert!(a.message_body.qualification_validity.is_none());
    let msg = a.message_body.processing_result_message.unwrap();
    assert!(msg.contains("InsuranceCard.InsurerNumber") && msg.contains("06130489"), "{msg}");
    assert_eq!(a.message_header.medical_institution_code, CLINIC);
}
