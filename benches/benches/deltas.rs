//! Delta batches: how fast they apply, and what a day of them costs lookups.
//!
//! (a) Apply rate: `Engine::open_with_log` over the bench snapshot with a
//!     fresh delta log, then `ELIG_BENCH_BATCHES` (default 100) batches of
//!     1,000 changed rows through `Engine::apply`, each parsed, validated,
//!     appended to the log and fsynced (acknowledged and durable), then
//!     published. Reported: changed rows per second, and per-batch latency.
//!     The same batches on an engine without a log, and appended to a bare
//!     `DeltaLog`, show the two halves of that cost.
//! (b) Lookups under an overlay: the same sampled serial and card queries
//!     (`View::answer`) on an engine with an empty overlay and on one with
//!     `ELIG_BENCH_OVERLAY_BATCHES` (default 1,000) batches of 1,000 rows, i.e.
//!     1,000,000 changed rows, applied without a log. Passes over the keys
//!     alternate between the two engines; the median pass is reported. The
//!     same is measured once before the overlay is built, when both engines
//!     are still empty ("before: A / B"): the spread there is the noise floor.
//!     The overlay's batches also go to a delta log, which is then folded
//!     into a new snapshot (`elig-loader compile --deltas`, 1M persons: about
//!     half a minute): the "folded" engine answers the same content with an
//!     empty overlay, so "overlay / folded" is the cost of the overlay
//!     mechanism itself, apart from the changed persons' larger answers (a
//!     new card is a second entry, consents add fields). Before timing, every
//!     query is checked to get the same answer body from both.
//!     `ELIG_BENCH_FOLD=0` skips the fold.
//!
//! The batches are `elig_benches::batches` (1,000 rows of real ids). Targets (issue): apply > 100,000
//! rows/s; lookups with the 1M-row overlay within 1.5x of the empty overlay.
//!
//! Run: `cargo bench -p elig-benches --bench deltas`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use elig_benches::batches::{Batches, ROWS};
use elig_benches::{bench_snapshot, clock, data_dir, parse_all, sample_keys, KeyKind, KEYS, SEED, TODAY};
use elig_engine::delta_log::DeltaLog;
use elig_engine::engine::Engine;
use elig_engine::query::Query;
use elig_engine::snapshot::Snapshot;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// One applied batch: its rows and how long `apply` took.
type Applied = (usize, Duration);

/// Apply `count` batches, each built before its timing starts.
fn apply_batches(engine: &Engine, snapshot: &Snapshot, count: usize) -> Vec<Applied> {
    let mut batches = Batches::new(snapshot);
    (1..=count as u64)
        .map(|seq| {
            let text = batches.next(snapshot, seq);
            let t = Instant::now();
            let ack = engine.apply(&text).unwrap_or_else(|e| panic!("batch {seq}: {e}"));
            let took = t.elapsed();
            assert_eq!((ack.seq, ack.duplicate), (seq, false));
            (ack.rows as usize, took)
        })
        .collect()
}

/// Append the same batches to a bare delta log: the durable-write part of an apply.
fn append_only(snapshot: &Snapshot, count: usize, path: &std::path::Path) -> Vec<Applied> {
    let mut log = DeltaLog::open(path).unwrap_or_else(|e| panic!("{e}")).log;
    let mut batches = Batches::new(snapshot);
    (1..=count as u64)
        .map(|seq| {
            let text = batches.next(snapshot, seq);
            let t = Instant::now();
            log.append(seq, &text).unwrap_or_else(|e| panic!("{e}"));
            (text.iter().filter(|b| **b == b'\n').count(), t.elapsed())
        })
        .collect()
}

fn rate(batches: &[Applied]) -> f64 {
    batches.iter().map(|b| b.0).sum::<usize>() as f64 / batches.iter().map(|b| b.1).sum::<Duration>().as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn latency_line(what: &str, batches: &[Applied]) {
    let mut sorted: Vec<Duration> = batches.iter().map(|b| b.1).collect();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<44} {:>10.0} rows/s   batch p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        rate(batches),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}

/// Median time per lookup of passes over `queries`, alternating the engines.
fn lookups<const N: usize>(engines: [&Engine; N], queries: &[Query], rounds: usize) -> [f64; N] {
    let clock = clock();
    let mut per = [(); N].map(|_| Vec::new());
    for _ in 0..rounds {
        for (e, out) in engines.iter().zip(per.iter_mut()) {
            let gen = e.pin();
            let view = gen.view();
            let t = Instant::now();
            for q in queries {
                black_box(view.answer(q, clock));
            }
            out.push(t.elapsed().as_secs_f64() * 1e9 / queries.len() as f64);
        }
    }
    per.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
}

/// The overlay and the folded snapshot must answer alike (bodies; the
/// headers name different generations), or the comparison means nothing.
fn same_answers(overlay: &Engine, folded: &Engine, sets: &[(String, Vec<Query>)]) {
    let clock = clock();
    let (a, b) = (overlay.pin(), folded.pin());
    for (name, queries) in sets {
        for q in queries {
            let (x, y) = (a.view().answer(q, clock), b.view().answer(q, clock));
            assert_eq!(x.message_body, y.message_body, "{name}: overlay and folded snapshot answer {q:?} differently");
        }
    }
}

/// Share of the queries whose person a delta changed.
fn touched(engine: &Engine, queries: &[Query]) -> f64 {
    let gen = engine.pin();
    let hit = queries
        .iter()
        .filter(|q| {
            let (name, key) = elig_benches::index_key(q);
            let Some(hit) = gen.snapshot.find(name, &key, |_| true) else { return false };
            gen.overlay.latest_of_record(hit.first()).is_some()
        })
        .count();
    hit as f64 / queries.len().max(1) as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (criterion's convention): nothing to list.
    }
    let dir = bench_snapshot();
    let open = || {
        let s = Snapshot::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        s.prefault();
        s
    };
    let snapshot = open();
    println!("deltas bench: {} ({} persons, generation {})", dir.display(), snapshot.persons(), snapshot.generation());

    // (a) apply rate, durable.
    let batches = env_usize("ELIG_BENCH_BATCHES", 100);
    // Warm-up, not reported: the same batches on a throwaway engine fault in
    // the snapshot pages and the heap they touch, so the first measured run
    // is not penalised for going first.
    apply_batches(&Engine::from_snapshot(open()), &snapshot, batches);
    let logdir = tempfile::tempdir_in(data_dir()).expect("a temporary directory for the delta log");
    let (engine, _) = Engine::open_with_log(&dir, &logdir.path().join("deltas.log")).unwrap_or_else(|e| panic!("{e}"));
    let durable = apply_batches(&engine, &snapshot, batches);
    drop(engine);
    // The two halves of a durable apply, measured apart on the same batches.
    let memory = apply_batches(&Engine::from_snapshot(open()), &snapshot, batches);
    let logged = append_only(&snapshot, batches, &logdir.path().join("append-only.log"));
    println!("\n(a) delta apply, {batches} batches of {ROWS} rows");
    latency_line("Engine::apply with the delta log (durable)", &durable);
    latency_line("  Engine::apply without a log", &memory);
    latency_line("  DeltaLog::append alone (write + fdatasync)", &logged);

    // (b) lookups: empty overlay vs a day of deltas.
    let overlay_batches = env_usize("ELIG_BENCH_OVERLAY_BATCHES", 1000);
    if overlay_batches == 0 {
        return;
    }
    let rounds = env_usize("ELIG_BENCH_ROUNDS", 30);
    let keys = sample_keys(&snapshot, KEYS, SEED);
    let sets: Vec<(String, Vec<Query>)> = [KeyKind::Serial, KeyKind::Card]
        .into_iter()
        .flat_map(|f| {
            let k = keys.get(f);
            [(format!("{}/present", f.name()), parse_all(&k.present)), (format!("{}/absent", f.name()), parse_all(&k.absent))]
        })
        .filter(|(_, q)| !q.is_empty())
        .collect();
    let empty = Engine::from_snapshot(open());
    let fold_dir = tempfile::tempdir_in(data_dir()).expect("a temporary directory for the folded snapshot");
    let fold = std::env::var("ELIG_BENCH_FOLD").map_or(true, |v| v != "0");
    let overlay_log = fold_dir.path().join("deltas.log");
    let full =
        if fold { Engine::open_with_log(&dir, &overlay_log).unwrap_or_else(|e| panic!("{e}")).0 } else { Engine::from_snapshot(open()) };
    // Both engines still empty: the spread between them is the noise floor,
    // and the heap is still fresh (the overlay's allocations come after).
    let before: Vec<[f64; 2]> = sets.iter().map(|(_, q)| lookups([&empty, &full], q, rounds)).collect();
    let t = Instant::now();
    let times = apply_batches(&full, &snapshot, overlay_batches);
    let stats = full.status().overlay;
    println!(
        "\n(b) overlay: {overlay_batches} batches, {} changed rows, {} persons, {:.0} MiB of versions, built in {:.1?}",
        stats.changed_rows,
        stats.persons,
        stats.bytes as f64 / 1048576.0,
        t.elapsed()
    );
    let tenth = (times.len() / 10).max(1);
    latency_line("  apply, first tenth of the batches", &times[..tenth]);
    latency_line("  apply, last tenth of the batches", &times[times.len() - tenth..]);
    let folded = fold.then(|| {
        let out = fold_dir.path().join("folded");
        let t = Instant::now();
        let opts = elig_loader::fold::FoldOptions {
            base: dir.clone(),
            deltas: overlay_log.clone(),
            out: out.clone(),
            generation: None,
            today: Some(TODAY),
            retain_lost_days: None,
            threads: elig_loader::compile::default_threads(),
        };
        elig_loader::fold::fold(&opts).unwrap_or_else(|e| panic!("fold: {e}"));
        println!("  folded into a new snapshot in {:.1?}", t.elapsed());
        let s = Snapshot::load(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        s.prefault();
        Engine::from_snapshot(s)
    });
    if let Some(folded) = &folded {
        same_answers(&full, folded, &sets);
    }
    println!(
        "\n{:<16} {:>8} {:>16} {:>8} {:>8} {:>8} {:>15} {:>16}   (ns per lookup, median of {rounds} passes over {KEYS} keys)",
        "lookups", "touched", "before: A / B", "empty", "overlay", "folded", "overlay/empty", "overlay/folded"
    );
    for ((name, queries), [a, b]) in sets.iter().zip(before) {
        let share = touched(&full, queries);
        let (e, f, d) = match &folded {
            Some(folded) => {
                let [e, f, d] = lookups([&empty, &full, folded], queries, rounds);
                (e, f, Some(d))
            }
            None => {
                let [e, f] = lookups([&empty, &full], queries, rounds);
                (e, f, None)
            }
        };
        let (folded_ns, vs_folded) = d.map_or(("-".to_string(), "-".to_string()), |d| (format!("{d:.0}"), format!("{:.2}x", f / d)));
        println!(
            "{name:<16} {:>7.1}% {:>16} {e:>8.0} {f:>8.0} {folded_ns:>8} {:>14.2}x {vs_folded:>16}",
            share * 100.0,
            format!("{a:.0} / {b:.0}"),
            f / e
        );
    }
}
