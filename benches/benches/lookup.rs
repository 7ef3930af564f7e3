//! Lookup latency per key family: the engine against a `HashMap` baseline.
//!
//! What is compared, for each family (certificate serial, processing number,
//! insurance card, medical ticket, delegated-ticket fetch), on the same
//! seeded snapshot and the same sampled keys (`KEYS`, 4,096, present and as many
//! absent, cycled so a run does not answer one warm key):
//!
//! - `engine/present`, `engine/absent`: `View::answer(&Query, Clock)` of the
//!   live generation (mmap'd rkyv snapshot, hash index, full-key check, empty
//!   delta overlay). The `Answer` struct is built, not serialised; queries are
//!   parsed with `parse_query` before timing.
//! - `baseline/present`, `baseline/absent`: a `std::collections::HashMap<String,
//!   PersonRecord>` of owned records deserialised from the same snapshot, one
//!   `get`, and the same `Answer` built by `elig_benches::baseline` (same
//!   strings as `engine/src/entry.rs`); before timing, every sampled query is
//!   checked to get the engine's exact answer. `ELIG_BENCH_BASELINE=0` skips
//!   it, `ELIG_BENCH_BASELINE=ticket,delegated` keeps only those families
//!   (its maps hold owned copies: about 1.5 GiB per million keys).
//! - `engine_digest/present`: the same answer built, passed to `black_box` by
//!   reference (so nothing of it can be optimised away) and dropped inside
//!   the timed call, with only a digest of it (two lengths) returned: what
//!   building costs without returning the ~650-byte `Answer` by value into
//!   criterion's `black_box` (the move, and a drop compiled without knowing
//!   which fields are set: about 250 ns of `engine/present`).
//! - `engine_find/*`, `baseline_get/*`: the index probe alone (hash, slot,
//!   full-key check against the mapped record) against `HashMap::get`, with
//!   no answer built: what the lookup itself costs.
//! - `parse/present`: `parse_query` of the query documents alone.
//! - `document/present`: `View::answer_document(&[u8], Clock)`, parse + answer.
//! - `serialise/present`: `serde_json::to_vec(&Answer)` of the present answers.
//!
//! - `rendered/present`: answered and rendered to JSON, what eligd and
//!   `elig-loader lookup` do: `View::reply(&Query, Clock)` rendered straight
//!   from the records into a reused buffer (`Reply::render`), no struct.
//! - `built_serialised/present`: the same bytes the old way, for the ratio
//!   in one run: `View::answer` builds the `Answer` struct, then
//!   `encode_json_into` serialises it with sonic-rs into a reused buffer
//!   (what the server did before answers were rendered). Before timing,
//!   both are checked to write the same frame for every sampled key.
//!
//! `document - engine` is the cost of parsing a query, `serialise` the cost of
//! the JSON out; `rendered` replaces `engine` + `serialise` on the request path.
//!
//! Run: `cargo bench -p elig-benches --bench lookup` (1 million persons by
//! default; `ELIG_BENCH_PERSONS`, `ELIG_BENCH_SNAPSHOT`: see README.md).
//! `ELIG_BENCH_KEYS` draws more keys per family than the default 4,096,
//! whose records stay warm in the CPU caches: 262144 shows lookups whose
//! records come from memory, as in a server.

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use elig_benches::baseline::Baseline;
use elig_benches::{bench_snapshot, clock, index_key, keys_per_family, parse_all, sample_keys, KeyKind, Keys, KEYS, SEED, TODAY};
use elig_engine::answer::Answer;
use elig_engine::engine::Engine;
use elig_engine::lookup::View;
use elig_engine::model::ArchivedPersonRecord;
use elig_engine::query::{parse_query, Query, QueryKey};
use elig_engine::snapshot::Snapshot;
use elig_wire::frame::{encode_json_into, encode_with, Kind};

struct Setup {
    engine: Engine,
    keys: Keys,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = bench_snapshot();
        let snapshot = Snapshot::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        snapshot.prefault();
        let keys = sample_keys(&snapshot, keys_per_family(), SEED);
        eprintln!("lookup bench: {} ({} persons, generation {})", dir.display(), snapshot.persons(), snapshot.generation());
        Setup { engine: Engine::from_snapshot(snapshot), keys }
    })
}

/// `ELIG_BENCH_BASELINE`: unset for every family, `0` for none, or a list
/// such as `ticket,delegated`.
fn baseline_enabled(family: KeyKind) -> bool {
    std::env::var("ELIG_BENCH_BASELINE").map_or(true, |v| v.split(',').any(|f| f.trim() == family.name()))
}

/// Answer the items one after another, wrapping around.
fn cycle<T, R>(b: &mut Bencher, items: &[T], mut f: impl FnMut(&T) -> R) {
    let mut i = 0;
    b.iter(|| {
        let r = f(&items[i]);
        i += 1;
        if i == items.len() {
            i = 0;
        }
        r
    });
}

/// The engine's full-key check of an index hit (the `holds` closures of `lookup.rs`).
fn holds(q: &Query, p: &ArchivedPersonRecord) -> bool {
    match &q.key {
        QueryKey::CertificateSerial(s) => p.certificates.iter().any(|c| c.serial_number == s.as_str()),
        QueryKey::ProcessingNumber(s) => p.certificates.iter().any(|c| c.processing_number == s.as_str()),
        QueryKey::InsuranceCard(c) => p.insurance.iter().any(|i| {
            i.insurer_number == c.insurer.as_str()
                && i.card_symbol == c.symbol.as_str()
                && i.card_number == c.number.as_str()
                && i.branch_number == c.branch.as_str()
        }),
        QueryKey::MedicalTicket(t) => {
            p.assistance.iter().any(|a| a.payer_number == t.payer.as_str() && a.recipient_number == t.recipient.as_str())
        }
        QueryKey::DelegatedTickets { month } => p
            .assistance
            .iter()
            .any(|a| a.tickets.iter().any(|t| t.institution_code == q.institution.as_str() && t.treatment_month == *month)),
    }
}

/// How many answers of each validity (or error code), for the record.
fn outcomes(answers: &[Answer]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for a in answers {
        let body = &a.message_body;
        let code = body.qualification_validity.clone().or_else(|| body.processing_result_code.clone()).unwrap_or_else(|| "units".into());
        *counts.entry(code).or_insert(0) += 1;
    }
    counts.iter().map(|(c, n)| format!("{c}: {n}")).collect::<Vec<_>>().join(", ")
}

/// The baseline must give the engine's answers, or the comparison means nothing.
fn agree<'q>(base: &Baseline, view: &View<'_>, family: KeyKind, queries: impl Iterator<Item = &'q Query>) {
    let clock = clock();
    let (mut same, mut all) = (0, 0);
    for q in queries {
        let (e, b) = (view.answer(q, clock), base.answer(q, clock));
        all += 1;
        if e == b {
            same += 1;
        } else if all - same == 1 {
            eprintln!("baseline differs from the engine on {q:?}:\nengine   {e:?}\nbaseline {b:?}");
        }
    }
    eprintln!("lookup bench: {} baseline ({} keys) gives the engine's answer for {same} of {all} queries", family.name(), base.len());
}

fn family(c: &mut Criterion, family: KeyKind) {
    let s = setup();
    let generation = s.engine.pin();
    let view = generation.view();
    let keys = s.keys.get(family);
    if keys.present.is_empty() {
        eprintln!("lookup bench: the snapshot holds no {} keys; skipped", family.name());
        return;
    }
    let present = parse_all(&keys.present);
    let absent = parse_all(&keys.absent);
    let clock = clock();
    let probes: Vec<_> = present.iter().chain(&absent).map(|q| (index_key(q), q)).collect();
    let (present_probes, absent_probes) = probes.split_at(present.len());
    let snapshot = &generation.snapshot;
    let mut g = c.benchmark_group(format!("lookup/{}", family.name()));
    g.throughput(Throughput::Elements(1));
    g.bench_function("engine/present", |b| cycle(b, &present, |q| view.answer(q, clock)));
    g.bench_function("engine_digest/present", |b| {
        cycle(b, &present, |q| {
            let a = view.answer(q, clock);
            black_box(&a);
            a.message_body.result_list.len() + a.message_header.process_execution_time.len()
        })
    });
    if !absent.is_empty() {
        g.bench_function("engine/absent", |b| cycle(b, &absent, |q| view.answer(q, clock)));
    }
    // The index probe alone (hash, slot, full-key check), no answer built.
    for (kind, probes) in [("present", present_probes), ("absent", absent_probes)] {
        if !probes.is_empty() {
            g.bench_function(format!("engine_find/{kind}"), |b| {
                cycle(b, probes, |((name, key), q)| snapshot.find(*name, key, |p| holds(q, p)).map(|h| h.first()))
            });
        }
    }
    if baseline_enabled(family) {
        // Built on first use, so a filtered-out family does not pay for it.
        let baseline = OnceCell::new();
        let base = || {
            baseline.get_or_init(|| {
                let base = Baseline::build(&generation.snapshot, family);
                agree(&base, &view, family, present.iter().chain(&absent));
                base
            })
        };
        g.bench_function("baseline/present", |b| {
            let base = base();
            cycle(b, &present, |q| base.answer(q, clock))
        });
        if !absent.is_empty() {
            g.bench_function("baseline/absent", |b| {
                let base = base();
                cycle(b, &absent, |q| base.answer(q, clock))
            });
        }
        for (kind, probes) in [("present", present_probes), ("absent", absent_probes)] {
            if !probes.is_empty() {
                g.bench_function(format!("baseline_get/{kind}"), |b| {
                    let base = base();
                    cycle(b, probes, |((_, key), _)| base.get(key).map(|p| p.birth_date))
                });
            }
        }
    }
    // Both ways must write the same frames, or the ratio means nothing.
    let rendered = |out: &mut Vec<u8>, q: &Query| encode_with(out, Kind::Answer, |out| view.reply(q, clock).render(out));
    let built = |out: &mut Vec<u8>, q: &Query| encode_json_into(out, Kind::Answer, &view.answer(q, clock));
    let differ = present.iter().take(KEYS).filter(|q| {
        let (mut new, mut old) = (Vec::new(), Vec::new());
        rendered(&mut new, q);
        built(&mut old, q);
        new != old
    });
    assert_eq!(differ.count(), 0, "rendered answers differ from the built ones");
    type Write<'w> = &'w dyn Fn(&mut Vec<u8>, &Query);
    let ways: [(&str, Write); 2] = [("rendered/present", &rendered), ("built_serialised/present", &built)];
    for (name, write) in ways {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(1 << 16);
            cycle(b, &present, |q| {
                out.clear();
                write(&mut out, q);
                out.len()
            })
        });
    }
    g.bench_function("parse/present", |b| cycle(b, &keys.present, |d| parse_query(d.as_bytes(), TODAY)));
    g.bench_function("document/present", |b| cycle(b, &keys.present, |d| view.answer_document(d.as_bytes(), clock)));
    // A bounded sample: with ELIG_BENCH_KEYS large, a delegated fetch's answers alone would fill memory.
    let answers: Vec<Answer> = present.iter().take(KEYS).map(|q| view.answer(q, clock)).collect();
    eprintln!("lookup bench: {} present keys answer {}", family.name(), outcomes(&answers));
    g.bench_function("serialise/present", |b| cycle(b, &answers, |a| serde_json::to_vec(black_box(a)).expect("answers serialise")));
    g.finish();
}

fn serial(c: &mut Criterion) {
    family(c, KeyKind::Serial)
}

fn processing(c: &mut Criterion) {
    family(c, KeyKind::Processing)
}

fn card(c: &mut Criterion) {
    family(c, KeyKind::Card)
}

fn ticket(c: &mut Criterion) {
    family(c, KeyKind::Ticket)
}

fn delegated(c: &mut Criterion) {
    family(c, KeyKind::Delegated)
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! {
    name = lookups;
    config = config();
    targets = serial, processing, card, ticket, delegated
}
criterion_main!(lookups);
