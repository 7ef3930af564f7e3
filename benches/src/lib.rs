//! Shared data of the benches (`benches/README.md` says what each compares),
//! the key drawer and the load generator.
//!
//! [`snapshot`] generates a seeded synthetic export and compiles it once into
//! `target/bench-data/p{persons}-s{seed}/snap`; later runs reuse it (a
//! published snapshot is never modified, so reuse is safe). [`keys`] draws
//! real keys of every kind from a snapshot's records or an export, plus keys
//! that are certainly absent, for the criterion benches ([`sample_keys`]) and
//! the load generator ([`loadgen`], binary `elig-bench`) alike. Everything is
//! seeded: two runs ask the same questions of the same data.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use elig_engine::lookup::Clock;
use elig_engine::manifest::MANIFEST_FILE;
use elig_engine::query::{parse_query, Query};
use elig_loader::compile::{compile, CompileOptions};
use elig_loader::fold::{fold, FoldOptions};
use elig_loader::gen::{generate, GenOptions};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod baseline;
pub mod batches;
pub mod keys;
pub mod loadgen;

pub use keys::{index_key, sample_keys, FamilyKeys, KeyKind, Keys, CLINIC};

/// Seed of the synthetic export (the 10 million snapshot of the README uses it too).
pub const SEED: u64 = 7;
/// Export and compile date; every query asks about this day.
pub const TODAY: u32 = 20261122;
/// The request clock: 10:00 on [`TODAY`], Japan time.
pub const NOW: u64 = 20261122100000;
/// Generation of a snapshot compiled here.
pub const GENERATION: u64 = 1;
/// Keys drawn per family and kind: enough that a cycle through them is not
/// served from a warm L1/L2.
pub const KEYS: usize = 4096;

/// Keys drawn per family by the `lookup` bench: [`KEYS`], or
/// `ELIG_BENCH_KEYS` (for example 262144, so that the records a cycle
/// touches do not fit in the CPU caches, as in a server answering keys from
/// every person).
pub fn keys_per_family() -> usize {
    match std::env::var("ELIG_BENCH_KEYS") {
        Err(_) => KEYS,
        Ok(v) => match v.replace('_', "").parse::<usize>() {
            Ok(n) if n > 0 => n,
            // A typo must not quietly give the warm-cache bench.
            _ => panic!("ELIG_BENCH_KEYS = '{v}': must be a positive number of keys, such as 262144"),
        },
    }
}

pub fn clock() -> Clock {
    Clock::at(NOW)
}

/// Persons of the generated snapshot: `ELIG_BENCH_PERSONS`, default 1,000,000.
pub fn persons() -> u64 {
    match std::env::var("ELIG_BENCH_PERSONS") {
        Ok(v) => v.replace('_', "").parse().unwrap_or_else(|_| panic!("ELIG_BENCH_PERSONS='{v}' is not a number of persons")),
        Err(_) => 1_000_000,
    }
}

/// `target/bench-data` of this workspace (or of `CARGO_TARGET_DIR`).
pub fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("..")).join("target"));
    target.join("bench-data")
}

/// The snapshot the benches run on: `ELIG_BENCH_SNAPSHOT` if set (an
/// existing snapshot directory), else [`snapshot`] of [`persons`].
pub fn bench_snapshot() -> PathBuf {
    match std::env::var_os("ELIG_BENCH_SNAPSHOT") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            assert!(dir.join(MANIFEST_FILE).exists(), "ELIG_BENCH_SNAPSHOT={}: no {MANIFEST_FILE} there", dir.display());
            dir
        }
        None => snapshot(persons()),
    }
}

/// A snapshot of `persons` generated with [`SEED`] and compiled at [`TODAY`]
/// with generation [`GENERATION`]; built on first use, then reused.
pub fn snapshot(persons: u64) -> PathBuf {
    let dir = data_dir().join(format!("p{persons}-s{SEED}"));
    let snap = dir.join("snap");
    if snap.join(MANIFEST_FILE).exists() {
        return snap;
    }
    let export = export(&dir, persons);
    let t = Instant::now();
    eprintln!("bench data: compiling {} ...", snap.display());
    let opts = CompileOptions { generation: Some(GENERATION), today: Some(TODAY), ..CompileOptions::new(&export, &snap) };
    let summary = compile(&opts).unwrap_or_else(|e| panic!("compiling the bench snapshot {}: {e}", snap.display()));
    eprintln!("bench data: {} persons compiled in {:.1?}", summary.manifest.persons, t.elapsed());
    summary.out
}

/// The export a generated snapshot is compiled from. A marker file says the
/// generator finished, so an interrupted run is generated again.
fn export(dir: &Path, persons: u64) -> PathBuf {
    let export = dir.join("export");
    let done = dir.join("export.done");
    if !done.exists() {
        let t = Instant::now();
        eprintln!("bench data: generating {persons} persons into {} ...", export.display());
        let _ = std::fs::remove_dir_all(&export);
        let summary = generate(&GenOptions::new(persons, SEED, TODAY), &export)
            .unwrap_or_else(|e| panic!("generating the bench export {}: {e}", export.display()));
        std::fs::write(&done, format!("{summary:?}\n")).unwrap_or_else(|e| panic!("{}: {e}", done.display()));
        eprintln!("bench data: generated in {:.1?}", t.elapsed());
    }
    export
}

/// `count` snapshots holding the same records as `base`, with generations
/// `base + 1 ..= base + count`: each is `base` folded with an empty delta log
/// (the loader's `compile --base --deltas`), so every one is a distinct set of
/// files, as a nightly snapshot is. Built on first use, then reused.
pub fn successors(base: &Path, count: usize) -> Vec<PathBuf> {
    let manifest = elig_engine::snapshot::read_manifest(base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let data = data_dir();
    let abs = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    let rel = abs.strip_prefix(data.canonicalize().unwrap_or(data.clone())).unwrap_or(&abs);
    let name: String = rel.to_string_lossy().trim_matches('/').replace('/', "-");
    let empty_log = data.join("empty.deltas");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    std::fs::write(&empty_log, b"").unwrap_or_else(|e| panic!("{}: {e}", empty_log.display()));
    (1..=count as u64)
        .map(|k| {
            let generation = manifest.generation + k;
            let out = data.join(format!("{name}-g{generation}"));
            if !out.join(MANIFEST_FILE).exists() {
                let t = Instant::now();
                eprintln!("bench data: folding {} into {} ...", base.display(), out.display());
                let opts = FoldOptions {
                    base: base.to_path_buf(),
                    deltas: empty_log.clone(),
                    out: out.clone(),
                    generation: Some(generation),
                    today: Some(TODAY),
                    retain_lost_days: None,
                    threads: elig_loader::compile::default_threads(),
                };
                fold(&opts).unwrap_or_else(|e| panic!("folding {}: {e}", out.display()));
                eprintln!("bench data: folded in {:.1?}", t.elapsed());
            }
            out
        })
        .collect()
}

/// Parse query documents as the request path would, outside any timed loop.
pub fn parse_all(docs: &[String]) -> Vec<Query> {
    docs.iter().map(|d| parse_query(d.as_bytes(), TODAY).unwrap_or_else(|e| panic!("bench query {d}: {e}"))).collect()
}
