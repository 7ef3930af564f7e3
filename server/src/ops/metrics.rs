//! Prometheus metrics, served on the management address (`GET /metrics`).
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
//! | `elig_feed_applied_seq`, `elig_feed_stream_seq`, `elig_feed_lag_batches`, `elig_feed_lag_seconds` | gauge | |
//! | `elig_feed_stopped`, `elig_feed_ready` | gauge | 1 when the feed stopped at a refused batch / when `/ready` answers 200 |
//! | `elig_feed_batches_applied_total` | counter | `lane` (background: caught up, below the answers' priority; catch_up: late, at theirs) |
//!
//! The engine gauges are set at start and after every swap and batch.
//! The recorder is process-wide, installed by the first server that serves
//! metrics, on hyper (the exporter's own listener serves no `/ready`).
//! Without `metrics_listen` no recorder is installed and the macros cost
//! next to nothing.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::core::{Label, Outcome, Request};

const LATENCY_BUCKETS: &[f64] =
    &[0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Where this process serves metrics, once a server did.
static SERVED: OnceLock<SocketAddr> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the Prometheus exporter: {0}")]
    Exporter(String),
    #[error("this process already serves metrics on {served} (one metrics endpoint per process)")]
    AlreadyServed { served: SocketAddr },
}

/// What `GET /ready` answers: `Ok(why)` 200, `Err(why)` 503.
pub type ReadyCheck = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Install the recorder and serve on `addr` until `stop` is cancelled:
/// `GET /metrics` (Prometheus text), `GET /health` (`OK` while the process
/// serves) and `GET /ready` (`ready`: 200 or 503 with the reason, for load
/// balancers and rolling restarts). Returns the bound address.
pub fn serve(addr: SocketAddr, ready: ReadyCheck, stop: CancellationToken) -> Result<SocketAddr, MetricsError> {
    if let Some(served) = SERVED.get() {
        return Err(MetricsError::AlreadyServed { served: *served });
    }
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    listener.set_nonblocking(true).map_err(|source| MetricsError::Bind { addr, source })?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| MetricsError::Bind { addr, source })?;
    let exporter = |e: &dyn std::fmt::Display| MetricsError::Exporter(e.to_string());
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| exporter(&e))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| exporter(&e))?;
    let _ = SERVED.set(bound);
    // Histograms drain into their summaries on upkeep (the exporter's own
    // listener did this every 5 s).
    let upkeep = handle.clone();
    let upkeep_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = upkeep_stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => upkeep.run_upkeep(),
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        continue;
                    }
                },
            };
            let (handle, ready) = (handle.clone(), ready.clone());
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let response = respond(req.uri().path(), &handle, &ready);
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                    tracing::debug!(error = %e, "metrics endpoint: connection");
                }
            });
        }
    });
    Ok(bound)
}

fn respond(path: &str, handle: &PrometheusHandle, ready: &ReadyCheck) -> hyper::Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (200, handle.render()),
        "/health" => (200, "OK\n".to_string()),
        "/ready" => match ready() {
            Ok(why) => (200, format!("ready: {why}\n")),
            Err(why) => (503, format!("not ready: {why}\n")),
        },
        other => (404, format!("no such path '{other}': /metrics, /health or /ready\n")),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// One answered query (lookup, ticket fetch or bulk item).
pub fn query(o: &Outcome) {
    let (kind, outcome) = (o.asked.name(), o.verdict().name());
    if o.request == Request::Bulk {
        counter!("elig_bulk_items_total", "kind" => kind, "outcome" => outcome).increment(1);
    }
    let validity = o.validity.map_or("none", |v| v.code());
    counter!("elig_answers_total", "kind" => kind, "validity" => validity).increment(1);
}

/// One request finished (a bulk inquiry counts once here).
pub fn request(label: Label, seconds: f64) {
    let (request, kind, outcome) = (label.request_name(), label.kind_name(), label.verdict.name());
    counter!("elig_requests_total", "request" => request, "kind" => kind, "outcome" => outcome).increment(1);
    histogram!("elig_request_duration_seconds", "request" => request, "kind" => kind, "outcome" => outcome).record(seconds);
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

/// What came of one delta batch or swap an operator sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A batch applied, or a swap done.
    Done,
    /// A batch already applied (acknowledged again, nothing changed).
    Duplicate,
    Refused,
}

/// One delta batch answered: `applied`, `duplicate` or `refused`.
pub fn delta_batch(outcome: Change, rows: u64) {
    let label = match outcome {
        Change::Done => "applied",
        Change::Duplicate => "duplicate",
        Change::Refused => "refused",
    };
    counter!("elig_delta_batches_total", "outcome" => label).increment(1);
    if outcome == Change::Done {
        counter!("elig_delta_rows_total").increment(rows);
    }
}

/// One swap answered: `done` or `refused`.
pub fn swap(outcome: Change) {
    let label = if outcome == Change::Refused { "refused" } else { "done" };
    counter!("elig_swaps_total", "outcome" => label).increment(1);
}

/// The delta feed of a node that follows the stream (`feed.rs`).
pub fn feed(s: &elig_wire::report::FeedStatus) {
    gauge!("elig_feed_applied_seq").set(s.applied_seq as f64);
    gauge!("elig_feed_stream_seq").set(s.stream_seq as f64);
    gauge!("elig_feed_lag_batches").set(s.lag_batches as f64);
    gauge!("elig_feed_lag_seconds").set(s.lag_secs as f64);
    gauge!("elig_feed_stopped").set(if s.state == elig_wire::report::FeedState::Stopped { 1.0 } else { 0.0 });
    gauge!("elig_feed_ready").set(if s.ready { 1.0 } else { 0.0 });
}
