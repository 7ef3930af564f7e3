//! Prometheus metrics, served as `GET /metrics` on the management address.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `elig_requests_total` | counter | `request` (lookup, bulk, tickets, status, usage, swap, delta), `kind` (lookup kind), `outcome` (normal, error, refused) |
//! | `elig_request_duration_seconds` | histogram | `request`, `kind`, `outcome` |
//! | `elig_bulk_items_total` | counter | `kind`, `outcome` |
//! | `elig_answers_total` | counter | `kind`, `validity` (1..6, or `none`) |
//! | `elig_connections_total` | counter | `role` |
//! | `elig_connections_active` | gauge | |
//! | `elig_connections_refused_total` | counter | `reason` (no_role, limit, handshake) |
//! | `elig_protocol_errors_total` | counter | `code` (EF01.., EL.., EP01) |
//! | `elig_snapshot_generation` | gauge | |
//! | `elig_snapshot_mapped_bytes` | gauge | |
//! | `elig_snapshot_memory_locked` | gauge | 1 when the snapshot's pages are locked in memory |
//! | `elig_delta_sequence` | gauge | |
//! | `elig_overlay_changed_rows` | gauge | |
//! | `elig_overlay_persons` | gauge | |
//! | `elig_overlay_bytes` | gauge | |
//! | `elig_delta_batches_total` | counter | `outcome` (applied, duplicate, refused) |
//! | `elig_delta_rows_total` | counter | |
//! | `elig_swaps_total` | counter | `outcome` (done, refused) |
//!
//! The engine gauges are set at start and after every swap and batch.
//! The recorder is process-wide (installed on first use); the endpoint is a
//! minimal HTTP/1.1 responder on tokio, so no web framework is needed.

use std::net::SocketAddr;
use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::handler::Outcome;

const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first call). `None`
/// if another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder =
                PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS).ok()?;
            builder.install_recorder().ok()
        })
        .as_ref()
}

/// The current metrics in the Prometheus text format.
pub fn render() -> String {
    match handle() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

/// Serve `GET /metrics` on `addr` until `stop` is cancelled. Returns the
/// bound address.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<SocketAddr> {
    handle();
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = tokio::select! {
                _ = stop.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        continue;
                    }
                },
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut used = 0;
                // Read the request head (bounded), ignore its body.
                while used < buf.len() {
                    match sock.read(&mut buf[used..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => used += n,
                    }
                    if buf[..used].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..used]);
                let (status, body) = if head.starts_with("GET /metrics ") || head.starts_with("GET / ") {
                    ("200 OK", render())
                } else {
                    ("404 Not Found", "try GET /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(local)
}

fn outcome_label(o: &Outcome) -> &'static str {
    match (o.kind, o.is_normal()) {
        ("refused", _) => "refused",
        (_, true) => "normal",
        (_, false) => "error",
    }
}

/// One answered query (lookup, ticket fetch or bulk item).
pub fn query(o: &Outcome) {
    let outcome = outcome_label(o);
    if o.request == "bulk" {
        counter!("elig_bulk_items_total", "kind" => o.kind, "outcome" => outcome).increment(1);
    }
    let validity = match o.validity.as_deref() {
        Some("1") => "1",
        Some("2") => "2",
        Some("3") => "3",
        Some("4") => "4",
        Some("5") => "5",
        Some("6") => "6",
        _ => "none",
    };
    counter!("elig_answers_total", "kind" => o.kind, "validity" => validity).increment(1);
}

/// One request finished (a bulk inquiry counts once here).
pub fn request(request: &'static str, kind: &'static str, outcome: &'static str, seconds: f64) {
    counter!("elig_requests_total", "request" => request, "kind" => kind, "outcome" => outcome).increment(1);
    histogram!("elig_request_duration_seconds", "request" => request, "kind" => kind, "outcome" => outcome).record(seconds);
}

/// The outcome label of a single query.
pub fn outcome_of(o: &Outcome) -> &'static str {
    outcome_label(o)
}

pub fn connection_opened(role: &'static str) {
    counter!("elig_connections_total", "role" => role).increment(1);
    gauge!("elig_connections_active").increment(1.0);
}

pub fn connection_closed() {
    gauge!("elig_connections_active").decrement(1.0);
}

pub fn connection_refused(reason: &'static str) {
    counter!("elig_connections_refused_total", "reason" => reason).increment(1);
}

/// A connection attempt: `accepted`, `retried`, `refused` or `timed_out`.
pub fn handshake(outcome: &'static str) {
    counter!("elig_handshakes_total", "outcome" => outcome).increment(1);
}

pub fn protocol_error(code: &'static str) {
    counter!("elig_protocol_errors_total", "code" => code).increment(1);
}

pub fn generation(g: u64) {
    gauge!("elig_snapshot_generation").set(g as f64);
}

/// The engine gauges: generation, delta sequence, overlay size, mapped bytes.
pub fn engine(gen: &elig_engine::engine::Generation) {
    generation(gen.id());
    let o = gen.overlay.stats();
    gauge!("elig_delta_sequence").set(gen.overlay.visible() as f64);
    gauge!("elig_overlay_changed_rows").set(o.changed_rows as f64);
    gauge!("elig_overlay_persons").set(o.persons as f64);
    gauge!("elig_overlay_bytes").set(o.bytes as f64);
    gauge!("elig_snapshot_mapped_bytes").set(gen.snapshot.mapped_bytes() as f64);
    gauge!("elig_snapshot_memory_locked").set(if gen.snapshot.memory_locked() { 1.0 } else { 0.0 });
}

/// One delta batch answered: `applied`, `duplicate` or `refused`.
pub fn delta_batch(outcome: &'static str, rows: u64) {
    counter!("elig_delta_batches_total", "outcome" => outcome).increment(1);
    if outcome == "applied" {
        counter!("elig_delta_rows_total").increment(rows);
    }
}

/// One swap answered: `done` or `refused`.
pub fn swap(outcome: &'static str) {
    counter!("elig_swaps_total", "outcome" => outcome).increment(1);
}

/// The delta feed of a node that follows the stream (`feed.rs`).
pub fn feed(s: &crate::feed::FeedStatus) {
    gauge!("elig_feed_applied_seq").set(s.applied_seq as f64);
    gauge!("elig_feed_stream_seq").set(s.stream_seq as f64);
    gauge!("elig_feed_lag_batches").set(s.lag_batches as f64);
    gauge!("elig_feed_lag_seconds").set(s.lag_secs as f64);
    gauge!("elig_feed_stopped").set(if s.state == crate::feed::FeedState::Stopped { 1.0 } else { 0.0 });
}
