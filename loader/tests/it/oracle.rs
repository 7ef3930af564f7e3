//! Property tests: random exports (and random delta batches on top) must
//! answer exactly as a plain in-memory model answers, absent keys included.
//! The model scans every person for every query: no index, no overlay. It
//! checks the validity code, which record an answer shows (its dates) at
//! confirmation dates before, between and after the periods, and the consent
//! flags with the details they govern.

use crate::deltas::{ask, batch, del, up};
use crate::fixture::*;
use elig_engine::answer::{Answer, ResultOfQualificationConfirmation, Str};
use elig_engine::engine::Engine;
use elig_engine::snapshot::Snapshot;
use proptest::prelude::*;
use serde_json::{json, Value};

const INSURERS: [&str; 3] = ["01130012", "06130488", "273128"];
const NUMBERS: [&str; 3] = ["1", "2", "3"];
const BIRTHS: [u32; 2] = [19800101, 19900202];
const SERIALS: [&str; 5] = ["S1", "S2", "S3", "S4", "S5"];
const PAYER: &str = "12130019";
const RECIPIENTS: [&str; 2] = ["1234566", "2345676"];
const TODAY: u32 = 20261122;
/// Confirmation dates before, between, on and after the periods drawn below.
const DATES: [u32; 6] = [20190101, 20240101, 20250101, TODAY, 20261201, 20270601];
/// Consent kinds drawn, with their export names.
const CONSENT_KINDS: [&str; 3] = ["limit", "specific_disease", "pharmacy"];
/// Viewing expiries: valid, expired, expiring exactly at the processing time (`NOW`), never.
const EXPIRIES: [u64; 4] = [20261123090000, 20261121090000, NOW, 0];

#[derive(Debug, Clone)]
struct Ins {
    qid: String,
    insurer: &'static str,
    number: &'static str,
    from: u32,
    lost: u32,
}

#[derive(Debug, Clone)]
struct Cert {
    serial: &'static str,
    to: u32,
    revoked: bool,
}

#[derive(Debug, Clone)]
struct Asst {
    recipient: &'static str,
    end: u32,
    delegated: bool,
}

#[derive(Debug, Clone)]
struct Person {
    id: String,
    birth: u32,
    ins: Vec<Ins>,
    cert: Option<Cert>,
    asst: Option<Asst>,
    /// Viewing expiry by `CONSENT_KINDS` index, consented at CLINIC.
    consents: [Option<u64>; 3],
}

/// Assistance always starts on this date.
const ASST_FROM: u32 = 20200101;

fn ins_in_force(i: &Ins, d: u32) -> bool {
    i.from <= d && (i.lost == 0 || d < i.lost)
}

fn asst_in_force(a: &Asst, d: u32) -> bool {
    ASST_FROM <= d && (a.end == 0 || d <= a.end)
}

/// The ticket of a delegated assistance is for this month only.
const TICKET_MONTH: u32 = 202611;

fn delegated_on(a: &Asst, d: u32) -> bool {
    a.delegated && d / 100 == TICKET_MONTH
}

/// A period as the model sees it: its start and the first day it is no
/// longer in force (`u32::MAX` when open).
#[derive(Debug, Clone, Copy)]
struct Period {
    from: u32,
    out: u32,
}

fn day_after(d: u32) -> u32 {
    let day = chrono::NaiveDate::parse_from_str(&d.to_string(), "%Y%m%d").expect("a model date");
    day.succ_opt().expect("not the last day").format("%Y%m%d").to_string().parse().expect("digits")
}

impl Period {
    fn of_ins(i: &Ins) -> Period {
        Period { from: i.from, out: if i.lost == 0 { u32::MAX } else { i.lost } }
    }
    fn of_asst(a: &Asst) -> Period {
        Period { from: ASST_FROM, out: if a.end == 0 { u32::MAX } else { day_after(a.end) } }
    }
}

/// domain.md section 5: the period that most recently ended on or before
/// `d`; only when none had, the one that starts next. The index chosen.
fn model_reference(d: u32, periods: &[Period]) -> Option<usize> {
    let ended = periods.iter().enumerate().filter(|(_, p)| p.from <= d && p.out <= d).max_by_key(|(_, p)| (p.out, p.from));
    let next = periods.iter().enumerate().filter(|(_, p)| p.from > d).min_by_key(|(_, p)| (p.from, p.out));
    ended.or(next).map(|(at, _)| at)
}

fn date_strategy() -> impl Strategy<Value = (u32, u32)> {
    (prop_oneof![Just(20200101u32), Just(20250101), Just(20261201)], prop_oneof![Just(0u32), Just(20240101), Just(TODAY), Just(20270101)])
        .prop_filter("loss after start", |(f, l)| *l == 0 || *l >= *f)
}

/// (birth, insurance (insurer, number, dates), certificate (serial, valid to, revoked), assistance (recipient, end, delegated), consent expiries).
type RawPerson = (u32, Vec<(usize, usize, (u32, u32))>, Option<(usize, u32, bool)>, Option<(usize, u32, bool)>, [Option<u64>; 3]);
/// (person pick, change kind, insurer, number, dates, serial).
type Op = (usize, u8, usize, usize, (u32, u32), usize);

fn person_strategy() -> impl Strategy<Value = RawPerson> {
    (
        0..BIRTHS.len(),
        prop::collection::vec((0..INSURERS.len(), 0..NUMBERS.len(), date_strategy()), 0..3),
        prop::option::of((0..SERIALS.len(), prop_oneof![Just(20301231u32), Just(20250101)], prop::bool::weighted(0.2))),
        prop::option::of((0..RECIPIENTS.len(), prop_oneof![Just(0u32), Just(20251231)], any::<bool>())),
        [prop::option::of(0..EXPIRIES.len()), prop::option::of(0..EXPIRIES.len()), prop::option::of(0..EXPIRIES.len())],
    )
        .prop_map(|(b, ins, cert, asst, c)| (BIRTHS[b], ins, cert, asst, c.map(|e| e.map(|e| EXPIRIES[e]))))
}

fn people(raw: Vec<RawPerson>) -> Vec<Person> {
    let mut ps: Vec<Person> = raw
        .into_iter()
        .enumerate()
        .map(|(p, (birth, ins, cert, asst, consents))| Person {
            id: format!("P{p}"),
            birth,
            ins: ins
                .into_iter()
                .enumerate()
                .map(|(q, (i, n, (from, lost)))| Ins { qid: format!("Q{p}-{q}"), insurer: INSURERS[i], number: NUMBERS[n], from, lost })
                .collect(),
            cert: cert.map(|(s, to, revoked)| Cert { serial: SERIALS[s], to, revoked }),
            asst: asst.map(|(r, end, delegated)| Asst { recipient: RECIPIENTS[r], end, delegated }),
            consents,
        })
        .collect();
    // The revocation list names serials: a revoked serial is revoked for every link.
    let revoked: Vec<&str> = ps.iter().filter_map(|p| p.cert.as_ref().filter(|c| c.revoked).map(|c| c.serial)).collect();
    for p in &mut ps {
        if let Some(c) = &mut p.cert {
            c.revoked = revoked.contains(&c.serial);
        }
    }
    ps
}

fn date(d: u32) -> String {
    if d == 0 {
        String::new()
    } else {
        d.to_string()
    }
}

fn ins_json(p: &Person, i: &Ins) -> Value {
    json!({"qualification_id": i.qid, "person_id": p.id, "insurer_number": i.insurer, "card_symbol": "S", "card_number": i.number,
           "branch_number": "01", "card_classification": "01", "personal_family": "1", "insurer_name": "保険者",
           "qualification_date": i.from.to_string(), "disqualification_date": date(i.lost), "reason_of_loss": if i.lost == 0 { "" } else { "03" }})
}

fn export(ps: &[Person]) -> Export {
    let mut e = Export::default();
    let mut revoked = Vec::new();
    for p in ps {
        e.person(&p.id, "試験　太郎", &p.birth.to_string());
        for i in &p.ins {
            e.insurance(&i.qid, &p.id, i.insurer, "S", i.number, "01", &i.from.to_string(), &date(i.lost));
            let q = ("qualification_id", i.qid.as_str());
            e.row(
                "limit_certificates",
                &[q, ("classification", "01"), ("category", "A03"), ("valid_from", "20200101"), ("valid_to", "20301231")],
            );
            e.row("specific_disease_certificates", &[q, ("category", "1"), ("valid_from", "20200101")]);
        }
        for (kind, expiry) in CONSENT_KINDS.iter().zip(p.consents) {
            if let Some(exp) = expiry {
                let exp = if exp == 0 { String::new() } else { exp.to_string() };
                e.row(
                    "consents",
                    &[
                        ("institution_code", CLINIC),
                        ("person_id", &p.id),
                        ("kind", kind),
                        ("consented_at", "20261120090000"),
                        ("expires_at", &exp),
                    ],
                );
            }
        }
        if let Some(c) = &p.cert {
            e.certificate(c.serial, &format!("9{}", &p.id[1..]), &p.id, "20200101", &c.to.to_string());
            if c.revoked && !revoked.contains(&c.serial) {
                revoked.push(c.serial);
                e.row("revoked_certificates", &[("serial_number", c.serial), ("revoked_at", "20260101000000")]);
            }
        }
        if let Some(a) = &p.asst {
            let aid = format!("A{}", p.id);
            e.assistance(&aid, &p.id, PAYER, a.recipient, &ASST_FROM.to_string(), &date(a.end));
            if a.delegated {
                e.ticket(&format!("T{}", p.id), &aid, &TICKET_MONTH.to_string(), CLINIC);
            }
        }
    }
    e
}

// ---- what an answer shows, as text both sides render ----------------------

/// Whether the model knows which qualifications carry limit and
/// specific-disease certificates (true for compiled exports; deltas below
/// add qualifications without them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Details {
    Known,
    Unknown,
}

/// One entry as both sides render it: class, dates, limit /
/// specific-disease / pharmacy flags, and whether the limit and
/// specific-disease details are shown.
struct Shown<'a> {
    class: &'a str,
    period: (&'a str, &'a str),
    limit: &'a str,
    specific: &'a str,
    pharmacy: &'a str,
    details: (bool, bool),
}

impl Shown<'_> {
    fn text(&self, details: Details) -> String {
        let mark = |yes: bool| match (details, yes) {
            (Details::Unknown, _) => "?",
            (_, true) => "+",
            (_, false) => "-",
        };
        let (class, (from, to)) = (self.class, self.period);
        let (l, s, p) = (self.limit, self.specific, self.pharmacy);
        format!("{class}:{from}-{to} L{l} S{s} P{p} {}{}", mark(self.details.0), mark(self.details.1))
    }
}

fn entry_text(e: &ResultOfQualificationConfirmation, details: Details) -> String {
    let f = |v: &Option<Str>| v.as_deref().unwrap_or("_").to_string();
    let (class, from, to) = (f(&e.insured_card_classification), f(&e.qualification_date), f(&e.disqualification_date));
    let flags = [
        f(&e.limit_application_certificate_related_cons_flg),
        f(&e.specific_diseases_certificate_related_cons_flg),
        f(&e.pharmacists_info_cons_flg),
    ];
    let shown = (e.limit_application_certificate_related_info.is_some(), e.specific_diseases_certificate_list.is_some());
    Shown { class: &class, period: (&from, &to), limit: &flags[0], specific: &flags[1], pharmacy: &flags[2], details: shown }.text(details)
}

/// The code (validity or error) and every entry, sorted.
fn answer_text(a: &Answer, details: Details) -> String {
    let code = a.validity().or(a.message_body.processing_result_code.as_deref()).unwrap_or_default();
    model_text(code, a.message_body.result_list.iter().map(|e| entry_text(e, details)).collect())
}

/// A model date as an answer writes it ("_" for none).
fn day(d: u32) -> String {
    if d == 0 {
        "_".to_string()
    } else {
        d.to_string()
    }
}

fn model_text(code: &str, mut entries: Vec<String>) -> String {
    entries.sort();
    format!("{code} [{}]", entries.join(" | "))
}

/// The consent flags of a person at CLINIC, judged at `NOW`: (limit given,
/// specific given, pharmacy flag).
fn consent_flags(p: &Person) -> (bool, bool, &'static str) {
    let given = |e: Option<u64>| e.is_some_and(|e| e == 0 || NOW < e);
    let pharmacy = match p.consents[2] {
        None => "0",
        e if given(e) => "1",
        Some(_) => "2",
    };
    (given(p.consents[0]), given(p.consents[1]), pharmacy)
}

fn one01(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

// ---- the model's answers ---------------------------------------------------

/// The model's answer to a card query on `d`, with the request's limit consent.
fn expect_card(ps: &[Person], insurer: &str, number: &str, birth: u32, d: u32, consent: bool, details: Details) -> Vec<String> {
    let holds = |i: &Ins| i.insurer == insurer && i.number == number;
    let found: Vec<&Person> = ps.iter().filter(|p| p.birth == birth && p.ins.iter().any(holds)).collect();
    let p = match found.as_slice() {
        [] => return vec![model_text("4", vec![])],
        [p] => p,
        _ => return vec![model_text("5", vec![])],
    };
    let entry = |i: &Ins, in_force: bool| {
        let (from, to) = (day(i.from), day(i.lost));
        let s = Shown {
            class: "01",
            period: (&from, &to),
            limit: one01(consent),
            specific: "_",
            pharmacy: "_",
            details: (consent && in_force, false),
        };
        s.text(details)
    };
    let in_force: Vec<&Ins> = p.ins.iter().filter(|i| holds(i) && ins_in_force(i, d)).collect();
    if !in_force.is_empty() {
        // Several in force under one key: the engine shows one of them.
        return in_force.iter().map(|i| model_text("1", vec![entry(i, true)])).collect();
    }
    let held: Vec<&Ins> = p.ins.iter().filter(|i| holds(i)).collect();
    let periods: Vec<Period> = held.iter().map(|i| Period::of_ins(i)).collect();
    let lost = held[model_reference(d, &periods).expect("a held qualification not in force has ended or is to come")];
    let other = p.ins.iter().any(|i| !holds(i) && ins_in_force(i, d)) || p.asst.as_ref().is_some_and(|a| asst_in_force(a, d));
    vec![model_text(if other { "3" } else { "2" }, vec![entry(lost, false)])]
}

fn expect_serial(ps: &[Person], serial: &str, d: u32, details: Details) -> Vec<String> {
    let found: Vec<&Person> = ps.iter().filter(|p| p.cert.as_ref().is_some_and(|c| c.serial == serial)).collect();
    let p = match found.as_slice() {
        [] => return vec![model_text("4", vec![])],
        [p] => p,
        _ => return vec![model_text("EC03", vec![])],
    };
    let c = p.cert.as_ref().expect("filtered on the certificate");
    if c.revoked {
        return vec![model_text("EC01", vec![])];
    }
    if c.to < TODAY {
        return vec![model_text("EC02", vec![])];
    }
    let (limit, specific, pharmacy) = consent_flags(p);
    let ins_entry = |i: &Ins, in_force: bool| {
        let (from, to) = (day(i.from), day(i.lost));
        let s = Shown {
            class: "01",
            period: (&from, &to),
            limit: one01(limit),
            specific: one01(specific),
            pharmacy,
            details: (limit && in_force, specific && in_force),
        };
        s.text(details)
    };
    let asst_entry = |a: &Asst| {
        let (from, to) = (day(ASST_FROM), day(a.end));
        Shown { class: "A1", period: (&from, &to), limit: "_", specific: one01(specific), pharmacy, details: (false, false) }.text(details)
    };
    let mut entries: Vec<String> = p.ins.iter().filter(|i| ins_in_force(i, d)).map(|i| ins_entry(i, true)).collect();
    let insured = !entries.is_empty();
    let asst = p.asst.as_ref().filter(|a| asst_in_force(a, d));
    entries.extend(asst.map(asst_entry));
    if !entries.is_empty() {
        let code = if !insured && asst.is_some_and(|a| !delegated_on(a, d)) { "6" } else { "1" };
        return vec![model_text(code, entries)];
    }
    let mut periods: Vec<Period> = p.ins.iter().map(Period::of_ins).collect();
    periods.extend(p.asst.as_ref().map(Period::of_asst));
    match model_reference(d, &periods) {
        None => vec![model_text("4", vec![])],
        Some(at) if at < p.ins.len() => vec![model_text("2", vec![ins_entry(&p.ins[at], false)])],
        Some(_) => vec![model_text("2", vec![asst_entry(p.asst.as_ref().expect("the last period is the assistance"))])],
    }
}

fn expect_ticket(ps: &[Person], recipient: &str, birth: u32, d: u32) -> Vec<String> {
    let found: Vec<&Person> = ps.iter().filter(|p| p.birth == birth && p.asst.as_ref().is_some_and(|a| a.recipient == recipient)).collect();
    let p = match found.as_slice() {
        [] => return vec![model_text("4", vec![])],
        [p] => p,
        _ => return vec![model_text("5", vec![])],
    };
    let a = p.asst.as_ref().expect("filtered on assistance");
    let (from, to) = (day(ASST_FROM), day(a.end));
    let entry =
        Shown { class: "A1", period: (&from, &to), limit: "_", specific: "_", pharmacy: "_", details: (false, false) }.text(Details::Known);
    let code = if asst_in_force(a, d) {
        if delegated_on(a, d) {
            "1"
        } else {
            "6"
        }
    } else if p.ins.iter().any(|i| ins_in_force(i, d)) {
        "3"
    } else {
        "2"
    };
    vec![model_text(code, vec![entry])]
}

fn on(mut q: Value, d: u32) -> Value {
    q["QualificationConfirmationDate"] = json!(d.to_string());
    q
}

/// Every key of the small key spaces, present or absent, on every date.
fn check_all(engine: &Engine, ps: &[Person], details: Details) -> Result<(), TestCaseError> {
    let check = |q: Value, want: Vec<String>, what: String, details: Details| -> Result<(), TestCaseError> {
        let got = answer_text(&ask(engine, &q), details);
        prop_assert!(want.contains(&got), "{}: engine {:?}, model {:?}", what, got, want);
        Ok(())
    };
    for (k, d) in DATES.into_iter().enumerate() {
        // The request's limit consent on every other date.
        let consent = k % 2 == 0;
        for insurer in INSURERS {
            for number in NUMBERS {
                for birth in BIRTHS {
                    let mut q = on(card(insurer, "S", number, "01", &birth.to_string()), d);
                    if consent {
                        q["InsuranceCard"]["LimitApplicationCertificateRelatedConsFlg"] = json!("1");
                    }
                    let want = expect_card(ps, insurer, number, birth, d, consent, details);
                    check(q, want, format!("card {insurer} {number} {birth} on {d}"), details)?;
                }
            }
        }
        for s in SERIALS.iter().chain(["S9"].iter()) {
            check(on(serial(s, CLINIC), d), expect_serial(ps, s, d, details), format!("serial {s} on {d}"), details)?;
        }
        for r in RECIPIENTS {
            for birth in BIRTHS {
                let q = on(ticket_query(PAYER, r, &birth.to_string(), CLINIC), d);
                check(q, expect_ticket(ps, r, birth, d), format!("ticket {r} {birth} on {d}"), Details::Known)?;
            }
        }
    }
    Ok(())
}

/// One random change to the model, and the delta line that makes it.
fn change(ps: &mut [Person], &(pick, kind, insurer, number, dates, serial_ix): &Op, n: usize) -> Value {
    let p = pick % ps.len();
    match kind % 5 {
        0 => {
            // A new qualification (a job change).
            let i = Ins { qid: format!("QD{n}"), insurer: INSURERS[insurer], number: NUMBERS[number], from: dates.0, lost: dates.1 };
            let line = up("insurance", ins_json(&ps[p], &i));
            ps[p].ins.push(i);
            line
        }
        1 if !ps[p].ins.is_empty() => {
            // An existing qualification changes key, dates, or person.
            let mut i = ps[p].ins.remove(0);
            (i.insurer, i.number, i.from, i.lost) = (INSURERS[insurer], NUMBERS[number], dates.0, dates.1);
            let to = (pick / 7) % ps.len();
            let line = up("insurance", ins_json(&ps[to], &i));
            ps[to].ins.push(i);
            line
        }
        2 if !ps[p].ins.is_empty() => {
            let i = ps[p].ins.remove(0);
            del("insurance", json!({"qualification_id": i.qid}))
        }
        3 => {
            let birth = if ps[p].birth == BIRTHS[0] { BIRTHS[1] } else { BIRTHS[0] };
            ps[p].birth = birth;
            up("persons", json!({"person_id": ps[p].id, "name": "試験　太郎", "sex": "1", "birth_date": birth.to_string()}))
        }
        _ => match &mut ps[p].cert {
            Some(c) => {
                c.revoked = !c.revoked;
                if c.revoked {
                    up("revoked_certificates", json!({"serial_number": c.serial, "revoked_at": "20260101000000"}))
                } else {
                    del("revoked_certificates", json!({"serial_number": c.serial}))
                }
            }
            None => {
                let c = Cert { serial: SERIALS[serial_ix], to: 20301231, revoked: false };
                let line = up(
                    "certificates",
                    json!({"serial_number": c.serial, "processing_number": format!("8{n}"), "person_id": ps[p].id, "valid_from": "20200101", "valid_to": "20301231"}),
                );
                // A revocation of this serial set earlier still applies to the new link.
                ps[p].cert =
                    Some(Cert { revoked: ps.iter().any(|q| q.cert.as_ref().is_some_and(|x| x.serial == c.serial && x.revoked)), ..c });
                line
            }
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn compiled_snapshots_agree_with_the_model(raw in prop::collection::vec(person_strategy(), 1..20)) {
        let ps = people(raw);
        let c = build(&export(&ps));
        prop_assert_eq!(c.summary.rejected, 0);
        let engine = Engine::from_snapshot(Snapshot::load(&c.path()).unwrap());
        check_all(&engine, &ps, Details::Known)?;
    }

    #[test]
    fn random_deltas_interleaved_with_lookups_agree_with_the_model(
        raw in prop::collection::vec(person_strategy(), 2..12),
        ops in prop::collection::vec((any::<usize>(), any::<u8>(), 0..INSURERS.len(), 0..NUMBERS.len(), date_strategy(), 0..SERIALS.len()), 1..30),
        batch_size in 1usize..5,
    ) {
        let mut ps = people(raw);
        let c = build(&export(&ps));
        let engine = Engine::from_snapshot(Snapshot::load(&c.path()).unwrap());
        let mut seq = 0;
        for (n, chunk) in ops.chunks(batch_size).enumerate() {
            let lines: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(k, op)| change(&mut ps, op, n * 10 + k))
                .collect();
            seq += 1;
            engine.apply(&batch(seq, &lines)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_all(&engine, &ps, Details::Unknown)?;
        }
    }
}
