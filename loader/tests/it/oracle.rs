//! Property tests: random exports (and random delta batches on top) must
//! answer exactly as a plain in-memory model answers, absent keys included.
//! The model scans every person for every query: no index, no overlay.

use crate::deltas::{ask, batch, del, up};
use crate::fixture::*;
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
}

fn ins_in_force(i: &Ins) -> bool {
    i.from <= TODAY && (i.lost == 0 || TODAY < i.lost)
}

fn asst_in_force(a: &Asst) -> bool {
    a.end == 0 || TODAY <= a.end
}

fn date_strategy() -> impl Strategy<Value = (u32, u32)> {
    (prop_oneof![Just(20200101u32), Just(20250101), Just(20261201)], prop_oneof![Just(0u32), Just(20240101), Just(TODAY), Just(20270101)])
        .prop_filter("loss after start", |(f, l)| *l == 0 || *l >= *f)
}

/// (birth, insurance (insurer, number, dates), certificate (serial, valid to, revoked), assistance (recipient, end, delegated)).
type RawPerson = (u32, Vec<(usize, usize, (u32, u32))>, Option<(usize, u32, bool)>, Option<(usize, u32, bool)>);
/// (person pick, change kind, insurer, number, dates, serial).
type Op = (usize, u8, usize, usize, (u32, u32), usize);

fn person_strategy() -> impl Strategy<Value = RawPerson> {
    (
        0..BIRTHS.len(),
        prop::collection::vec((0..INSURERS.len(), 0..NUMBERS.len(), date_strategy()), 0..3),
        prop::option::of((0..SERIALS.len(), prop_oneof![Just(20301231u32), Just(20250101)], prop::bool::weighted(0.2))),
        prop::option::of((0..RECIPIENTS.len(), prop_oneof![Just(0u32), Just(20251231)], any::<bool>())),
    )
        .prop_map(|(b, ins, cert, asst)| (BIRTHS[b], ins, cert, asst))
}

fn people(raw: Vec<RawPerson>) -> Vec<Person> {
    let mut ps: Vec<Person> = raw
        .into_iter()
        .enumerate()
        .map(|(p, (birth, ins, cert, asst))| Person {
            id: format!("P{p}"),
            birth,
            ins: ins
                .into_iter()
                .enumerate()
                .map(|(q, (i, n, (from, lost)))| Ins { qid: format!("Q{p}-{q}"), insurer: INSURERS[i], number: NUMBERS[n], from, lost })
                .collect(),
            cert: cert.map(|(s, to, revoked)| Cert { serial: SERIALS[s], to, revoked }),
            asst: asst.map(|(r, end, delegated)| Asst { recipient: RECIPIENTS[r], end, delegated }),
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
            e.assistance(&aid, &p.id, PAYER, a.recipient, "20200101", &date(a.end));
            if a.delegated {
                e.ticket(&format!("T{}", p.id), &aid, "202611", CLINIC);
            }
        }
    }
    e
}

/// The model's answer: a validity code, or an error code.
fn expect_card(ps: &[Person], insurer: &str, number: &str, birth: u32) -> String {
    let holds = |i: &Ins| i.insurer == insurer && i.number == number;
    let found: Vec<&Person> = ps.iter().filter(|p| p.birth == birth && p.ins.iter().any(holds)).collect();
    match found.as_slice() {
        [] => "4".into(),
        [p] if p.ins.iter().any(|i| holds(i) && ins_in_force(i)) => "1".into(),
        [p] if p.ins.iter().any(|i| !holds(i) && ins_in_force(i)) || p.asst.as_ref().is_some_and(asst_in_force) => "3".into(),
        [_] => "2".into(),
        _ => "5".into(),
    }
}

fn expect_serial(ps: &[Person], serial: &str) -> String {
    let found: Vec<&Person> = ps.iter().filter(|p| p.cert.as_ref().is_some_and(|c| c.serial == serial)).collect();
    let p = match found.as_slice() {
        [] => return "4".into(),
        [p] => p,
        _ => return "EC03".into(),
    };
    let c = p.cert.as_ref().expect("filtered on the certificate");
    if c.revoked {
        return "EC01".into();
    }
    if c.to < TODAY {
        return "EC02".into();
    }
    let ins = p.ins.iter().any(ins_in_force);
    let asst = p.asst.as_ref().filter(|a| asst_in_force(a));
    match (ins, asst) {
        (false, None) if p.ins.is_empty() && p.asst.is_none() => "4".into(),
        (false, None) => "2".into(),
        (false, Some(a)) if !a.delegated => "6".into(),
        _ => "1".into(),
    }
}

fn expect_ticket(ps: &[Person], recipient: &str, birth: u32) -> String {
    let found: Vec<&Person> = ps.iter().filter(|p| p.birth == birth && p.asst.as_ref().is_some_and(|a| a.recipient == recipient)).collect();
    match found.as_slice() {
        [] => "4".into(),
        [p] => {
            let a = p.asst.as_ref().expect("filtered on assistance");
            if asst_in_force(a) {
                if a.delegated { "1" } else { "6" }.into()
            } else if p.ins.iter().any(ins_in_force) {
                "3".into()
            } else {
                "2".into()
            }
        }
        _ => "5".into(),
    }
}

fn got(engine: &Engine, q: &Value) -> String {
    let a = ask(engine, q);
    a.validity().or(a.message_body.processing_result_code.as_deref()).unwrap_or_default().to_string()
}

/// Every key of the small key spaces, present or absent.
fn check_all(engine: &Engine, ps: &[Person]) -> Result<(), TestCaseError> {
    for insurer in INSURERS {
        for number in NUMBERS {
            for birth in BIRTHS {
                let q = card(insurer, "S", number, "01", &birth.to_string());
                prop_assert_eq!(got(engine, &q), expect_card(ps, insurer, number, birth), "card {} {} {}", insurer, number, birth);
            }
        }
    }
    for s in SERIALS.iter().chain(["S9"].iter()) {
        prop_assert_eq!(got(engine, &serial(s, CLINIC)), expect_serial(ps, s), "serial {}", s);
    }
    for r in RECIPIENTS {
        for birth in BIRTHS {
            let q = ticket_query(PAYER, r, &birth.to_string(), CLINIC);
            prop_assert_eq!(got(engine, &q), expect_ticket(ps, r, birth), "ticket {} {}", r, birth);
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
        check_all(&engine, &ps)?;
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
            check_all(&engine, &ps)?;
        }
    }
}
