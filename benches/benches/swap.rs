//! Hot swap under load: what lookups see while snapshots are swapped in.
//!
//! One reader thread answers card and serial queries (`engine.pin()` then
//! `View::answer`, one pin per lookup as the server does) in a loop and
//! records each lookup's latency in an HDR histogram: first in steady state
//! for `ELIG_BENCH_STEADY_SECS` (default 10) seconds, then while the main
//! thread performs `ELIG_BENCH_SWAPS` (default 5) swaps back to back. The
//! swaps go to snapshots holding the same records with rising generations
//! (`elig_benches::successors`: the base folded with an empty delta log, so
//! each is a distinct set of files that must be verified and pre-faulted).
//!
//! The successors are read once before the run, as a snapshot compiled
//! shortly before its swap would be cached (`ELIG_BENCH_COLD=1` leaves them
//! as they are: on this VM, pages idle for a minute are paged out).
//!
//! Reported per swap: the `SwapResult` timings (verify, pre-fault, total),
//! the wall time of `Engine::swap`, and when the reader first answered from
//! the new generation; then lookup p50/p99/p99.9/max steady vs during swaps.
//! Target (issue): p99 during swaps within 2x of steady.
//!
//! Run: `cargo bench -p elig-benches --bench swap`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_benches::{bench_snapshot, clock, parse_all, sample_keys, successors, KeyKind, KEYS, SEED};
use elig_engine::engine::Engine;
use elig_engine::query::Query;
use elig_engine::snapshot::Snapshot;
use hdrhistogram::Histogram;

const WARMUP: u8 = 0;
const STEADY: u8 = 1;
const SWAPPING: u8 = 2;
const STOP: u8 = 3;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Reader {
    /// Latency in ns, by phase (steady, swapping).
    hist: [Histogram<u64>; 2],
    /// (generation, when the reader first answered from it).
    seen: Vec<(u64, Instant)>,
}

fn read(engine: &Engine, queries: &[Query], phase: &AtomicU8) -> Reader {
    let mut hist = [(); 2].map(|_| Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"));
    let mut seen = vec![(engine.pin().id(), Instant::now())];
    let clock = clock();
    let mut i = 0;
    loop {
        let ph = phase.load(Ordering::Relaxed);
        if ph == STOP {
            break;
        }
        let q = &queries[i];
        i = (i + 1) % queries.len();
        let t = Instant::now();
        let gen = engine.pin();
        let answer = gen.view().answer(q, clock);
        drop(answer);
        let ns = t.elapsed().as_nanos() as u64;
        let id = gen.id();
        drop(gen);
        if seen.last().is_some_and(|(g, _)| *g != id) {
            seen.push((id, Instant::now()));
        }
        if ph != WARMUP {
            hist[usize::from(ph - STEADY)].saturating_record(ns);
        }
    }
    Reader { hist, seen }
}

/// Read every file of `dir` once, as a freshly compiled snapshot would sit
/// in the page cache. Returns the bytes read.
fn warm(dir: &Path) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let mut f = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        while let Ok(n @ 1..) = f.read(&mut buf) {
            total += n as u64;
        }
    }
    total
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` (criterion's convention): nothing to list.
    }
    let swaps = env_u64("ELIG_BENCH_SWAPS", 5) as usize;
    let steady = Duration::from_secs(env_u64("ELIG_BENCH_STEADY_SECS", 10));
    let base = bench_snapshot();
    let targets = successors(&base, swaps);
    if std::env::var("ELIG_BENCH_COLD").is_ok_and(|v| v == "1") {
        println!("swap bench: successor snapshots left as they are in the page cache (ELIG_BENCH_COLD=1)");
    } else {
        let bytes: u64 = targets.iter().map(|d| warm(d)).sum();
        println!("swap bench: read {:.0} MiB of successor snapshots into the page cache", bytes as f64 / 1048576.0);
    }
    let snapshot = Snapshot::load(&base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let keys = sample_keys(&snapshot, KEYS, SEED);
    // Card and serial queries, interleaved.
    let queries: Vec<Query> = parse_all(&keys.get(KeyKind::Card).present)
        .into_iter()
        .zip(parse_all(&keys.get(KeyKind::Serial).present))
        .flat_map(|(a, b)| [a, b])
        .collect();
    assert!(!queries.is_empty(), "the snapshot holds no card or serial keys");
    snapshot.prefault();
    let engine = Arc::new(Engine::from_snapshot(snapshot));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("swap bench: {} ({} persons), {swaps} swaps, load average {}", base.display(), engine.status().persons, load.trim());

    let phase = Arc::new(AtomicU8::new(WARMUP));
    let reader = {
        let (engine, phase) = (engine.clone(), phase.clone());
        std::thread::Builder::new().name("reader".into()).spawn(move || read(&engine, &queries, &phase)).expect("spawning the reader")
    };
    std::thread::sleep(Duration::from_secs(2));
    phase.store(STEADY, Ordering::Relaxed);
    std::thread::sleep(steady);
    phase.store(SWAPPING, Ordering::Relaxed);
    let swapping = Instant::now();
    let mut done = Vec::new();
    for dir in &targets {
        let t = Instant::now();
        let report = engine.swap(dir).unwrap_or_else(|e| panic!("swap to {}: {e}", dir.display()));
        done.push((t, t.elapsed(), report));
    }
    // Let the reaper unmap the last old generation inside the window.
    std::thread::sleep(Duration::from_millis(500));
    let window = swapping.elapsed();
    phase.store(STOP, Ordering::Relaxed);
    let r = reader.join().expect("the reader thread finished");

    println!(
        "\n{:>10} {:>10} {:>12} {:>10} {:>10} {:>16}",
        "generation", "verify ms", "prefault ms", "total ms", "wall ms", "reader sees (ms)"
    );
    for (start, wall, rep) in &done {
        let seen = r.seen.iter().find(|(g, _)| *g == rep.generation).map(|(_, at)| at.duration_since(*start).as_secs_f64() * 1e3);
        println!(
            "{:>10} {:>10} {:>12} {:>10} {:>10.0} {:>16}",
            rep.generation,
            rep.verify_ms,
            rep.prefault_ms,
            rep.total_ms,
            wall.as_secs_f64() * 1e3,
            seen.map_or("-".into(), |ms| format!("{ms:.0}"))
        );
    }
    println!(
        "\n{:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "lookups", "count", "p50 us", "p99 us", "p99.9 us", "max us", "lookups/s"
    );
    let secs = [steady.as_secs_f64(), window.as_secs_f64()];
    for ((name, h), s) in ["steady", "swapping"].iter().zip(&r.hist).zip(secs) {
        println!(
            "{name:<10} {:>10} {:>10.2} {:>10.2} {:>10.2} {:>10.1} {:>12.0}",
            h.len(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999)),
            us(h.max()),
            h.len() as f64 / s
        );
    }
    let [s, w] = &r.hist;
    let ratio = |q: f64| w.value_at_quantile(q) as f64 / s.value_at_quantile(q).max(1) as f64;
    println!(
        "\nratio swapping/steady: p50 {:.2}x, p99 {:.2}x, p99.9 {:.2}x (target: p99 within 2x)",
        ratio(0.5),
        ratio(0.99),
        ratio(0.999)
    );
}
