//! What every connection and stream of a server shares: the engine, the
//! limits, the operations sinks, the counters; and where a stream's answered
//! queries are recorded. Its own file so that the accept loop
//! ([`super::server`]) and the stream task ([`super::stream`]) both use it
//! without using each other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use elig_engine::engine::Engine;
use elig_engine::lookup::Clock;
use elig_wire::report::{HandshakeCounts, Limits, RuntimeInfo, UsageReport};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Admission;
use super::initial_filter::Blocked;
use crate::core::{Facts, Outcome, Record, Role};
use crate::ops::audit::Audit;
use crate::ops::metrics;
use crate::ops::usage::Usage;

/// State shared by every connection.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) engine: Arc<Engine>,
    pub(super) limits: Limits,
    pub(super) usage: Usage,
    pub(super) audit: Audit,
    pub(super) fixed_clock: Option<Clock>,
    pub(super) started: Instant,
    pub(super) started_at: u64,
    pub(super) connections_active: AtomicU64,
    pub(super) connections_total: AtomicU64,
    pub(super) requests_total: AtomicU64,
    pub(super) admission: Mutex<Admission>,
    pub(super) handshakes: [AtomicU64; 5],
    pub(super) blocked: Arc<Blocked>,
    pub(super) tracker: TaskTracker,
    pub(super) stop: CancellationToken,
    /// The delta feed, when this node follows the stream.
    pub(super) feed: Option<Arc<crate::ops::feed::Feed>>,
    /// The workers' endpoints, in worker order, once all have started.
    pub(super) endpoints: std::sync::OnceLock<Vec<quinn::Endpoint>>,
    /// Connections open (role checked) on each worker.
    pub(super) worker_connections: Vec<AtomicU64>,
}

impl Shared {
    pub(super) fn clock(&self) -> Clock {
        self.fixed_clock.unwrap_or_else(Clock::japan_now)
    }

    pub(super) fn runtime(&self) -> RuntimeInfo {
        RuntimeInfo {
            started: self.started_at,
            uptime_secs: self.started.elapsed().as_secs(),
            connections_active: self.connections_active.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            requests_total: self.requests_total.load(Ordering::Relaxed),
            limits: Some(self.limits),
            rss_bytes: rss_bytes(),
            handshakes: self.handshake_counts(),
            feed: self.feed.as_ref().map(|f| f.status()),
            worker: None,
            worker_connections: self.worker_connections.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
        }
    }

    /// Connections of every worker, those in their handshake included (what
    /// admission limits).
    pub(super) fn open_connections(&self) -> usize {
        self.endpoints.get().map_or(0, |all| all.iter().map(|e| e.open_connections()).sum())
    }

    /// Why lookups are refused `EN01` now (a joining node), if they are.
    pub(super) fn not_ready(&self) -> Option<String> {
        self.feed.as_ref().and_then(|f| f.not_ready())
    }

    /// What `GET /ready` answers: serving, and (following the stream)
    /// caught up within `ready_max_lag` batches.
    pub(super) fn ready(&self) -> Result<String, String> {
        if self.stop.is_cancelled() {
            return Err("shutting down".into());
        }
        let Some(feed) = &self.feed else {
            let gen = self.engine.pin();
            return Ok(format!("serving generation {} at delta seq {}", gen.id(), gen.view().delta_seq));
        };
        let s = feed.status();
        if s.ready {
            return Ok(format!("following stream {}: batch {} of {}", s.stream, s.applied_seq, s.stream_seq));
        }
        Err(match (feed.not_ready(), s.state) {
            (Some(joining), _) => joining,
            (None, crate::ops::feed::FeedState::Stopped) => {
                format!("the delta feed stopped at batch {}: {}", s.applied_seq + 1, s.alarm.unwrap_or_default())
            }
            (None, crate::ops::feed::FeedState::Connecting) => format!("reconnecting to the stream: {}", s.alarm.unwrap_or_default()),
            (None, _) => format!(
                "{} batches behind the stream (batch {} of {}; ready_max_lag {})",
                s.lag_batches,
                s.applied_seq,
                s.stream_seq,
                feed.config().ready_max_lag
            ),
        })
    }

    pub(super) fn handshake_counts(&self) -> HandshakeCounts {
        let [accepted, retried, ignored, refused, timed_out] = self.handshakes.each_ref().map(|c| c.load(Ordering::Relaxed));
        HandshakeCounts { accepted, retried, ignored: ignored + self.blocked.dropped(), refused, timed_out }
    }

    pub(super) fn handshake(&self, outcome: Handshake) {
        self.handshakes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        metrics::handshake(outcome.name());
    }

    pub(super) fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        // Counts only: a panic elsewhere leaves them usable.
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a job reports, as the worker that runs it sees it.
pub(super) struct OnWorker<'a> {
    pub(super) shared: &'a Shared,
    pub(super) worker: usize,
}

impl Facts for OnWorker<'_> {
    fn runtime(&self) -> RuntimeInfo {
        RuntimeInfo { worker: Some(self.worker as u32), ..self.shared.runtime() }
    }

    fn usage(&self) -> UsageReport {
        self.shared.usage.report(self.shared.clock().now)
    }
}

/// Where a stream's answered queries are recorded: usage, audit, metrics.
pub(super) struct Recorder<'a> {
    pub(super) shared: &'a Shared,
    pub(super) role: &'a Role,
    pub(super) peer: SocketAddr,
    pub(super) now: u64,
}

impl Record for Recorder<'_> {
    fn query(&mut self, o: &Outcome) {
        self.shared.usage.record(o);
        self.shared.audit.record(self.now, self.role, self.peer, o);
        metrics::query(o);
    }
}

/// What became of a connection attempt (an index into `Shared::handshakes`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Handshake {
    Accepted,
    Retried,
    Ignored,
    Refused,
    TimedOut,
}

impl Handshake {
    pub(super) fn name(self) -> &'static str {
        match self {
            Handshake::Accepted => "accepted",
            Handshake::Retried => "retried",
            Handshake::Ignored => "ignored",
            Handshake::Refused => "refused",
            Handshake::TimedOut => "timed_out",
        }
    }
}

/// Resident set size from `/proc/self/status`, where there is one.
fn rss_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
