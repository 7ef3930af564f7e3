//! The fine points of `domain.md` section 5, each from the smallest export
//! that shows it: which record a code-2 answer shows, the 0/1 consent flags
//! of the limit-application and specific-disease certificates, and the
//! two-digit branch number.

use crate::fixture::*;
use elig_engine::answer::{Answer, ResultOfQualificationConfirmation};
use serde_json::{json, Value};

const SOCIETY: &str = "06130488";
const PAYER: &str = "12130019";

fn on(mut q: Value, date: &str) -> Value {
    q["QualificationConfirmationDate"] = json!(date);
    q
}

/// (validity, qualification date, disqualification date) of the one entry.
fn shown(a: &Answer) -> (String, String, String) {
    let list = &a.message_body.result_list;
    assert_eq!(list.len(), 1, "one entry expected: {list:?}");
    let e = &list[0];
    let d = |v: &Option<elig_engine::answer::Str>| v.as_deref().unwrap_or("").to_string();
    (validity(a).to_string(), d(&e.qualification_date), d(&e.disqualification_date))
}

fn s(v: &str, from: &str, to: &str) -> (String, String, String) {
    (v.to_string(), from.to_string(), to.to_string())
}

/// The person of the issue: lost A on 2024-02-27; B ran 2026-08-15 to 2026-11-03.
fn two_periods(same_card: bool) -> Compiled {
    let mut e = Export::default();
    let b_number = if same_card { "1" } else { "2" };
    e.person("P1", "山田　太郎", "19800101")
        .insurance("QA", "P1", SOCIETY, "S", "1", "01", "20200101", "20240227")
        .insurance("QB", "P1", SOCIETY, "S", b_number, "01", "20260815", "20261103")
        .certificate("AB01", "1000000000000001", "P1", "20220101", "20301231");
    build(&e)
}

#[test]
fn a_code_2_my_number_answer_shows_what_had_ended_by_the_date_not_what_starts_later() {
    let w = two_periods(false);
    let ask = |d: &str| shown(&w.ask(on(serial("AB01", CLINIC), d)));
    // Between the periods: A had ended, B had not started.
    assert_eq!(ask("20260626"), s("2", "20200101", "20240227"));
    // After both: B ended most recently.
    assert_eq!(ask("20261201"), s("2", "20260815", "20261103"));
    // On B's loss date B is no longer in force, and it ended last.
    assert_eq!(ask("20261103"), s("2", "20260815", "20261103"));
    // Before both: nothing had ended, so the one that starts next.
    assert_eq!(ask("20190101"), s("2", "20200101", "20240227"));
    // In force: code 1 with B.
    assert_eq!(ask("20261001"), s("1", "20260815", "20261103"));
}

#[test]
fn a_code_2_card_answer_over_one_key_with_two_periods_shows_the_period_that_ended() {
    let w = two_periods(true);
    let ask = |d: &str| shown(&w.ask(on(card(SOCIETY, "S", "1", "01", "19800101"), d)));
    // The day the first period ended: it ended, the second has not begun.
    assert_eq!(ask("20240227"), s("2", "20200101", "20240227"));
    assert_eq!(ask("20250101"), s("2", "20200101", "20240227"));
    assert_eq!(ask("20190101"), s("2", "20200101", "20240227"), "before both: the one that starts next");
    assert_eq!(ask("20261201"), s("2", "20260815", "20261103"));
    assert_eq!(ask("20260815"), s("1", "20260815", "20261103"));
}

#[test]
fn a_code_2_answer_weighs_insurance_and_assistance_on_one_scale() {
    let mut e = Export::default();
    // Insurance lost on 2025-04-01 (last day in force 03-31); assistance through 2025-06-30.
    e.person("P1", "山田　太郎", "19800101")
        .insurance("Q1", "P1", SOCIETY, "S", "1", "01", "20200101", "20250401")
        .assistance("A1", "P1", PAYER, "1234566", "20250401", "20250630")
        .certificate("AB01", "1000000000000001", "P1", "20220101", "20301231");
    let w = build(&e);
    let ask = |d: &str| shown(&w.ask(on(serial("AB01", CLINIC), d)));
    assert_eq!(ask("20250515").0, "6", "assistance in force, not delegated");
    assert_eq!(ask("20250701"), s("2", "20250401", "20250630"), "the assistance ended last");
    // Before the assistance began only the insurance had ended.
    let mut e2 = e.clone();
    e2.tables.get_mut("assistance").unwrap()[0] = vec![
        ("assistance_id", "A1".into()),
        ("person_id", "P1".into()),
        ("payer_number", PAYER.into()),
        ("recipient_number", "1234566".into()),
        ("welfare_office", "千代田区福祉事務所".into()),
        ("start_date", "20260101".into()),
        ("end_date", "20260331".into()),
    ];
    let w2 = build(&e2);
    let got = shown(&w2.ask(on(serial("AB01", CLINIC), "20250701")));
    assert_eq!(got, s("2", "20200101", "20250401"), "the assistance that starts later is not shown as lost");
    // The ticket path makes the same choice within its key.
    let t = shown(&w.ask(on(ticket_query(PAYER, "1234566", "19800101", CLINIC), "20250701")));
    assert_eq!(t, s("2", "20250401", "20250630"));
}

fn consent(e: &mut Export, kind: &str, at: &str, expires: &str) {
    e.row("consents", &[("institution_code", CLINIC), ("person_id", "P1"), ("kind", kind), ("consented_at", at), ("expires_at", expires)]);
}

/// P1 with a limit-application and a specific-disease certificate on its
/// qualification, and the given consents at CLINIC.
fn with_certificates(lost: &str, consents: &[(&str, &str, &str)]) -> Compiled {
    let mut e = Export::default();
    e.person("P1", "山田　太郎", "19800101")
        .insurance("Q1", "P1", SOCIETY, "S", "1", "01", "20200101", lost)
        .certificate("AB01", "1000000000000001", "P1", "20220101", "20301231")
        .row(
            "limit_certificates",
            &[
                ("qualification_id", "Q1"),
                ("classification", "01"),
                ("category", "A03"),
                ("valid_from", "20260101"),
                ("valid_to", "20271231"),
            ],
        )
        .row("specific_disease_certificates", &[("qualification_id", "Q1"), ("category", "1"), ("valid_from", "20260101")]);
    for (kind, at, expires) in consents {
        consent(&mut e, kind, at, expires);
    }
    build(&e)
}

fn flags(e: &ResultOfQualificationConfirmation) -> (&str, &str, bool, bool) {
    (
        e.limit_application_certificate_related_cons_flg.as_deref().unwrap_or("-"),
        e.specific_diseases_certificate_related_cons_flg.as_deref().unwrap_or("-"),
        e.limit_application_certificate_related_info.is_some(),
        e.specific_diseases_certificate_list.is_some(),
    )
}

#[test]
fn expired_limit_and_specific_disease_consents_are_both_flag_0_with_their_time() {
    let w =
        with_certificates("", &[("limit", "20261120090000", "20261121090000"), ("specific_disease", "20261120090000", "20261121090000")]);
    let a = w.ask(serial("AB01", CLINIC));
    let e = &a.message_body.result_list[0];
    assert_eq!(flags(e), ("0", "0", false, false));
    assert_eq!(e.limit_application_certificate_related_cons_time.as_deref(), Some("20261120090000"));
    assert_eq!(e.specific_diseases_certificate_related_cons_time.as_deref(), Some("20261120090000"));
}

#[test]
fn a_consent_expiring_exactly_now_has_expired_and_one_without_expiry_never_does() {
    let now = NOW.to_string();
    let w = with_certificates("", &[("limit", "20261120090000", &now), ("specific_disease", "20201120090000", "")]);
    let e = &w.ask(serial("AB01", CLINIC)).message_body.result_list[0];
    assert_eq!(flags(e), ("0", "1", false, true));
}

#[test]
fn on_a_code_2_entry_the_flags_describe_the_consent_and_the_details_stay_hidden() {
    let valid = [("limit", "20261122090000", "20261123090000"), ("specific_disease", "20261122090000", "20261123090000")];
    let w = with_certificates("20261101", &valid);
    let a = w.ask(serial("AB01", CLINIC));
    assert_eq!(validity(&a), "2");
    assert_eq!(flags(&a.message_body.result_list[0]), ("1", "1", false, false));
    // In force on an earlier date: the details are shown.
    let a = w.ask(on(serial("AB01", CLINIC), "20261022"));
    assert_eq!(validity(&a), "1");
    assert_eq!(flags(&a.message_body.result_list[0]), ("1", "1", true, true));
    // The card path: the request's consent flag, on a lost entry too.
    let mut q = on(card(SOCIETY, "S", "1", "01", "19800101"), "20261122");
    q["InsuranceCard"]["LimitApplicationCertificateRelatedConsFlg"] = json!("1");
    let a = w.ask(q.clone());
    assert_eq!(validity(&a), "2");
    let e = &a.message_body.result_list[0];
    assert_eq!(
        (e.limit_application_certificate_related_cons_flg.as_deref(), e.limit_application_certificate_related_info.is_some()),
        (Some("1"), false)
    );
    let a = w.ask(on(q, "20261022"));
    let e = &a.message_body.result_list[0];
    assert_eq!(
        (e.limit_application_certificate_related_cons_flg.as_deref(), e.limit_application_certificate_related_info.is_some()),
        (Some("1"), true)
    );
}

#[test]
fn a_one_digit_branch_number_is_refused_in_a_query_and_in_the_export() {
    let mut e = Export::default();
    e.person("P1", "山田　太郎", "19800101")
        .insurance("Q1", "P1", SOCIETY, "S", "1", "01", "20200101", "")
        .insurance("Q2", "P1", SOCIETY, "S", "2", "2", "20200101", "");
    let (dir, r) = try_compile(&e, |o| o.max_reject_ratio = 0.9);
    assert_eq!(r.expect("compiles").rejected, 1);
    let rejects = std::fs::read_to_string(dir.path().join("snap.rejects.csv")).unwrap();
    assert!(rejects.contains(r#"insurance.csv,3,branch_number,2,"must be 2 digits, with its leading zero (""01"")""#), "{rejects}");

    let w = build(&{
        let mut e = Export::default();
        e.person("P1", "山田　太郎", "19800101").insurance("Q1", "P1", SOCIETY, "S", "1", "01", "20200101", "");
        e
    });
    let a = w.ask(card(SOCIETY, "S", "1", "1", "19800101"));
    let b = &a.message_body;
    assert_eq!((b.processing_result_status.as_str(), b.processing_result_code.as_deref()), ("2", Some("EQ04")));
    assert_eq!(
        b.processing_result_message.as_deref(),
        Some("InsuranceCard.InsuredBranchNumber '1': must be 2 digits, with its leading zero (\"01\")")
    );
    assert_eq!(validity(&w.ask(card(SOCIETY, "S", "1", "０１", "19800101"))), "1", "full-width digits fold");
}
