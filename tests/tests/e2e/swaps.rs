//! Snapshot swaps over QUIC (issue 4): bad snapshots are refused while the
//! live one keeps answering; 100 swaps under concurrent lookups and bulk
//! inquiries fail no request and never mix generations in one answer.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use elig_client::{Client, ClientError};
use elig_engine::answer::Answer;
use elig_tests::{batch, compile_generation, fixture, insurance_row, upsert, valid_cards, As, Keys, TestServer, Writable, TODAY};

fn refused(e: ClientError) -> (String, String) {
    match e {
        ClientError::Refused { code, message } => (code, message),
        other => panic!("a refusal expected, got {other}"),
    }
}

fn generation_of(a: &Answer) -> u64 {
    a.message_header.snapshot_generation.parse().expect("a numeric SnapshotGeneration")
}

/// A copy of a snapshot directory, `edit`ed.
fn copy_snapshot(from: &Path, to: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    edit(to);
    to.to_path_buf()
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_the_live_one_keeps_answering() {
    let fx = fixture();
    let keys = &fx.keys;
    let dir = tempfile::tempdir().unwrap();
    let live_gen = fx.engine.pin().id();
    let older = compile_generation(&dir.path().join("older"), 1);
    let newer = compile_generation(&dir.path().join("newer"), live_gen + 1);
    let corrupt = copy_snapshot(&newer, &dir.path().join("corrupt"), |d| {
        let shard = d.join("persons-00000.rkyv");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&shard, bytes).unwrap();
    });
    let version = copy_snapshot(&newer, &dir.path().join("version"), |d| edit_manifest(d, |m| m["format_version"] = 9.into()));

    let w = Writable::fixture();
    let srv = TestServer::start_writable(&w).await;
    let op = srv.client(As::Operator).await;
    let central = srv.client(As::Central).await;
    let card = |id: &str| keys.valid_card_query(keys.institution(), id);
    // A batch before the swaps, carried over by the good one at the end.
    let row = insurance_row("Q-S1", &keys.card_valid_person, &keys.card_valid.0, "S", "1");
    op.delta(&batch(1, &[upsert("insurance", row)])).await.unwrap();

    let path = |p: &Path| p.display().to_string();
    let cases = [
        (path(&corrupt), "ES01", "checksum mismatch"),
        (path(&version), "ES02", "format version 9"),
        (path(&older), "ES03", &format!("generation 1 is not newer than the live generation {live_gen}") as &str),
        (path(&dir.path().join("missing")), "ES01", "missing"),
        ("relative/snapshot".to_string(), "EF05", "must be an absolute path"),
    ];
    for (snapshot, code, text) in cases {
        let (got, message) = refused(op.swap(&snapshot).await.unwrap_err());
        assert_eq!(got, code, "{snapshot}: {message}");
        assert!(message.contains(text), "{snapshot}: {message}");
        if code.starts_with("ES") {
            assert!(message.contains("the live snapshot keeps serving"), "{message}");
        }
        // The live snapshot keeps answering, deltas included.
        let a = central.lookup(card("after-refusal").as_bytes()).await.unwrap();
        assert_eq!((a.validity(), generation_of(&a), a.message_header.delta_sequence.as_str()), (Some("1"), live_gen, "1"));
        assert_eq!(op.status().await.unwrap().engine.generation, live_gen);
    }
    assert!(!w.dir.path().join("deltas.log.snapshot").exists(), "no refused swap is recorded");

    let report = op.swap(&path(&newer)).await.unwrap();
    assert_eq!((report.previous_generation, report.generation, report.replayed, report.delta_seq), (live_gen, live_gen + 1, 1, 1));
    assert_eq!(report.compact_error.as_deref(), None);
    let new_card =
        Keys::card_query(&(keys.card_valid.0.clone(), "S".into(), "1".into(), "01".into(), keys.card_valid.4), keys.institution(), "s");
    let a = central.lookup(new_card.as_bytes()).await.unwrap();
    assert_eq!((a.validity(), generation_of(&a), a.message_header.delta_sequence.as_str()), (Some("1"), live_gen + 1, "1"));
    let s = op.status().await.unwrap().engine;
    assert_eq!((s.generation, s.snapshot_dir.as_str(), s.delta_seq), (live_gen + 1, path(&newer).as_str(), 1));
    // A restart would open the snapshot swapped in.
    let record = std::fs::read_to_string(w.dir.path().join("deltas.log.snapshot")).unwrap();
    assert_eq!(record.trim_end(), path(&newer));
}

/// Items of each bulk inquiry of the load.
const BULK_ITEMS: usize = 60;

/// What one load task saw.
#[derive(Debug, Default)]
struct Seen {
    lookups: u64,
    bulks: u64,
    /// Bulks during which at least one swap completed.
    bulks_across_swaps: u64,
    generations: std::collections::BTreeSet<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_swaps_under_lookups_and_bulks_fail_nothing_and_mix_nothing() {
    const SWAPS: u64 = 100;
    const COMPILERS: u64 = 4;
    // A smaller export of its own (101 compiles of it).
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    elig_loader::gen::generate(&elig_loader::gen::GenOptions::new(400, 11, TODAY), &export).unwrap();
    let compile = |out: PathBuf, generation: u64| {
        let mut o = elig_loader::compile::CompileOptions::new(&export, out);
        o.generation = Some(generation);
        o.today = Some(TODAY);
        elig_loader::compile::compile(&o).unwrap().out
    };
    let first = compile(dir.path().join("gen-1"), 1);
    let w = Writable::open(&first);
    let cards = valid_cards(&w.engine, 40);
    assert!(cards.len() >= 20, "the export has valid cards");
    let inst = fixture().keys.institution().to_string();
    let queries: Arc<Vec<Vec<u8>>> =
        Arc::new(cards.iter().enumerate().map(|(i, c)| Keys::card_query(&c.card, &inst, &format!("c{i}")).into_bytes()).collect());
    let srv = TestServer::start_writable(&w).await;
    let op = srv.client(As::Operator).await;

    // Generations 2..=101, compiled up front on a few threads (compiles
    // mostly wait for fsync).
    let root = dir.path();
    let mut snapshots: Vec<(u64, PathBuf)> = std::thread::scope(|scope| {
        let parts: Vec<_> = (0..COMPILERS)
            .map(|part| {
                let compile = &compile;
                scope.spawn(move || {
                    (2..=SWAPS + 1)
                        .filter(|g| g % COMPILERS == part)
                        .map(|g| (g, compile(root.join(format!("gen-{g}")), g)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().expect("compiling")).collect()
    });
    snapshots.sort();
    let mut rx = snapshots.into_iter();

    // The first swap with a bulk inquiry in flight: it finishes on generation 1.
    let central = srv.client(As::Central).await;
    let big: Vec<Vec<u8>> = queries.iter().cycle().take(3000).cloned().collect();
    let mut results = central.bulk(big).await.unwrap();
    assert_eq!(generation_of(&results.next().await.unwrap().unwrap()), 1);
    let (g, snapshot) = rx.next().unwrap();
    assert_eq!(op.swap(&snapshot.display().to_string()).await.unwrap().generation, g);
    let mut rest = 1;
    while let Some(a) = results.next().await.unwrap() {
        assert_eq!((generation_of(&a), a.validity()), (1, Some("1")));
        rest += 1;
    }
    assert_eq!((rest, results.summary().unwrap().generation), (3000, 1));
    assert_eq!(generation_of(&central.lookup(&queries[0]).await.unwrap()), 2);

    // Then 99 more under load: two lookup tasks and two bulk tasks, each on its own connection.
    let stop = Arc::new(AtomicBool::new(false));
    let swaps_done = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for t in 0..4usize {
        let client = srv.client(As::Central).await;
        let (stop, swaps_done, queries) = (stop.clone(), swaps_done.clone(), queries.clone());
        tasks.push(tokio::spawn(async move { load(t, client, queries, stop, swaps_done).await }));
    }
    let mut seq = 0;
    let mut delta_cards = Vec::new();
    for (g, snapshot) in rx {
        let report = op.swap(&snapshot.display().to_string()).await.unwrap_or_else(|e| panic!("swap to generation {g}: {e}"));
        assert_eq!((report.previous_generation, report.generation, report.delta_seq), (g - 1, g, seq));
        assert_eq!(report.replayed as u64, seq, "every batch is carried over (the exports include none)");
        swaps_done.fetch_add(1, Ordering::Relaxed);
        if g >= 3 {
            let _ = std::fs::remove_dir_all(dir.path().join(format!("gen-{}", g - 2)));
        }
        // A delta batch every tenth swap.
        if g.is_multiple_of(10) {
            seq += 1;
            let c = &cards[seq as usize % cards.len()];
            let number = format!("95{seq:04}");
            let row = insurance_row(&format!("Q-SW{seq}"), &c.person_id, &c.card.0, "W", &number);
            let ack = op.delta(&batch(seq, &[upsert("insurance", row)])).await.unwrap();
            assert_eq!((ack.seq, ack.duplicate, ack.generation), (seq, false, g));
            delta_cards.push((c.card.0.clone(), "W".to_string(), number, "01".to_string(), c.card.4));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Seen::default();
    for t in tasks {
        let seen = t.await.expect("a load task failed");
        total.lookups += seen.lookups;
        total.bulks += seen.bulks;
        total.bulks_across_swaps += seen.bulks_across_swaps;
        total.generations.extend(seen.generations);
    }
    eprintln!(
        "{SWAPS} swaps: {} lookups and {} bulks of {BULK_ITEMS} answered, {} bulks spanned a swap, {} generations seen",
        total.lookups,
        total.bulks,
        total.bulks_across_swaps,
        total.generations.len()
    );
    assert!(total.lookups > 0 && total.bulks > 0);
    assert!(total.generations.len() > 1, "the load saw the swaps");

    // Every batch survived every swap.
    let s = op.status().await.unwrap().engine;
    assert_eq!((s.generation, s.delta_seq, s.snapshot_delta_seq), (SWAPS + 1, seq, 0));
    for (i, card) in delta_cards.iter().enumerate() {
        let a = central.lookup(Keys::card_query(card, &inst, &format!("d{i}")).as_bytes()).await.unwrap();
        assert_eq!((a.validity(), generation_of(&a)), (Some("1"), SWAPS + 1), "delta card {i}");
    }
}

/// Lookups (even tasks) or bulk inquiries (odd tasks) until `stop`: every
/// request must succeed, every answer must be valid, a bulk must come from
/// one generation and delta sequence throughout, and what one client sees
/// never goes back in time.
async fn load(t: usize, client: Client, queries: Arc<Vec<Vec<u8>>>, stop: Arc<AtomicBool>, swaps_done: Arc<AtomicU64>) -> Seen {
    let mut seen = Seen::default();
    let mut last = (0u64, 0u64);
    let mut i = t;
    while !stop.load(Ordering::Relaxed) {
        if t.is_multiple_of(2) {
            let q = &queries[i % queries.len()];
            let a = client.lookup(q).await.unwrap_or_else(|e| panic!("task {t}: lookup failed: {e}"));
            assert_eq!(a.validity(), Some("1"), "task {t}: {a:?}");
            let now = (generation_of(&a), a.message_header.delta_sequence.parse::<u64>().unwrap());
            assert!(now >= last, "task {t}: went back from {last:?} to {now:?}");
            last = now;
            seen.generations.insert(now.0);
            seen.lookups += 1;
        } else {
            let items: Vec<Vec<u8>> = (0..BULK_ITEMS).map(|k| queries[(i + k) % queries.len()].clone()).collect();
            let before = swaps_done.load(Ordering::Relaxed);
            let (answers, summary) = client
                .bulk(items)
                .await
                .unwrap_or_else(|e| panic!("task {t}: bulk failed: {e}"))
                .collect()
                .await
                .unwrap_or_else(|e| panic!("task {t}: bulk failed: {e}"));
            if swaps_done.load(Ordering::Relaxed) != before {
                seen.bulks_across_swaps += 1;
            }
            assert_eq!(
                (answers.len() as u64, summary.items, summary.normal, summary.errors),
                (BULK_ITEMS as u64, BULK_ITEMS as u64, BULK_ITEMS as u64, 0)
            );
            for a in &answers {
                assert_eq!(a.validity(), Some("1"), "task {t}: {a:?}");
                assert_eq!(generation_of(a), summary.generation, "task {t}: one bulk, one generation");
                assert_eq!(a.message_header.delta_sequence, summary.delta_seq.to_string(), "task {t}: one bulk, one delta sequence");
            }
            let now = (summary.generation, summary.delta_seq);
            assert!(now >= last, "task {t}: went back from {last:?} to {now:?}");
            last = now;
            seen.generations.insert(now.0);
            seen.bulks += 1;
        }
        i += 1;
        // Leave the swaps some CPU on a small machine.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    seen
}
