//! The QUIC server: endpoint, accept loop (admission), role check per
//! connection, and one task per stream ([`super::stream`]) that drives the
//! request machine ([`crate::core::Machine`]). Thin glue: what a request
//! comes to is decided in the core.
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
use quinn::{Connection, Endpoint, Incoming, VarInt};
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use elig_wire::codes::close;
use elig_wire::report::{HandshakeCounts, UsageReport};

use super::admission::{Admission, AdmissionLimits, Admitted, Decision, RETRY_WINDOW};
use super::initial_filter::{Blocked, FilteredSocket};
use super::shared::{Handshake, Shared};
use super::tls::{self, Identity, TlsError};
use super::udp::{self, UdpError};
use super::workers::{self, WorkerCids};
use crate::config::Config;
use crate::core::{Role, RoleError};
use crate::ops::audit::Audit;
use crate::ops::metrics::{self, MetricsError};
use crate::ops::usage::Usage;

pub const CLOSE_SHUTDOWN: u32 = close::SHUTDOWN;
pub const CLOSE_NO_ROLE: u32 = close::NO_ROLE;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Udp(#[from] UdpError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve metrics: {0}")]
    Metrics(#[from] MetricsError),
    #[error("audit log {path}: {source}")]
    Audit { path: std::path::PathBuf, source: std::io::Error },
    #[error("idle timeout {0:?} is out of range")]
    IdleTimeout(Duration),
}

/// A running server. Dropping it ends its workers at once (connections
/// cut, as if the process died); [`Server::shutdown`] ends them gracefully.
#[derive(Debug)]
pub struct Server {
    /// One per worker, in worker order.
    endpoints: Vec<Endpoint>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    /// Ends the worker threads (their runtimes, and what still runs there).
    finished: CancellationToken,
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        self.finished.cancel();
    }
}

/// One QUIC worker: a thread with its own current-thread runtime and
/// endpoint ([`super::workers`]).
struct Worker {
    index: usize,
    workers: usize,
    server_config: quinn::ServerConfig,
    max_payload: u16,
}

impl Worker {
    /// Start the thread and its endpoint on `socket`; its accept loop starts
    /// when the returned sender fires. Runs until `finished`.
    fn spawn(
        self,
        addr: SocketAddr,
        socket: std::net::UdpSocket,
        blocked: Arc<Blocked>,
        shared: Arc<Shared>,
        stop: CancellationToken,
        finished: CancellationToken,
    ) -> Result<(Endpoint, tokio::sync::oneshot::Sender<()>), ServerError> {
        let bind = |source| ServerError::Bind { addr, source };
        let (made, endpoint) = std::sync::mpsc::sync_channel(1);
        let (go, start) = tokio::sync::oneshot::channel::<()>();
        let Worker { index, workers, server_config, max_payload } = self;
        std::thread::Builder::new()
            .name(format!("eligd-worker-{index}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return drop(made.send(Err(e))),
                };
                rt.block_on(async move {
                    let endpoint = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket).and_then(|socket| {
                        let socket = Arc::new(FilteredSocket::new(socket, blocked));
                        let mut config = udp::endpoint_config(max_payload);
                        if workers > 1 {
                            config.cid_generator(move || Box::new(WorkerCids::new(index, workers)));
                        }
                        Endpoint::new_with_abstract_socket(config, Some(server_config), socket, Arc::new(quinn::TokioRuntime))
                    });
                    let endpoint = match endpoint {
                        Ok(e) => e,
                        Err(e) => return drop(made.send(Err(e))),
                    };
                    let _ = made.send(Ok(endpoint.clone()));
                    tokio::select! {
                        _ = finished.cancelled() => return,
                        started = start => if started.is_err() { return },
                    }
                    tokio::spawn(accept_loop(endpoint, index, shared, stop));
                    finished.cancelled().await;
                });
            })
            .map_err(bind)?;
        let endpoint = endpoint.recv().map_err(|_| bind(std::io::Error::other("the worker thread ended while starting")))?.map_err(bind)?;
        Ok((endpoint, go))
    }
}

/// What a client may send on a stream ahead of what the server has read
/// (quinn's default is 1.25 MB). A bulk inquiry's items queued ahead are
/// decrypted by the connection driver before its first item is answered:
/// 1.25 MB of them held the first answer back (first item p50 10.4 ms
/// against 4.2 ms with 256 KiB, same items/s, on a loaded 2-core host). It
/// bounds a stream to 256 KiB per round trip: 12.8 MB/s at 20 ms.
const STREAM_RECEIVE_WINDOW: u32 = 256 << 10;

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
        transport.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW));
        let idle = quinn::IdleTimeout::try_from(limits.idle_timeout()).map_err(|_| ServerError::IdleTimeout(limits.idle_timeout()))?;
        transport.max_idle_timeout(Some(idle));
        udp::discover_mtu(&mut transport, config.udp.max_payload);
        let mut server_config = quinn::ServerConfig::with_crypto(crypto);
        server_config.transport_config(Arc::new(transport));
        // Attempts waiting for the accept loop (which decides each in
        // microseconds): bounded well under quinn's 65,536, and with 0-RTT
        // off nothing but the Initial itself is buffered for one.
        server_config.max_incoming(16 << 10).incoming_buffer_size(64 << 10).incoming_buffer_size_total(16 << 20);
        let workers = config.workers.clamp(1, workers::MAX_WORKERS);
        let sockets = workers::bind(config.listen, &config.udp, workers)?;
        let local_addr = sockets[0].local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        // Initials from sockets that ignore their Retries are dropped before quinn (`initial_filter`).
        let blocked = Arc::new(Blocked::default());

        let audit = match &config.audit_log {
            Some(path) => Audit::open(path, &config.audit_key_salt).map_err(|source| ServerError::Audit { path: path.clone(), source })?,
            None => Audit::disabled(),
        };
        let stop = CancellationToken::new();
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
            blocked: blocked.clone(),
            endpoints: std::sync::OnceLock::new(),
            worker_connections: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            tracker: TaskTracker::new(),
            stop: stop.clone(),
            feed: config.feed.clone().map(|f| {
                let source = crate::ops::snapshots::source(&engine_for_feed, &f, &config.delta_log);
                let feed = crate::ops::feed::Feed::spawn(engine_for_feed.clone(), f, source, stop.clone());
                crate::ops::snapshots::spawn_watch(engine_for_feed.clone(), feed.clone(), config.delta_log.clone(), stop.clone());
                feed
            }),
        });
        let metrics_addr = match config.metrics_listen {
            Some(addr) => {
                let weak = Arc::downgrade(&shared);
                let ready: metrics::ReadyCheck =
                    Arc::new(move || weak.upgrade().map_or_else(|| Err("shutting down".to_string()), |s| s.ready()));
                // The feed and the store watcher run already: stopped with the start.
                Some(metrics::serve(addr, ready, stop.clone()).inspect_err(|_| stop.cancel())?)
            }
            None => None,
        };
        metrics::engine(&shared.engine.pin());
        // Stops the workers already started if a later one fails.
        let finished = CancellationToken::new();
        let guard = finished.clone().drop_guard();
        let mut endpoints = Vec::with_capacity(workers);
        let mut go = Vec::with_capacity(workers);
        for (index, socket) in sockets.into_iter().enumerate() {
            let worker = Worker { index, workers, server_config: server_config.clone(), max_payload: config.udp.max_payload };
            let (endpoint, start) = worker
                .spawn(local_addr, socket, blocked.clone(), shared.clone(), stop.clone(), finished.clone())
                .inspect_err(|_| stop.cancel())?;
            endpoints.push(endpoint);
            go.push(start);
        }
        // Every worker's accept loop counts the connections of all of them.
        let _ = shared.endpoints.set(endpoints.clone());
        for start in go {
            let _ = start.send(());
        }
        guard.disarm();
        tracing::info!(%local_addr, workers, steering = config.udp.steering.name(), generation = shared.engine.pin().id(), "eligd listening");
        Ok(Server { endpoints, shared, stop, finished, local_addr, metrics_addr })
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
        for e in &self.endpoints {
            e.set_server_config(None);
        }
        self.shared.tracker.close();
        let grace = self.shared.limits.shutdown_grace();
        if tokio::time::timeout(grace, self.shared.tracker.wait()).await.is_err() {
            tracing::warn!(?grace, "requests still in flight after the grace period; closing anyway");
        }
        for e in &self.endpoints {
            e.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
        }
        let idle = futures::future::join_all(self.endpoints.iter().map(|e| e.wait_idle()));
        let _ = tokio::time::timeout(Duration::from_secs(5), idle).await;
        self.shared.audit.close();
        tracing::info!("shut down");
    }
}

async fn accept_loop(endpoint: Endpoint, worker: usize, shared: Arc<Shared>, stop: CancellationToken) {
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
        let decided = shared.admission().decide(peer, incoming.remote_address_validated(), shared.open_connections(), Instant::now());
        match decided {
            Decision::Accept(admitted) => {
                shared.handshake(Handshake::Accepted);
                shared.tracker.spawn(connection(incoming, admitted, worker, shared.clone(), stop.clone()));
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

async fn connection(incoming: Incoming, admitted: Admitted, worker: usize, shared: Arc<Shared>, stop: CancellationToken) {
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
    shared.worker_connections[worker].fetch_add(1, Ordering::Relaxed);
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
        streams.spawn(async move { super::stream::request(shared2, role, peer, worker, send, recv).await });
    };
    // Requests in flight finish before the connection closes (the
    // connection task is tracked by the server's shutdown).
    streams.close();
    streams.wait().await;
    if stopped {
        conn.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
    }
    shared.connections_active.fetch_sub(1, Ordering::Relaxed);
    shared.worker_connections[worker].fetch_sub(1, Ordering::Relaxed);
    metrics::connection_closed();
}
