//! The load generator (`elig-bench`) against a harness server: a few hundred requests, and the
//! counts of the report add up with each other and with the server's usage
//! accounting. Benchmarks measure; nothing here asserts a time.

use std::collections::BTreeMap;
use std::time::Duration;

use elig_benches::loadgen::{self as bench, BenchOptions, KeySource, Mix, Mode, Report, Stop};
use elig_tests::{fixture, As, TestServer, TODAY};

fn options(mode: Mode, mix: &str, stop: Stop) -> BenchOptions {
    BenchOptions {
        source: KeySource::Snapshot(fixture().snapshot.clone()),
        mix: Mix::parse(mix).unwrap(),
        absent: 0.2,
        pool: 400,
        concurrency: 4,
        connections: 2,
        stop,
        warmup: Duration::ZERO,
        mode,
        bulk_items: 50,
        institution: None,
        date: Some(TODAY),
        today: TODAY,
        timeout: Duration::from_secs(60),
        seed: 11,
        // The server runs in this process: its CPU is this process's.
        server: Some(elig_benches::loadgen::cpu::Process::of(std::process::id()).unwrap()),
    }
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

fn usage_requests(srv: &TestServer) -> u64 {
    srv.server.usage().rows.iter().map(|r| r.requests).sum()
}

/// Labels seen across every kind of a report.
fn labels(report: &Report) -> Vec<String> {
    report.answers.values().flat_map(|c| c.keys().cloned()).collect()
}

#[tokio::test]
async fn single_requests_add_up() {
    let srv = TestServer::start().await;
    let opts = options(Mode::Single, "serial=30,processing=10,card=30,ticket=20,delegated=10", Stop::Requests(300));
    let report = bench::run(&opts, &srv.options(Some(srv.pem(As::Central)))).await.unwrap();
    assert_eq!((report.requests, report.completed, report.failed), (300, 300, 0), "{}", report.text());
    assert_eq!(report.outcomes.get("ok"), Some(&300));
    assert_eq!(report.latency_us.count, 300);
    // One answer document per request, counted under its key kind.
    assert_eq!(report.items, 300);
    assert_eq!(report.answers.values().map(total).sum::<u64>(), 300);
    for kind in ["serial", "processing", "card", "ticket", "delegated"] {
        assert!(report.answers.get(kind).is_some_and(|c| total(c) > 0), "{kind} asked: {}", report.text());
        assert!(report.pool[kind].present > 0 && report.pool[kind].absent > 0, "{kind}");
    }
    // Absent keys are not found; present ones are (mostly) valid.
    let seen = labels(&report);
    assert!(seen.contains(&"validity:4".to_string()) && seen.contains(&"validity:1".to_string()), "{seen:?}");
    assert!(!seen.iter().any(|l| l.contains("EP01") || l.starts_with("failed")), "{seen:?}");
    // The server counted every query once.
    assert_eq!(usage_requests(&srv), 300);
    assert!(report.text().contains("requests     300"), "{}", report.text());
    let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(json["latency_us"]["count"], 300);
}

#[tokio::test]
async fn bulk_inquiries_add_up() {
    let srv = TestServer::start().await;
    let opts = options(Mode::Bulk, "card=7,ticket=3", Stop::Requests(8));
    let report = bench::run(&opts, &srv.options(Some(srv.pem(As::Central)))).await.unwrap();
    assert_eq!((report.requests, report.completed, report.failed), (8, 8, 0), "{}", report.text());
    assert_eq!(report.items, 8 * 50);
    // CPU over the measured phase, per bulk and per item.
    let (per_request, per_item) = (report.cpu.server_us_per_request.unwrap(), report.cpu.server_us_per_item.unwrap());
    assert!(per_request > 0.0 && (per_item * 50.0 - per_request).abs() < 1e-6 * per_request, "{:?}", report.cpu);
    assert!(report.cpu.bench_cores.is_some_and(|c| c > 0.0), "{:?}", report.cpu);
    assert!(report.text().contains("cpu          bench "), "{}", report.text());
    assert_eq!(report.answers.values().map(total).sum::<u64>(), 400);
    assert_eq!(report.answers.keys().copied().collect::<Vec<_>>(), ["card", "ticket"]);
    assert_eq!(report.first_item_us.map(|l| l.count), Some(8));
    assert_eq!(report.latency_us.count, 8);
    assert_eq!(usage_requests(&srv), 400);
}

#[tokio::test]
async fn an_institution_certificate_asks_as_itself() {
    let srv = TestServer::start().await;
    let opts = options(Mode::Single, "card=1,ticket=1,delegated=1", Stop::Requests(120));
    let report = bench::run(&opts, &srv.options(Some(srv.pem(As::Institution)))).await.unwrap();
    assert_eq!((report.requests, report.failed), (120, 0));
    assert!(report.requester.contains(fixture().keys.institution()), "{}", report.requester);
    assert!(!labels(&report).iter().any(|l| l.contains("EP01")), "{}", report.text());
    let usage = srv.server.usage();
    assert!(usage.rows.iter().all(|r| r.institution_code == fixture().keys.institution()), "{usage:?}");

    // Another institution's code, or the operator certificate, is refused before any load.
    let mut other = opts.clone();
    other.institution = Some(fixture().keys.other_institution.clone());
    let e = bench::run(&other, &srv.options(Some(srv.pem(As::Institution)))).await.unwrap_err();
    assert!(e.to_string().starts_with("--institution '"), "{e}");
    let e = bench::run(&opts, &srv.options(Some(srv.pem(As::Operator)))).await.unwrap_err();
    assert!(e.to_string().contains("operator certificate may not query"), "{e}");
}
