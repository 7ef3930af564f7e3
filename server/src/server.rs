//! The QUIC server: accept loop, role check per connection, one task per
//! stream moving frames in and out of [`crate::handler`]. Thin glue.
//!
//! Every query request pins the live generation when it starts and answers
//! from it to the end (a bulk inquiry included), so a swap or a delta batch
//! never mixes states in one answer. Swaps, delta batches and status run on
//! tokio's blocking pool (`spawn_blocking`): they fsync, verify and
//! pre-fault snapshots, and take the engine's writer lock.
//!
//! Connection close codes (application): 0 server shutting down, 1 the
//! client certificate carries no usable role. A connection over the limit
//! is refused before its handshake (QUIC `CONNECTION_REFUSED`).

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use elig_engine::engine::Engine;
use elig_engine::lookup::Clock;
use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, AdmissionLimits, Admitted, Decision, RETRY_WINDOW};
use crate::audit::Audit;
use crate::config::{Config, Limits};
use crate::handler::{self, Bulk, HandshakeCounts, Outcome, Refusal, RuntimeInfo};
use crate::initial_filter::{Blocked, FilteredSocket};
use crate::metrics;
use crate::protocol;
use crate::protocol::{codes, Frame, Kind};
use crate::roles::{Role, RoleError};
use crate::stream::{write_frame, write_json, FrameReader, Next, ReadError};
use crate::tls::{self, Identity, TlsError};
use crate::udp::{self, UdpError};
use crate::usage::{Usage, UsageReport};

pub const CLOSE_SHUTDOWN: u32 = 0;
pub const CLOSE_NO_ROLE: u32 = 1;

/// How long a finished response waits for the peer's acknowledgement once
/// a shutdown has begun.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(2);

/// Bulk answers are written in batches of about this much: one write (a
/// connection lock and a driver wake-up) per answer was 18% of a bulk.
const BULK_WRITE_BATCH: usize = 64 << 10;

/// Items a bulk inquiry answers before it lets other tasks run: with frames
/// already buffered and room to write, its loop never waits, and on the
/// default single worker thread it would hold up every other request.
const BULK_YIELD_EVERY: u64 = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Udp(#[from] UdpError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
    #[error("audit log {path}: {source}")]
    Audit { path: std::path::PathBuf, source: std::io::Error },
    #[error("idle timeout {0:?} is out of range")]
    IdleTimeout(Duration),
}

/// State shared by every connection.
#[derive(Debug)]
struct Shared {
    engine: Arc<Engine>,
    limits: Limits,
    usage: Usage,
    audit: Audit,
    fixed_clock: Option<Clock>,
    started: Instant,
    started_at: u64,
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    requests_total: AtomicU64,
    admission: Mutex<Admission>,
    handshakes: [AtomicU64; 5],
    blocked: Arc<Blocked>,
    tracker: TaskTracker,
    stop: CancellationToken,
    /// The delta feed, when this node follows the stream.
    feed: Option<Arc<crate::feed::Feed>>,
}

impl Shared {
    fn clock(&self) -> Clock {
        self.fixed_clock.unwrap_or_else(Clock::japan_now)
    }

    fn record(&self, role: &Role, peer: SocketAddr, now: u64, o: &Outcome) {
        self.usage.record(o);
        self.audit.record(now, role, peer, o);
        metrics::query(o);
    }

    fn runtime(&self) -> RuntimeInfo {
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
        }
    }

    fn handshake_counts(&self) -> HandshakeCounts {
        let [accepted, retried, ignored, refused, timed_out] = self.handshakes.each_ref().map(|c| c.load(Ordering::Relaxed));
        HandshakeCounts { accepted, retried, ignored: ignored + self.blocked.dropped(), refused, timed_out }
    }

    fn handshake(&self, outcome: Handshake) {
        self.handshakes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        metrics::handshake(outcome.name());
    }

    fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        // Counts only: a panic elsewhere leaves them usable.
        self.admission.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What became of a connection attempt (an index into `Shared::handshakes`).
#[derive(Debug, Clone, Copy)]
enum Handshake {
    Accepted,
    Retried,
    Ignored,
    Refused,
    TimedOut,
}

impl Handshake {
    fn name(self) -> &'static str {
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

/// Run blocking engine work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Refusal> + Send + 'static) -> Result<T, Refusal> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "an operator request failed inside the server");
            Err(Refusal::new(codes::INTERNAL, format!("the server failed while serving the request: {e}")))
        }
    }
}

/// An operator request that changes the engine (a delta batch, a swap): run
/// off the async runtime (it fsyncs or verifies), then the engine gauges
/// updated whatever came of it.
async fn engine_change<T: Send + 'static>(
    shared: &Shared,
    role: &Role,
    payload: &[u8],
    change: fn(&Engine, &Role, &[u8]) -> Result<T, Refusal>,
) -> Result<T, Refusal> {
    let (engine, who, payload) = (shared.engine.clone(), role.clone(), payload.to_vec());
    let result = blocking(move || change(&engine, &who, &payload)).await;
    metrics::engine(&shared.engine.pin());
    result
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    shared: Arc<Shared>,
    stop: CancellationToken,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Server {
    /// Load the TLS material, bind, and start serving `engine`, which should
    /// have been opened with `config.delta_log` ([`state::open_engine`]):
    /// without a delta log, delta batches are refused (`ED03`).
    pub async fn start(config: &Config, engine: Arc<Engine>) -> Result<Server, ServerError> {
        let roots = tls::roots(&tls::read(&config.tls.ca)?, &config.tls.ca.display().to_string())?;
        let identity = Identity::load(&config.tls.cert, &config.tls.key)?;
        let crypto = tls::quic_server(tls::server_config(roots, identity)?)?;
        let limits = config.limits;
        let mut transport = quinn::TransportConfig::default();
        transport.max_concurrent_bidi_streams(VarInt::from_u32(limits.max_streams_per_connection));
        transport.max_concurrent_uni_streams(VarInt::from_u32(0));
        let idle = quinn::IdleTimeout::try_from(limits.idle_timeout()).map_err(|_| ServerError::IdleTimeout(limits.idle_timeout()))?;
        transport.max_idle_timeout(Some(idle));
        udp::discover_mtu(&mut transport, config.udp.max_payload);
        let mut server_config = quinn::ServerConfig::with_crypto(crypto);
        server_config.transport_config(Arc::new(transport));
        // Attempts waiting for the accept loop (which decides each in
        // microseconds): bounded well under quinn's 65,536, and with 0-RTT
        // off nothing but the Initial itself is buffered for one.
        server_config.max_incoming(16 << 10).incoming_buffer_size(64 << 10).incoming_buffer_size_total(16 << 20);
        let (socket, _granted) = udp::bind(config.listen, &config.udp)?;
        // Initials from sockets that ignore their Retries are dropped before quinn (`initial_filter`).
        let blocked = Arc::new(Blocked::default());
        let endpoint = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket)
            .and_then(|socket| {
                let socket = Arc::new(FilteredSocket::new(socket, blocked.clone()));
                let config = udp::endpoint_config(config.udp.max_payload);
                Endpoint::new_with_abstract_socket(config, Some(server_config), socket, Arc::new(quinn::TokioRuntime))
            })
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let local_addr = endpoint.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;

        let audit = match &config.audit_log {
            Some(path) => Audit::open(path, &config.audit_key_salt).map_err(|source| ServerError::Audit { path: path.clone(), source })?,
            None => Audit::disabled(),
        };
        let stop = CancellationToken::new();
        let metrics_addr = match config.metrics_listen {
            Some(addr) => Some(metrics::serve(addr, stop.clone()).await.map_err(|source| ServerError::Metrics { addr, source })?),
            None => None,
        };
        let fixed_clock = config.fixed_clock.map(Clock::at);
        let started_at = fixed_clock.unwrap_or_else(Clock::japan_now).now;
        let engine_for_feed = engine.clone();
        let shared = Arc::new(Shared {
            engine,
            limits,
            usage: Usage::new(started_at),
            audit,
            fixed_clock,
            started: Instant::now(),
            started_at,
            connections_active: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            admission: Mutex::new(Admission::new(AdmissionLimits {
                max_connections: limits.max_connections,
                retry_after_handshakes: limits.retry_after_handshakes,
                max_handshakes_per_address: limits.max_handshakes_per_address,
            })),
            handshakes: Default::default(),
            blocked,
            tracker: TaskTracker::new(),
            stop: stop.clone(),
            feed: config.feed.clone().map(|f| crate::feed::Feed::spawn(engine_for_feed.clone(), f, stop.clone())),
        });
        metrics::engine(&shared.engine.pin());
        tokio::spawn(accept_loop(endpoint.clone(), shared.clone(), stop.clone()));
        tracing::info!(%local_addr, generation = shared.engine.pin().id(), "eligd listening");
        Ok(Server { endpoint, shared, stop, local_addr, metrics_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Connection attempts so far, by what came of them.
    pub fn handshakes(&self) -> HandshakeCounts {
        self.shared.handshake_counts()
    }

    /// Usage counts so far.
    pub fn usage(&self) -> UsageReport {
        self.shared.usage.report(self.shared.clock().now)
    }

    /// A token that starts the shutdown when cancelled (signal handlers).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Serve until the stop token is cancelled, then shut down gracefully.
    pub async fn run(self) {
        self.stop.cancelled().await;
        self.shutdown().await;
    }

    /// Stop accepting connections and streams, let requests in flight
    /// finish (up to `shutdown_grace_secs`), then close every connection.
    pub async fn shutdown(self) {
        tracing::info!("shutting down: finishing requests in flight");
        self.stop.cancel();
        self.endpoint.set_server_config(None);
        self.shared.tracker.close();
        let grace = self.shared.limits.shutdown_grace();
        if tokio::time::timeout(grace, self.shared.tracker.wait()).await.is_err() {
            tracing::warn!(?grace, "requests still in flight after the grace period; closing anyway");
        }
        self.endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(5), self.endpoint.wait_idle()).await;
        self.shared.audit.close();
        tracing::info!("shut down");
    }
}

async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        // The endpoint's count includes connections still in their handshake,
        // which `connections_active` (role checked) does not yet.
        let peer = incoming.remote_address();
        let decided = shared.admission().decide(peer, incoming.remote_address_validated(), endpoint.open_connections(), Instant::now());
        match decided {
            Decision::Accept(admitted) => {
                shared.handshake(Handshake::Accepted);
                shared.tracker.spawn(connection(incoming, admitted, shared.clone(), stop.clone()));
            }
            Decision::Retry => {
                shared.handshake(Handshake::Retried);
                tracing::debug!(%peer, "handshakes pile up: asking an unvalidated address to retry");
                // Only an attempt that already carried a Retry token cannot
                // be retried again, and such an address is validated.
                if let Err(e) = incoming.retry() {
                    e.into_incoming().ignore();
                }
            }
            Decision::Ignore => {
                shared.handshake(Handshake::Ignored);
                shared.blocked.block(peer, Instant::now() + RETRY_WINDOW);
                incoming.ignore();
            }
            Decision::Refuse(why) => {
                shared.handshake(Handshake::Refused);
                metrics::connection_refused(why.name());
                tracing::warn!(%peer, reason = why.name(), "connection refused");
                incoming.refuse();
            }
        }
    }
}

fn role_of(conn: &Connection) -> Result<Role, RoleError> {
    let identity = conn.peer_identity().ok_or(RoleError::NoCertificate)?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().map_err(|_| RoleError::NoCertificate)?;
    let leaf = certs.first().ok_or(RoleError::NoCertificate)?;
    Role::from_certificate(leaf)
}

async fn connection(incoming: Incoming, admitted: Admitted, shared: Arc<Shared>, stop: CancellationToken) {
    let peer = incoming.remote_address();
    // Dropping an unfinished handshake closes it: a peer that never
    // finishes holds its place for handshake_timeout_secs at most.
    let handshake = tokio::time::timeout(shared.limits.handshake_timeout(), incoming.into_future()).await;
    shared.admission().done(admitted);
    let conn = match handshake {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            metrics::connection_refused("handshake");
            tracing::info!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            shared.handshake(Handshake::TimedOut);
            metrics::connection_refused("handshake_timeout");
            tracing::info!(%peer, timeout = ?shared.limits.handshake_timeout(), "handshake not done in time; dropped");
            return;
        }
    };
    let role = match role_of(&conn) {
        Ok(r) => r,
        Err(e) => {
            metrics::connection_refused(if matches!(e, RoleError::NoClientAuth { .. }) { "no_client_auth" } else { "no_role" });
            tracing::warn!(%peer, error = %e, "refusing connection");
            conn.close(VarInt::from_u32(CLOSE_NO_ROLE), e.to_string().as_bytes());
            return;
        }
    };
    tracing::info!(%peer, %role, "connection");
    metrics::connection_opened(role.name());
    shared.connections_active.fetch_add(1, Ordering::Relaxed);
    shared.connections_total.fetch_add(1, Ordering::Relaxed);
    let streams = TaskTracker::new();
    let stopped = loop {
        let (send, recv) = tokio::select! {
            _ = stop.cancelled() => break true,
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection ended");
                    break false;
                }
            },
        };
        let shared2 = shared.clone();
        let role = role.clone();
        streams.spawn(async move { request(shared2, role, peer, send, recv).await });
    };
    // Requests in flight finish before the connection closes (the
    // connection task is tracked by the server's shutdown).
    streams.close();
    streams.wait().await;
    if stopped {
        conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
    }
    shared.connections_active.fetch_sub(1, Ordering::Relaxed);
    metrics::connection_closed();
}

/// Why a stream ended early: the peer went away (nothing to send), or the
/// request is refused with an `Error` frame.
enum Stop {
    Gone,
    Refuse(Refusal),
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Stop {
        Stop::Refuse(r)
    }
}

impl From<quinn::WriteError> for Stop {
    fn from(_: quinn::WriteError) -> Stop {
        Stop::Gone
    }
}

fn read_stop(e: ReadError) -> Stop {
    match e.code() {
        Some(code) => Stop::Refuse(Refusal::new(code, e.to_string())),
        None => Stop::Gone,
    }
}

/// One request stream.
async fn request(shared: Arc<Shared>, role: Role, peer: SocketAddr, mut send: SendStream, mut recv: RecvStream) {
    let started = Instant::now();
    shared.requests_total.fetch_add(1, Ordering::Relaxed);
    let mut label = ("unknown", "-", "refused");
    match serve(&shared, &role, peer, &mut send, &mut recv, &mut label).await {
        Ok(()) => {}
        Err(Stop::Gone) => label.2 = "error",
        Err(Stop::Refuse(r)) => {
            label.2 = "refused";
            metrics::protocol_error(r.code);
            tracing::debug!(%peer, code = r.code, message = %r.message, "request refused");
            let _ = write_frame(&mut send, &Frame::error(r.code, r.message)).await;
            // Whatever else the client sends on this stream is not read.
            let _ = recv.stop(VarInt::from_u32(0));
        }
    }
    // The end of the stream right after the last frame (clients read on to
    // it), so it can leave in the same datagram.
    let _ = send.finish();
    metrics::request(label.0, label.1, label.2, started.elapsed().as_secs_f64());
    // Let the peer receive everything before the task (and a shutdown) ends.
    // During a shutdown a peer that never acknowledges gets a short grace.
    let shutdown_grace = async {
        shared.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_ACK_WAIT).await;
    };
    tokio::select! {
        _ = tokio::time::timeout(shared.limits.idle_timeout(), send.stopped()) => {}
        _ = shutdown_grace => {}
    }
}

async fn serve(
    shared: &Shared,
    role: &Role,
    peer: SocketAddr,
    send: &mut SendStream,
    recv: &mut RecvStream,
    label: &mut (&'static str, &'static str, &'static str),
) -> Result<(), Stop> {
    let limits = &shared.limits;
    let idle = limits.frame_timeout();
    // A delta batch may be larger than a query; only an operator's.
    let max_delta = if role.is_operator() { limits.max_delta_bytes.max(limits.max_frame_bytes) } else { limits.max_frame_bytes };
    let max_for = |k: Kind| if k == Kind::Delta { max_delta } else { limits.max_frame_bytes };
    let mut reader = FrameReader::new();
    let kind = match reader.next_for(recv, max_for, idle).await.map_err(read_stop)? {
        Some(k) => k,
        None => return Err(Refusal::new(codes::MALFORMED_FRAME, "empty request stream: send one request frame").into()),
    };
    label.0 = kind.name();
    let clock = shared.clock();
    // Queries pin the generation live now and answer from it to the end.
    let pin = || shared.engine.pin();
    match kind {
        Kind::Lookup => {
            let gen = pin();
            let (answer, o) = handler::lookup(&gen, role, reader.payload(), clock);
            shared.record(role, peer, clock.now, &o);
            *label = ("lookup", o.kind, metrics::outcome_of(&o));
            write_json(send, Kind::Answer, &answer).await?;
        }
        Kind::Tickets => {
            let gen = pin();
            let (units, summary, o) = handler::tickets(&gen, role, reader.payload(), clock);
            shared.record(role, peer, clock.now, &o);
            *label = ("tickets", o.kind, metrics::outcome_of(&o));
            let mut out = Vec::new();
            for unit in &units {
                protocol::encode_json_into(&mut out, Kind::Unit, unit);
                if out.len() >= BULK_WRITE_BATCH {
                    send.write_all(&out).await?;
                    out.clear();
                }
            }
            protocol::encode_json_into(&mut out, Kind::Summary, &summary);
            send.write_all(&out).await?;
        }
        Kind::BulkBegin => {
            let gen = pin();
            let mut bulk = Bulk::begin(&gen, role, reader.payload(), limits, clock)?;
            *label = ("bulk", "bulk", "normal");
            let mut out = Vec::with_capacity(BULK_WRITE_BATCH + (BULK_WRITE_BATCH >> 2));
            let io = BulkIo { reader: &mut reader, send: &mut *send, recv: &mut *recv };
            // Boxed: its state would otherwise enlarge every request's task,
            // which tokio copies when it spawns one.
            let items = Box::pin(bulk_items(shared, role, peer, clock, &mut bulk, io, &mut out)).await;
            match items.and_then(|()| bulk.finish().map_err(Stop::from)) {
                Ok(summary) => {
                    protocol::encode_json_into(&mut out, Kind::Summary, &summary);
                    send.write_all(&out).await?;
                }
                Err(stop) => {
                    // Answers computed before a refusal reach the client before its error frame.
                    if !out.is_empty() {
                        send.write_all(&out).await?;
                    }
                    return Err(stop);
                }
            }
        }
        Kind::Status => {
            let (engine, who, runtime) = (shared.engine.clone(), role.clone(), shared.runtime());
            let report = blocking(move || handler::status(&engine, &who, runtime)).await?;
            *label = ("status", "-", "normal");
            write_json(send, Kind::Report, &report).await?;
        }
        Kind::Usage => {
            let report = handler::usage(role, &shared.usage, clock)?;
            *label = ("usage", "-", "normal");
            write_json(send, Kind::Report, &report).await?;
        }
        Kind::Delta => {
            let ack = engine_change(shared, role, reader.payload(), handler::delta).await.inspect_err(|r| {
                metrics::delta_batch("refused", 0);
                tracing::info!(%peer, code = r.code, message = %r.message, "delta batch refused");
            })?;
            metrics::delta_batch(if ack.duplicate { "duplicate" } else { "applied" }, ack.rows);
            tracing::info!(%peer, seq = ack.seq, duplicate = ack.duplicate, rows = ack.rows, generation = ack.generation, "delta batch acknowledged");
            *label = ("delta", "-", "normal");
            write_json(send, Kind::Report, &ack).await?;
        }
        Kind::Swap => {
            // The engine records the live snapshot beside the delta log (for
            // restarts) before it compacts the log.
            let report = engine_change(shared, role, reader.payload(), handler::swap).await.inspect_err(|r| {
                metrics::swap("refused");
                tracing::warn!(%peer, code = r.code, message = %r.message, "swap refused; the live snapshot keeps serving");
            })?;
            metrics::swap("done");
            tracing::info!(
                %peer, generation = report.generation, previous = report.previous_generation, snapshot = %report.snapshot_dir,
                replayed = report.replayed, total_ms = report.total_ms, "swapped in a new snapshot"
            );
            *label = ("swap", "-", "normal");
            write_json(send, Kind::Report, &report).await?;
        }
        Kind::BulkItem => return Err(Refusal::new(codes::UNEXPECTED_FRAME, "a bulk_item frame must follow a bulk_begin frame").into()),
        other => {
            return Err(Refusal::new(
                codes::UNEXPECTED_FRAME,
                format!("frame kind '{}' (0x{:02x}) is sent by servers, not clients", other.name(), other as u8),
            )
            .into())
        }
    }
    // A bulk inquiry reads its own frames to the end of the stream; after a
    // one-frame request, whatever else arrives is refused, not ignored.
    if kind != Kind::BulkBegin {
        if let Some(next) = reader.next_for(recv, max_for, idle).await.map_err(read_stop)? {
            return Err(handler::frame_after_request(kind, next).into());
        }
    }
    Ok(())
}

/// The streams of a bulk inquiry and the frames read ahead.
struct BulkIo<'a> {
    reader: &'a mut FrameReader,
    send: &'a mut SendStream,
    recv: &'a mut RecvStream,
}

/// The items of a bulk inquiry, answered in order into `out`, which is
/// written whenever it holds a batch or the next item has not arrived yet
/// (answers stream as computed; nothing waits on the client while held).
/// What is still in `out` on return is for the caller to send.
async fn bulk_items(
    shared: &Shared,
    role: &Role,
    peer: SocketAddr,
    clock: Clock,
    bulk: &mut Bulk<'_>,
    io: BulkIo<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Stop> {
    let BulkIo { reader, send, recv } = io;
    let limits = &shared.limits;
    let idle = limits.frame_timeout();
    let mut answered = 0u64;
    while bulk.remaining() > 0 {
        if answered > 0 && answered.is_multiple_of(BULK_YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
        if !out.is_empty() && !reader.has_frame() {
            send.write_all(out).await?;
            out.clear();
        }
        // An item over max_frame_bytes is answered in place with an error
        // and skipped unread; the items after it are answered.
        let (answer, o) = match reader.next_skipping(recv, limits.max_frame_bytes, idle).await.map_err(read_stop)? {
            Some(Next::Frame(Kind::BulkItem)) => bulk.item(reader.payload())?,
            Some(Next::Oversized { kind: Kind::BulkItem, len, max }) => bulk.oversized(len, max)?,
            Some(Next::Frame(other) | Next::Oversized { kind: other, .. }) => {
                return Err(Refusal::new(
                    codes::UNEXPECTED_FRAME,
                    format!("expected a bulk_item frame inside a bulk inquiry, got '{}'", other.name()),
                )
                .into())
            }
            None => return Ok(()),
        };
        answered += 1;
        shared.record(role, peer, clock.now, &o);
        protocol::encode_json_into(out, Kind::Answer, &answer);
        if out.len() >= BULK_WRITE_BATCH {
            send.write_all(out).await?;
            out.clear();
        }
    }
    // All declared items answered: the client must finish its side now.
    if !out.is_empty() && !reader.has_frame() {
        send.write_all(out).await?;
        out.clear();
    }
    if let Some(k) = reader.next(recv, limits.max_frame_bytes, idle).await.map_err(read_stop)? {
        let declared = bulk.declared();
        return Err(Refusal::new(
            codes::BULK_COUNT,
            format!("more items than the {declared} declared (got a '{}' frame after the last)", k.name()),
        )
        .into());
    }
    Ok(())
}
