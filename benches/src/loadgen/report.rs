//! The result of a bench: what was asked, how fast, and what came back;
//! printed for a person or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::mix::Sampler;
use super::tally::{QuicStats, Tally};
use super::{BenchOptions, Mode, Stop};
use crate::keys::KeyKind;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let empty = h.is_empty();
        let q = |q: f64| if empty { 0 } else { h.value_at_quantile(q) };
        Latency {
            count: h.len(),
            min: if empty { 0 } else { h.min() },
            mean: if empty { 0.0 } else { h.mean() },
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: if empty { 0 } else { h.max() },
        }
    }
}

/// Keys drawn of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSize {
    pub present: usize,
    pub absent: usize,
}

/// What a bench measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `single` or `bulk`.
    pub mode: &'static str,
    pub server: String,
    pub requester: String,
    pub source: String,
    pub persons: u64,
    pub mix: String,
    pub absent_percent: f64,
    /// Keys drawn per kind of the mix.
    pub pool: BTreeMap<&'static str, PoolSize>,
    pub sampling_secs: f64,
    pub connections: usize,
    pub concurrency: usize,
    pub bulk_items: Option<usize>,
    pub warmup_secs: f64,
    /// `--duration` in seconds, or `--requests`.
    pub duration_secs: Option<f64>,
    pub requests_asked: Option<u64>,
    pub seed: u64,
    /// From the end of the warm-up to the end of the last measured request.
    pub elapsed_secs: f64,
    /// Measured requests: answered, refused or failed.
    pub requests: u64,
    /// Answered or refused (the latency histogram holds these).
    pub completed: u64,
    pub failed: u64,
    pub requests_per_sec: f64,
    /// Answer documents: bulk items, lookups, ticket fetches.
    pub items: u64,
    pub items_per_sec: f64,
    /// Ticket units of the delegated-ticket fetches.
    pub units: u64,
    /// Requests by outcome: `ok`, `refused:<code>`, `failed:<why>`.
    pub outcomes: BTreeMap<String, u64>,
    /// Per key kind: answers by `validity:<1..6>`, `normal`, `error:<code>`
    /// (single requests: also `refused:<code>` and `failed:<why>`).
    pub answers: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// Per request (bulk: to the summary, that is the last item).
    pub latency_us: Latency,
    /// Bulk: to the first answer.
    pub first_item_us: Option<Latency>,
    pub first_failure: Option<String>,
    pub first_refusal: Option<String>,
    pub warmup_failures: u64,
    /// Mean time a measured request waited to open its stream (the
    /// server's `max_streams_per_connection` credit), microseconds; part of the latency.
    pub stream_wait_us: f64,
    pub quic: QuicStats,
    /// CPU over the measured phase, the bench's and (`--server-pid`) the server's.
    pub cpu: super::cpu::CpuReport,
}

impl Report {
    pub(super) fn new(opts: &BenchOptions, sampler: &Sampler, t: &Tally, measure_from: Instant, server: SocketAddr) -> Report {
        let elapsed = t.last.map_or(0.0, |l| l.saturating_duration_since(measure_from).as_secs_f64());
        let per_sec = |n: u64| if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 };
        let pool = opts
            .mix
            .kinds()
            .map(|k| {
                let (present, absent) = sampler.pool().counts(k);
                (k.name(), PoolSize { present, absent })
            })
            .collect();
        let answers = KeyKind::ALL
            .iter()
            .zip(t.answers.iter())
            .filter(|(_, c)| c.total() > 0)
            .map(|(k, c)| (k.name(), c.iter().map(|(l, n)| (l.to_string(), n)).collect()))
            .collect();
        let (completed, items) = (t.completed(), t.items());
        Report {
            mode: match opts.mode {
                Mode::Single => "single",
                Mode::Bulk => "bulk",
            },
            server: server.to_string(),
            requester: String::new(),
            source: opts.source.to_string(),
            persons: sampler.pool().persons,
            mix: opts.mix.to_string(),
            absent_percent: opts.absent * 100.0,
            pool,
            sampling_secs: 0.0,
            connections: opts.connections,
            concurrency: opts.concurrency,
            bulk_items: (opts.mode == Mode::Bulk).then_some(opts.bulk_items),
            warmup_secs: opts.warmup.as_secs_f64(),
            duration_secs: match opts.stop {
                Stop::After(d) => Some(d.as_secs_f64()),
                Stop::Requests(_) => None,
            },
            requests_asked: match opts.stop {
                Stop::After(_) => None,
                Stop::Requests(n) => Some(n),
            },
            seed: opts.seed,
            elapsed_secs: elapsed,
            requests: t.requests.total(),
            completed,
            failed: t.failures(),
            requests_per_sec: per_sec(completed),
            items,
            items_per_sec: per_sec(items),
            units: t.units,
            outcomes: t.requests.iter().map(|(l, n)| (l.to_string(), n)).collect(),
            answers,
            latency_us: Latency::of(&t.latency),
            first_item_us: t.first_item.as_ref().map(Latency::of),
            first_failure: t.first_failure.clone(),
            first_refusal: t.first_refusal.clone(),
            warmup_failures: t.warmup_failures,
            stream_wait_us: if completed > 0 { t.stream_wait.as_secs_f64() * 1e6 / t.requests.total() as f64 } else { 0.0 },
            quic: t.quic,
            cpu: Default::default(),
        }
    }

    /// The report for a person.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let what = match self.bulk_items {
            Some(n) => format!("bulk inquiries of {} items", num(n as u64)),
            None => "single requests".to_string(),
        };
        let plural = if self.connections == 1 { "" } else { "s" };
        let _ =
            writeln!(s, "elig-bench: {what}, {} connection{plural} x {} in flight, seed {}", self.connections, self.concurrency, self.seed);
        let _ = writeln!(s, "server       {} ({})", self.server, self.requester);
        let _ = writeln!(
            s,
            "keys         {} ({} persons), drawn in {:.1} s; mix {}, {}% absent",
            self.source,
            num(self.persons),
            self.sampling_secs,
            self.mix,
            self.absent_percent
        );
        let pool: Vec<String> =
            self.pool.iter().map(|(k, p)| format!("{k} {} + {} absent", num(p.present as u64), num(p.absent as u64))).collect();
        let _ = writeln!(s, "pool         {}", pool.join(", "));
        let _ = writeln!(s, "measured     {:.2} s after {:.1} s of warm-up", self.elapsed_secs, self.warmup_secs);
        let _ = writeln!(s, "requests     {} = {}/s", num(self.completed), rate(self.requests_per_sec));
        let _ = writeln!(s, "outcomes     {}", joined(&self.outcomes));
        let _ = writeln!(s, "cpu          {}", self.cpu.text());
        let latency_name = if self.bulk_items.is_some() { "last item" } else { "latency" };
        let _ = writeln!(s, "{:<12} {}", latency_name, latency(&self.latency_us));
        if let Some(first) = &self.first_item_us {
            let _ = writeln!(s, "first item   {}", latency(first));
        }
        let _ = writeln!(s, "answers      {} = {}/s", num(self.items), rate(self.items_per_sec));
        if self.units > 0 {
            let _ = writeln!(s, "ticket units {}", num(self.units));
        }
        for (kind, counts) in &self.answers {
            let total: u64 = counts.values().sum();
            let _ = writeln!(s, "  {kind:<10} {:>12}  {}", num(total), joined(counts));
        }
        let _ = writeln!(s, "validity     1 valid, 2 invalid, 3 invalid (newer qualification), 4 not found, 5 several, 6 not delegated");
        let q = &self.quic;
        let _ = writeln!(
            s,
            "quic         datagrams {} out ({} send calls, {} bytes), {} in ({} bytes); acks {} out, {} in; lost {}; rtt {} µs; path MTU {}; stream wait {:.0} µs mean",
            num(q.tx_datagrams),
            num(q.tx_ios),
            num(q.tx_bytes),
            num(q.rx_datagrams),
            num(q.rx_bytes),
            num(q.tx_acks),
            num(q.rx_acks),
            num(q.lost_packets),
            num(q.rtt_us),
            q.path_mtu,
            self.stream_wait_us
        );
        if let Some(r) = &self.first_refusal {
            let _ = writeln!(s, "first refusal  {r}");
        }
        if let Some(f) = &self.first_failure {
            let _ = writeln!(s, "first failure  {f}");
        }
        if self.warmup_failures > 0 {
            let _ = writeln!(s, "warm-up failures {}", num(self.warmup_failures));
        }
        s
    }
}

/// Labels in a readable order: validity codes, normal, errors, refusals, failures.
fn joined(counts: &BTreeMap<String, u64>) -> String {
    let rank = |l: &str| match l.split(':').next() {
        Some("ok") => 0,
        Some("validity") => 1,
        Some("normal") => 2,
        Some("error") => 3,
        Some("refused") => 4,
        _ => 5,
    };
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by_key(|(l, _)| (rank(l), l.to_string()));
    v.iter().map(|(l, n)| format!("{l} {}", num(**n))).collect::<Vec<_>>().join(" · ")
}

fn latency(l: &Latency) -> String {
    format!(
        "µs p50 {} · p90 {} · p99 {} · p99.9 {} · max {} (mean {:.0}, n {})",
        num(l.p50),
        num(l.p90),
        num(l.p99),
        num(l.p999),
        num(l.max),
        l.mean,
        num(l.count)
    )
}

fn rate(r: f64) -> String {
    if r >= 100.0 {
        num(r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

/// 1234567 as `1,234,567`.
fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels_read_well() {
        assert_eq!((num(0), num(999), num(1000), num(1234567)), ("0".into(), "999".into(), "1,000".into(), "1,234,567".into()));
        let counts: BTreeMap<String, u64> =
            [("error:EC01", 2), ("validity:4", 5), ("validity:1", 90), ("failed:timeout", 1)].map(|(l, n)| (l.to_string(), n)).into();
        assert_eq!(joined(&counts), "validity:1 90 · validity:4 5 · error:EC01 2 · failed:timeout 1");
    }
}
