//! Deltas over a snapshot, the delta log, swaps and folding (issue 4).

use std::io::Write;

use crate::fixture::*;
use elig_engine::answer::Answer;
use elig_engine::delta::Digest;
use elig_engine::engine::{DeltaError, Engine, EngineOptions, SwapError};
use elig_engine::lookup::Clock;
use elig_engine::snapshot::Snapshot;
use serde_json::{json, Value};

const SOCIETY: &str = "06130488";
pub const KENPO: &str = "01130012";
const PAYER: &str = "12130019";

fn base() -> Export {
    let mut e = Export::default();
    e.person("P1", "山田　太郎", "19800101").insurance("Q1", "P1", SOCIETY, "A", "1", "01", "20200101", "").certificate(
        "AB01",
        "1000000000000001",
        "P1",
        "20220101",
        "20301231",
    );
    e.person("P2", "佐藤　花子", "19700101").insurance("Q2", "P2", KENPO, "B", "2", "01", "20200101", "");
    e
}

pub fn batch(seq: u64, changes: &[Value]) -> Vec<u8> {
    let mut text = json!({"seq": seq, "created": "20261122101500"}).to_string();
    for c in changes {
        text.push('\n');
        text.push_str(&c.to_string());
    }
    text.into_bytes()
}

pub fn up(table: &str, row: Value) -> Value {
    json!({"op": "upsert", "table": table, "row": row})
}

pub fn del(table: &str, key: Value) -> Value {
    json!({"op": "delete", "table": table, "key": key})
}

pub fn ask(engine: &Engine, q: &Value) -> Answer {
    rendered_as_built(&engine.pin().view(), q)
}

pub fn code(engine: &Engine, q: &Value) -> String {
    let a = ask(engine, q);
    a.validity().or(a.message_body.processing_result_code.as_deref()).unwrap_or_default().to_string()
}

fn ins_row(qid: &str, pid: &str, insurer: &str, number: &str, lost: &str) -> Value {
    json!({"qualification_id": qid, "person_id": pid, "insurer_number": insurer, "card_symbol": "A", "card_number": number,
           "branch_number": "01", "card_classification": "01", "personal_family": "1", "insurer_name": "組合",
           "qualification_date": "20200101", "disqualification_date": lost, "reason_of_loss": if lost.is_empty() { "" } else { "03" }})
}

fn engine_on(c: &Compiled) -> Engine {
    Engine::from_snapshot(Snapshot::load(&c.path()).unwrap())
}

#[test]
fn every_table_upserts_and_deletes() {
    let c = build(&base());
    let e = engine_on(&c);
    let card1 = card(SOCIETY, "A", "1", "01", "19800101");
    let my1 = serial("AB01", CLINIC);
    let mut seq = 0;
    let mut apply = |changes: &[Value]| {
        seq += 1;
        e.apply(&batch(seq, changes)).unwrap_or_else(|err| panic!("batch {seq}: {err}"))
    };
    // persons: a new person with a qualification and a certificate, in one batch.
    apply(&[
        up("persons", json!({"person_id": "P9", "name": "新人　一", "sex": "1", "birth_date": "20000101"})),
        up("insurance", ins_row("Q9", "P9", KENPO, "99", "")),
        up(
            "certificates",
            json!({"serial_number": "CD09", "processing_number": "9", "person_id": "P9", "valid_from": "20220101", "valid_to": "20301231"}),
        ),
    ]);
    assert_eq!(code(&e, &card(KENPO, "A", "99", "01", "20000101")), "1");
    assert_eq!(code(&e, &serial("CD09", CLINIC)), "1");
    // persons upsert keeps the children, changes the name.
    apply(&[up("persons", json!({"person_id": "P1", "name": "山田　改名", "sex": "1", "birth_date": "19800101"}))]);
    let a = ask(&e, &card1);
    assert_eq!(a.message_body.result_list[0].name.as_deref(), Some("山田　改名"));
    // revoked certificates: upsert revokes, delete lifts.
    apply(&[up("revoked_certificates", json!({"serial_number": "AB01", "revoked_at": "20261122000000"}))]);
    assert_eq!(code(&e, &my1), "EC01");
    apply(&[del("revoked_certificates", json!({"serial_number": "AB01"}))]);
    assert_eq!(code(&e, &my1), "1");
    // certificates delete.
    apply(&[del("certificates", json!({"serial_number": "CD09", "person_id": "P9"}))]);
    assert_eq!(code(&e, &serial("CD09", CLINIC)), "4");
    // insurance: loss, then the key moves to a new insurer.
    apply(&[up("insurance", ins_row("Q1", "P1", SOCIETY, "1", "20261101"))]);
    assert_eq!(code(&e, &card1), "2");
    apply(&[up("insurance", ins_row("Q1", "P1", KENPO, "7", ""))]);
    assert_eq!(code(&e, &card1), "4", "the old key is gone");
    assert_eq!(code(&e, &card(KENPO, "A", "7", "01", "19800101")), "1");
    // a qualification moves to another person.
    apply(&[up("insurance", ins_row("Q9", "P2", KENPO, "99", ""))]);
    assert_eq!(code(&e, &card(KENPO, "A", "99", "01", "20000101")), "4");
    assert_eq!(code(&e, &card(KENPO, "A", "99", "01", "19700101")), "1");
    // attached certificates.
    let mut with_consent = card(KENPO, "A", "7", "01", "19800101");
    with_consent["InsuranceCard"]["LimitApplicationCertificateRelatedConsFlg"] = json!("1");
    apply(&[
        up(
            "elderly_certificates",
            json!({"qualification_id": "Q1", "valid_from": "20260101", "valid_to": "20271231", "contribution_ratio": "020"}),
        ),
        up(
            "limit_certificates",
            json!({"qualification_id": "Q1", "classification": "01", "category": "A01", "valid_from": "20260101", "valid_to": "20271231"}),
        ),
        up(
            "specific_disease_certificates",
            json!({"qualification_id": "Q1", "category": "1", "valid_from": "20260101", "self_pay": "10000"}),
        ),
        up(
            "consents",
            json!({"institution_code": CLINIC, "person_id": "P1", "kind": "specific_disease", "consented_at": "20261122090000"}),
        ),
    ]);
    let r = ask(&e, &with_consent).message_body.result_list.remove(0);
    assert!(r.elderly_recipient_certificate_info.is_some() && r.limit_application_certificate_related_info.is_some());
    let r = ask(&e, &my1).message_body.result_list.remove(0);
    assert_eq!(r.specific_diseases_certificate_list.map(|l| l.len()), Some(1));
    assert_eq!(r.specific_diseases_certificate_related_cons_flg.as_deref(), Some("1"));
    apply(&[
        del("elderly_certificates", json!({"qualification_id": "Q1"})),
        del("limit_certificates", json!({"qualification_id": "Q1"})),
        del("specific_disease_certificates", json!({"qualification_id": "Q1", "category": "1"})),
        del("consents", json!({"institution_code": CLINIC, "person_id": "P1", "kind": "specific_disease"})),
    ]);
    let r = ask(&e, &with_consent).message_body.result_list.remove(0);
    assert!(r.elderly_recipient_certificate_info.is_none() && r.limit_application_certificate_related_info.is_none());
    assert_eq!(ask(&e, &my1).message_body.result_list[0].specific_diseases_certificate_related_cons_flg.as_deref(), Some("0"));
    // assistance and tickets.
    let tq = ticket_query(PAYER, "1234566", "19800101", CLINIC);
    apply(&[up(
        "assistance",
        json!({"assistance_id": "A1", "person_id": "P1", "payer_number": PAYER, "recipient_number": "1234566", "welfare_office": "福祉事務所", "start_date": "20260101"}),
    )]);
    assert_eq!(code(&e, &tq), "6");
    apply(&[up(
        "tickets",
        json!({"ticket_id": "T1", "assistance_id": "A1", "ticket_type": "01", "treatment_month": "202611", "valid_from": "20261101", "valid_to": "20261130", "institution_code": CLINIC}),
    )]);
    assert_eq!(code(&e, &tq), "1");
    apply(&[del("tickets", json!({"ticket_id": "T1"}))]);
    assert_eq!(code(&e, &tq), "6");
    apply(&[del("assistance", json!({"assistance_id": "A1"}))]);
    assert_eq!(code(&e, &tq), "4");
    // reference numbers and consents.
    apply(&[
        up("reference_numbers", json!({"institution_code": CLINIC, "person_id": "P1", "reference_number": "R-1"})),
        up(
            "consents",
            json!({"institution_code": CLINIC, "person_id": "P1", "kind": "pharmacy", "consented_at": "20261122090000", "expires_at": "20261123090000"}),
        ),
    ]);
    let r = ask(&e, &my1).message_body.result_list.remove(0);
    assert_eq!((r.reference_number.as_deref(), r.pharmacists_info_cons_flg.as_deref()), (Some("R-1"), Some("1")));
    apply(&[
        del("reference_numbers", json!({"institution_code": CLINIC, "person_id": "P1"})),
        del("consents", json!({"institution_code": CLINIC, "person_id": "P1", "kind": "pharmacy"})),
    ]);
    let r = ask(&e, &my1).message_body.result_list.remove(0);
    assert_eq!((r.reference_number.as_deref(), r.pharmacists_info_cons_flg.as_deref()), (None, Some("0")));
    // insurance delete, person delete.
    apply(&[del("insurance", json!({"qualification_id": "Q2"}))]);
    assert_eq!(code(&e, &card(KENPO, "B", "2", "01", "19700101")), "4");
    apply(&[del("persons", json!({"person_id": "P1"}))]);
    assert_eq!(code(&e, &my1), "4");
    assert_eq!(code(&e, &card(KENPO, "A", "7", "01", "19800101")), "4");
    let a = ask(&e, &my1);
    assert_eq!(a.message_header.delta_sequence, seq.to_string(), "the answer names the delta sequence");
}

#[test]
fn gaps_repeats_and_bad_lines() {
    let c = build(&base());
    let e = engine_on(&c);
    let new_person = up("persons", json!({"person_id": "P9", "name": "x", "sex": "1", "birth_date": "20000101"}));
    let b1 = batch(1, std::slice::from_ref(&new_person));
    let ack = e.apply(&b1).unwrap();
    assert!(!ack.duplicate);
    let again = e.apply(&b1).unwrap();
    assert!(again.duplicate, "a repeated seq is acknowledged without effect");
    assert_eq!(e.status().overlay.changed_rows, 1);
    match e.apply(&batch(3, &[])) {
        Err(DeltaError::Gap { expected: 2, got: 3 }) => {}
        other => panic!("expected a gap, got {other:?}"),
    }
    // One bad line refuses the whole batch: the good first line is not applied.
    let bad = batch(2, &[up("insurance", ins_row("Q7", "P9", KENPO, "77", "")), up("insurance", ins_row("Q8", "P404", KENPO, "88", ""))]);
    let err = e.apply(&bad).unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("person_id 'P404' does not exist"), "{err}");
    assert_eq!(code(&e, &card(KENPO, "A", "77", "01", "20000101")), "4");
    let invalid = batch(2, &[up("insurance", ins_row("Q7", "P9", "01130013", "77", ""))]);
    let err = e.apply(&invalid).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("insurer_number") && err.contains("check digit"), "{err}");
    // The sequence did not move: batch 2 is still the next one.
    e.apply(&batch(2, &[up("insurance", ins_row("Q7", "P9", KENPO, "77", ""))])).unwrap();
    assert_eq!(code(&e, &card(KENPO, "A", "77", "01", "20000101")), "1");
}

#[test]
fn acknowledged_batches_survive_a_restart_and_a_torn_tail_is_dropped() {
    let c = build(&base());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deltas.log");
    {
        let (e, replay) = Engine::open_with_log(&c.path(), &log).unwrap();
        assert_eq!(replay.replayed, 0);
        e.apply(&batch(1, &[up("insurance", ins_row("Q5", "P2", KENPO, "55", ""))])).unwrap();
        e.apply(&batch(2, &[del("insurance", json!({"qualification_id": "Q2"}))])).unwrap();
    }
    // A crash while writing batch 3: half of its record reached the disk.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"ELDL\x40\x00\x00\x00\x03\x00\x00\x00").unwrap();
    drop(f);
    let (e, replay) = Engine::open_with_log(&c.path(), &log).unwrap();
    assert_eq!((replay.replayed, replay.dropped_bytes), (2, 12));
    assert_eq!(code(&e, &card(KENPO, "A", "55", "01", "19700101")), "1");
    assert_eq!(code(&e, &card(KENPO, "B", "2", "01", "19700101")), "4");
    // Batch 3 was never acknowledged, so it is expected next.
    e.apply(&batch(3, &[])).unwrap();
}

fn conflict_message(seq: u64, applied: &[u8], offered: &[u8]) -> String {
    let (a, o) = (Digest::of_batch(applied).unwrap(), Digest::of_batch(offered).unwrap());
    format!(
        "batch {seq} refused: a different batch was applied under seq {seq} (applied digest {a}, this batch's digest {o}); send new changes under a new seq"
    )
}

#[test]
fn a_different_batch_under_an_applied_seq_is_refused_naming_both_digests() {
    let c = build(&base());
    let e = engine_on(&c);
    let b1 = batch(1, &[up("insurance", ins_row("Q5", "P2", KENPO, "55", ""))]);
    e.apply(&b1).unwrap();
    // The same changes again (another created time, CRLF): a repeat.
    let same = String::from_utf8(b1.clone()).unwrap().replace("20261122101500", "20261122111500").replace('\n', "\r\n");
    assert!(e.apply(same.as_bytes()).unwrap().duplicate);
    // Other changes under seq 1: refused, and they are not applied.
    let other = batch(1, &[up("insurance", ins_row("Q6", "P2", KENPO, "66", ""))]);
    let err = e.apply(&other).unwrap_err();
    assert!(matches!(err, DeltaError::Conflict { seq: 1, .. }), "{err:?}");
    assert_eq!(err.to_string(), conflict_message(1, &b1, &other));
    assert_eq!(code(&e, &card(KENPO, "A", "66", "01", "19700101")), "4");
    assert_eq!(code(&e, &card(KENPO, "A", "55", "01", "19700101")), "1", "batch 1 stays applied");
    assert_eq!((e.status().delta_seq, e.status().overlay.changed_rows), (1, 1));
    // Fewer changes (none) under seq 1 is a different batch too.
    assert!(matches!(e.apply(&batch(1, &[])), Err(DeltaError::Conflict { seq: 1, .. })));
}

#[test]
fn a_batch_with_no_changes_is_acknowledged_and_uses_up_its_seq() {
    let c = build(&base());
    let e = engine_on(&c);
    let ack = e.apply(&batch(1, &[])).unwrap();
    assert_eq!((ack.seq, ack.duplicate, ack.rows), (1, false, 0));
    assert_eq!(e.status().delta_seq, 1);
    assert!(e.apply(&batch(1, &[])).unwrap().duplicate);
    assert!(matches!(e.apply(&batch(1, &[del("insurance", json!({"qualification_id": "Q2"}))])), Err(DeltaError::Conflict { .. })));
    match e.apply(&batch(3, &[])) {
        Err(DeltaError::Gap { expected: 2, got: 3 }) => {}
        other => panic!("batch 2 is the next one, got {other:?}"),
    }
    assert_eq!(e.apply(&batch(2, &[])).unwrap().seq, 2);
}

#[test]
fn digests_of_folded_batches_survive_compaction_and_a_restart() {
    let Folded { c: _c, dir: _dir, log, engine: e, folded, .. } = batch_one_folded();
    let b1 = batch(1, &[up("insurance", ins_row("Q5", "P2", KENPO, "55", ""))]);
    let b2 = batch(2, &[up("insurance", ins_row("Q6", "P2", KENPO, "66", ""))]);
    e.apply(&b2).unwrap();
    // The swap compacts batch 1 out of the log.
    e.swap(&folded).unwrap();
    let (records, _) = elig_engine::delta_log::parse(&std::fs::read(&log).unwrap());
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    drop(e);
    let (e, replay) = Engine::open_with_log(&folded, &log).unwrap();
    assert_eq!(replay.replayed, 1);
    let other1 = batch(1, &[up("insurance", ins_row("Q7", "P2", KENPO, "77", ""))]);
    assert_eq!(e.apply(&other1).unwrap_err().to_string(), conflict_message(1, &b1, &other1));
    let other2 = batch(2, &[up("insurance", ins_row("Q8", "P2", KENPO, "88", ""))]);
    assert_eq!(e.apply(&other2).unwrap_err().to_string(), conflict_message(2, &b2, &other2));
    assert!(e.apply(&b1).unwrap().duplicate);
    assert!(e.apply(&b2).unwrap().duplicate);
    assert_eq!(code(&e, &card(KENPO, "A", "55", "01", "19700101")), "1");
    assert_eq!(code(&e, &card(KENPO, "A", "66", "01", "19700101")), "1");
    assert_eq!(code(&e, &card(KENPO, "A", "77", "01", "19700101")), "4");
}

/// An engine with its log on the base snapshot, batch 1 applied (a card
/// `55` for P2), and that batch folded into a new snapshot `snap2`
/// (generation 2, delta_seq 1).
pub struct Folded {
    pub c: Compiled,
    pub dir: tempfile::TempDir,
    pub log: std::path::PathBuf,
    pub engine: Engine,
    pub folded: std::path::PathBuf,
    pub summary: elig_loader::compile::CompileSummary,
}

pub fn batch_one_folded() -> Folded {
    let c = build(&base());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("deltas.log");
    let (engine, _) = Engine::open_with_log(&c.path(), &log).unwrap();
    engine.apply(&batch(1, &[up("insurance", ins_row("Q5", "P2", KENPO, "55", ""))])).unwrap();
    let folded = dir.path().join("snap2");
    let summary = elig_loader::fold::fold(&elig_loader::fold::FoldOptions {
        base: c.path(),
        deltas: log.clone(),
        out: folded.clone(),
        generation: Some(2),
        today: Some(20261122),
        retain_lost_days: None,
        threads: elig_loader::compile::default_threads(),
    })
    .unwrap();
    Folded { c, dir, log, engine, folded, summary }
}

/// `Some(true)` when this process may lock any amount of memory
/// (`CAP_IPC_LOCK`, which root has, or an unlimited `RLIMIT_MEMLOCK`),
/// `Some(false)` with neither and a zero limit; `None` when /proc does not
/// say, or the limit is finite (other tests lock snapshots at the same time).
fn may_lock_memory() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let caps = u64::from_str_radix(status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim(), 16).ok()?;
    if caps & (1 << 14) != 0 {
        return Some(true);
    }
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let soft = limits.lines().find_map(|l| l.strip_prefix("Max locked memory"))?.split_whitespace().next()?;
    match soft {
        "unlimited" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

#[test]
fn a_swap_moves_the_memory_lock_to_the_new_snapshot() {
    let Folded { c, dir, engine: e, folded, .. } = batch_one_folded();
    let old = e.pin();
    // Whether this host lets a process lock memory, known apart from the
    // engine where /proc tells; the status must say so.
    let permitted = may_lock_memory().unwrap_or_else(|| {
        eprintln!("cannot tell from /proc whether memory may be locked here: checking the status against the snapshot only");
        old.snapshot.memory_locked()
    });
    assert_eq!(old.snapshot.memory_locked(), permitted);
    assert_eq!(e.status().memory_locked, permitted);
    e.swap(&folded).unwrap();
    assert!(!old.snapshot.memory_locked(), "the outgoing snapshot is unlocked, so the limit covers one snapshot");
    assert_eq!(e.status().memory_locked, permitted, "the new snapshot is locked wherever the first one was");
    // Without the option nothing is locked.
    let (plain, _) = Engine::open_with_log_using(
        &c.path(),
        &dir.path().join("other.log"),
        EngineOptions { lock_memory: false, ..EngineOptions::default() },
    )
    .unwrap();
    assert!(!plain.status().memory_locked);
}

#[test]
fn swap_carries_newer_deltas_and_refuses_bad_snapshots() {
    let Folded { c, dir, log, engine: e, folded, summary: s } = batch_one_folded();
    assert_eq!(s.manifest.delta_seq, 1);
    e.apply(&batch(2, &[up("insurance", ins_row("Q6", "P2", KENPO, "66", ""))])).unwrap();
    let report = e.swap(&folded).unwrap();
    assert_eq!((report.generation, report.snapshot_delta_seq, report.replayed), (2, 1, 1));
    assert_eq!(e.status().delta_seq, 2);
    assert_eq!(code(&e, &card(KENPO, "A", "55", "01", "19700101")), "1", "included in the snapshot");
    assert_eq!(code(&e, &card(KENPO, "A", "66", "01", "19700101")), "1", "carried over");
    let a = ask(&e, &card(KENPO, "A", "66", "01", "19700101"));
    assert_eq!((a.message_header.snapshot_generation.as_str(), a.message_header.delta_sequence.as_str()), ("2", "2"));
    // The log now holds only batch 2.
    // (Read, not opened: the engine holds the log's lock.)
    let (records, _) = elig_engine::delta_log::parse(&std::fs::read(&log).unwrap());
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);

    // Older (generation 1): refused, generation 2 keeps serving.
    let err = e.swap(&c.path()).unwrap_err();
    assert!(matches!(err, SwapError::NotNewer { live: 2, offered: 1 }), "{err}");
    // Corrupt: refused.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    for f in std::fs::read_dir(&folded).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, corrupt.join(p.file_name().unwrap())).unwrap();
    }
    let shard = corrupt.join("persons-00000.rkyv");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[5] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    // A newer generation in a manifest resealed to match, so the shard is
    // what verify refuses.
    crate::fixture::reseal_manifest(&corrupt, |m| m.generation = 3);
    let err = e.swap(&corrupt).unwrap_err().to_string();
    assert!(err.contains("live snapshot keeps serving") && err.contains("persons-00000.rkyv"), "{err}");
    // An edited manifest (not resealed): refused by its checksum.
    let m = corrupt.join("manifest.json");
    std::fs::write(&m, std::fs::read_to_string(&m).unwrap().replace("\"delta_seq\": 1", "\"delta_seq\": 4")).unwrap();
    let err = e.swap(&corrupt).unwrap_err().to_string();
    assert!(err.contains("manifest checksum mismatch"), "{err}");
    // Wrong format version: refused.
    let version = format!("\"format_version\": {}", elig_engine::envelope::FORMAT_VERSION);
    std::fs::write(&m, std::fs::read_to_string(&m).unwrap().replace(&version, "\"format_version\": 9")).unwrap();
    assert!(e.swap(&corrupt).unwrap_err().to_string().contains("format version 9"));
    assert_eq!(e.pin().id(), 2);
    assert_eq!(code(&e, &card(KENPO, "A", "66", "01", "19700101")), "1");
}

#[test]
fn swaps_under_concurrent_lookups_never_fail_or_mix_generations() {
    let mut export = Export::default();
    for i in 0..200 {
        let pid = format!("P{i}");
        export.person(&pid, "山田　太郎", "19800101").insurance(&format!("Q{i}"), &pid, SOCIETY, "A", &i.to_string(), "01", "20200101", "");
    }
    let dir = tempfile::tempdir().unwrap();
    export.write(&dir.path().join("export"));
    let mut snaps = Vec::new();
    for g in 1..=4u64 {
        let mut o = options(dir.path());
        o.out = dir.path().join(format!("snap{g}"));
        o.generation = Some(g);
        snaps.push(elig_loader::compile::compile(&o).unwrap().out);
    }
    let e = std::sync::Arc::new(Engine::from_snapshot(Snapshot::load(&snaps[0]).unwrap()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let gen = e.pin();
                    let view = gen.view();
                    // A bulk of 20 from one pinned view: one generation throughout.
                    let mut seen = std::collections::HashSet::new();
                    for i in 0..20 {
                        let q = card(SOCIETY, "A", &((i * 7 + t) % 200).to_string(), "01", "19800101");
                        let a = view.answer_document(q.to_string().as_bytes(), Clock::at(NOW));
                        assert_eq!(a.validity(), Some("1"), "{a:?}");
                        seen.insert(a.message_header.snapshot_generation.clone());
                    }
                    assert_eq!(seen.len(), 1, "one bulk, one generation");
                    n += 20;
                }
                n
            })
        })
        .collect();
    // 100 swaps: generations 2, 3, 4 then a freshly compiled one each time.
    for round in 0..100u64 {
        let target = if round < 3 {
            snaps[round as usize + 1].clone()
        } else {
            let mut o = options(dir.path());
            o.out = dir.path().join(format!("snap-r{round}"));
            o.generation = Some(round + 10);
            let out = elig_loader::compile::compile(&o).unwrap().out;
            if round > 4 {
                let _ = std::fs::remove_dir_all(dir.path().join(format!("snap-r{}", round - 2)));
            }
            out
        };
        e.swap(&target).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: u64 = readers.into_iter().map(|r| r.join().expect("no reader failed")).sum();
    assert!(answered > 0);
    assert_eq!(e.pin().id(), 109);
}

#[test]
fn the_fold_command_keeps_the_base_snapshots_retention_unless_told() {
    let (dir, r) = try_compile(&base(), |o| o.retain_lost_days = 30);
    let base_dir = r.expect("compile").out;
    let log = dir.path().join("deltas.log");
    {
        let (e, _) = Engine::open_with_log(&base_dir, &log).unwrap();
        e.apply(&batch(1, &[up("insurance", ins_row("Q5", "P2", KENPO, "55", ""))])).unwrap();
    }
    let fold = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_elig-loader"))
            .args(["compile", "--base"])
            .arg(&base_dir)
            .arg("--deltas")
            .arg(&log)
            .arg("--out")
            .arg(&out)
            .args(["--today", "20261122"])
            .args(extra)
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        elig_engine::snapshot::read_manifest(&out).unwrap().retain_lost_days
    };
    assert_eq!(fold("kept", &[]), 30, "the base snapshot's retention");
    assert_eq!(fold("given", &["--retain-lost-days", "90"]), 90);
}
