//! Server configuration: a TOML file, overridden by command-line flags,
//! validated once into a [`Config`] whose fields are all usable as they are.
//!
//! ```toml
//! listen = "127.0.0.1:4433"          # UDP address of the QUIC endpoint
//! snapshot_dir = "/srv/elig/snapshot" # required: a compiled snapshot directory (with [feed], may be absent: the node joins from the store)
//! metrics_listen = "127.0.0.1:9464"   # optional: Prometheus endpoint (GET /metrics)
//! audit_log = "/var/log/elig/audit.jsonl" # optional: audit JSON Lines, appended
//! audit_key_salt = "..."              # optional: mixed into the audit key hash
//! delta_log = "/srv/elig/deltas.log"  # optional: default `deltas.log` beside snapshot_dir
//! workers = 2                         # QUIC workers, one endpoint each (default: the cores available; quic::workers)
//! worker_threads = 1                  # tokio threads beside them (feed, store, metrics); 1 = current-thread runtime
//! lock_memory = true                  # mlock the live snapshot (needs CAP_IPC_LOCK or RLIMIT_MEMLOCK of its size)
//! residency = "resident"              # or "on_demand": serve a snapshot larger than memory from the page cache
//! memory_limit_bytes = 17179869184    # optional: what resident snapshots must fit in (default: MemAvailable less 512 MiB)
//!
//! [tls]                               # all three required
//! ca = "certs/ca.pem"                 # CA that issues client certificates
//! cert = "certs/server.pem"
//! key = "certs/server.key"
//!
//! [udp]                               # all optional, defaults shown
//! recv_buffer_bytes = 4194304         # SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max)
//! send_buffer_bytes = 4194304         # SO_SNDBUF asked for (net.core.wmem_max)
//! max_payload = 1452                  # largest datagram MTU discovery may reach (1200..65527)
//! steering = "connection_id"          # or "hash": how packets find their worker (quic::workers)
//!
//! [limits]                            # all optional, defaults shown
//! max_bulk_items = 10000
//! max_frame_bytes = 65536
//! max_streams_per_connection = 256   # requests in flight on one connection
//! max_connections = 1024
//! idle_timeout_secs = 30               # connection idle time (clients send keep-alives)
//! frame_timeout_secs = 30              # longest wait for the next frame of a request
//! shutdown_grace_secs = 30
//! max_delta_bytes = 16777216           # one delta batch (a Delta frame)
//! min_seq_wait_ms = 2000               # a query's MinimumDeltaSequence: longest wait before EN02
//! ```
//!
//! The delta log is append-only and outlives snapshots: by default it is
//! `deltas.log` in the directory that holds `snapshot_dir` (beside it, not
//! in it: swaps bring new snapshot directories). Its directory must exist.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("missing setting '{key}': set it in the configuration file or pass {flag}")]
    Missing { key: &'static str, flag: &'static str },
    #[error("setting '{key}' = '{value}': {reason}")]
    Invalid { key: &'static str, value: String, reason: String },
}

/// Declares a table of settings once: each field is a TOML key (serde), a
/// command-line flag (clap, its doc comment the help) and an optional value,
/// and `overridden_by` merges a flag table over a file table field by field.
/// Ranges and defaults are checked in one place, [`RawConfig::validate`].
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty, )*
            $( ; tables { $( $(#[$tmeta:meta])* $table:ident : $tty:ty, )* } )?
            $( ; file_only { $( $(#[$ometa:meta])* $only:ident : $oty:ty, )* } )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: Option<$ty>, )*
            $($( $(#[$tmeta])* #[serde(default)] #[command(flatten)] pub $table: $tty, )*)?
            $($( $(#[$ometa])* #[arg(skip)] pub $only: Option<$oty>, )*)?
        }

        impl $name {
            /// `self` with every setting that `over` gives replaced.
            pub fn overridden_by(self, over: $name) -> $name {
                $name {
                    $( $field: over.$field.or(self.$field), )*
                    $($( $table: self.$table.overridden_by(over.$table), )*)?
                    $($( $only: over.$only.or(self.$only), )*)?
                }
            }
        }
    };
}

settings! {
    /// Settings as read from the file or flags: everything optional.
    pub struct RawConfig {
        /// UDP address to listen on (default 127.0.0.1:4433).
        #[arg(long)]
        listen: String,
        /// Snapshot directory to serve (required: here or snapshot_dir in --config).
        #[arg(long = "snapshot")]
        snapshot_dir: PathBuf,
        /// Address of the Prometheus endpoint, GET /metrics (default: off).
        #[arg(long = "metrics")]
        metrics_listen: String,
        /// Audit log file, JSON Lines, appended (default: off).
        #[arg(long)]
        audit_log: PathBuf,
        /// Mixed into the audit key hash (file only: a flag would show in `ps`).
        #[arg(skip)]
        audit_key_salt: String,
        /// Append-only delta log (default: deltas.log beside the snapshot directory).
        #[arg(long)]
        delta_log: PathBuf,
        /// Answer as if it were always this time, YYYYMMDDHHmmss, for tests and replays (default: off, the real clock).
        #[arg(long)]
        fixed_clock: String,
        /// Tokio worker threads of the runtime beside the QUIC workers: the feed, the store, metrics (default 1).
        #[arg(long)]
        worker_threads: u64,
        /// QUIC workers, each a thread with its own endpoint on the listen address, 1..64 (default: the cores available).
        #[arg(long)]
        workers: u64,
        /// Lock each live snapshot in memory, true or false (default true).
        #[arg(long)]
        lock_memory: bool,
        /// resident (pre-faulted, refused when it does not fit) or on_demand (paged in as lookups touch it) (default resident).
        #[arg(long)]
        residency: String,
        /// Bytes a resident snapshot must fit in, the live one included during a swap (default: MemAvailable less 512 MiB).
        #[arg(long)]
        memory_limit_bytes: u64,
        ; tables {
            tls: RawTls,
            udp: RawUdp,
            limits: RawLimits,
        }
        ; file_only {
            /// `[feed]`: follow the delta stream on NATS JetStream.
            feed: crate::ops::feed::FeedConfig,
        }
    }
}

settings! {
    /// `[udp]`.
    pub struct RawUdp {
        /// UDP receive buffer to ask the kernel for, in bytes (default 4 MiB).
        #[arg(long = "udp-recv-buffer")]
        recv_buffer_bytes: u64,
        /// UDP send buffer to ask the kernel for, in bytes (default 4 MiB).
        #[arg(long = "udp-send-buffer")]
        send_buffer_bytes: u64,
        /// Largest UDP payload MTU discovery may reach, 1200..65527 (default 1452).
        #[arg(long = "max-udp-payload")]
        max_payload: u64,
        /// How packets find their worker: connection_id (default; connections survive a new client address) or hash.
        #[arg(long = "udp-steering")]
        steering: String,
    }
}

settings! {
    /// `[tls]`.
    pub struct RawTls {
        /// CA certificate (PEM) that issues client certificates (required: here or tls.ca).
        #[arg(long)]
        ca: PathBuf,
        /// Server certificate chain (PEM) (required: here or tls.cert).
        #[arg(long)]
        cert: PathBuf,
        /// Server private key (PEM) (required: here or tls.key).
        #[arg(long)]
        key: PathBuf,
    }
}

settings! {
    /// `[limits]`.
    pub struct RawLimits {
        /// Items in one bulk inquiry, 1..1,000,000 (default 10000).
        #[arg(long)]
        max_bulk_items: u64,
        /// Payload bytes of one frame from a client, 1 KiB..16 MiB (default 65536).
        #[arg(long)]
        max_frame_bytes: u64,
        /// Concurrent requests (streams) on one connection, 1..10,000 (default 256).
        #[arg(long = "max-streams")]
        max_streams_per_connection: u64,
        /// Connections, handshakes in progress included; more are refused (default 1024).
        #[arg(long)]
        max_connections: u64,
        /// Seconds without traffic before a connection is dropped, 10..3600 (default 30; clients send keep-alives).
        #[arg(long = "idle-timeout")]
        idle_timeout_secs: u64,
        /// Seconds to wait for the next frame of a request (default 30).
        #[arg(long = "frame-timeout")]
        frame_timeout_secs: u64,
        /// Seconds to let requests in flight finish on SIGTERM (default 30).
        #[arg(long = "shutdown-grace")]
        shutdown_grace_secs: u64,
        /// Largest delta batch accepted from an operator, in bytes, 1 KiB..1 GiB (default 16777216).
        #[arg(long)]
        max_delta_bytes: u64,
        /// Seconds a QUIC handshake may take before it is dropped, 1..60 (default 5).
        #[arg(long = "handshake-timeout")]
        handshake_timeout_secs: u64,
        /// Handshakes in progress from which a client whose address is not yet validated gets a stateless Retry; 0: always (default 64).
        #[arg(long)]
        retry_after_handshakes: u64,
        /// Handshakes in progress per source IP address (default 8).
        #[arg(long)]
        max_handshakes_per_address: u64,
        /// Milliseconds a query with a MinimumDeltaSequence newer than this node waits for it before EN02, 0..60000 (default 2000).
        #[arg(long = "min-seq-wait-ms")]
        min_seq_wait_ms: u64,
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub snapshot_dir: PathBuf,
    pub tls: TlsPaths,
    pub metrics_listen: Option<SocketAddr>,
    pub audit_log: Option<PathBuf>,
    pub audit_key_salt: String,
    /// The append-only delta log (see the module docs for the default).
    pub delta_log: PathBuf,
    pub fixed_clock: Option<u64>,
    /// Threads of the tokio runtime beside the QUIC workers (the feed, the
    /// snapshot store, metrics, signals).
    pub worker_threads: usize,
    /// QUIC workers ([`crate::quic::workers`]): each a thread with its own
    /// current-thread runtime and endpoint; requests are served there (swaps,
    /// deltas and status on each worker's blocking pool).
    pub workers: usize,
    /// Lock each live snapshot in memory (`EngineOptions::lock_memory`).
    pub lock_memory: bool,
    /// `EngineOptions::residency` and `memory_limit`.
    pub residency: elig_engine::residency::Residency,
    pub memory_limit: elig_engine::residency::MemoryLimit,
    pub udp: Udp,
    pub limits: Limits,
    /// Follow the delta stream (`[feed]`), or take batches by `elig delta` only.
    pub feed: Option<crate::ops::feed::FeedConfig>,
}

use crate::quic::udp::Steering;
pub use crate::quic::udp::{Udp, DEFAULT_UDP_BUFFER_BYTES};
use crate::quic::workers::{default_workers, MAX_WORKERS};

#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub use elig_wire::report::{Limits, DEFAULT_MAX_DELTA_BYTES};

/// File name of the default delta log, beside the snapshot directory.
pub const DEFAULT_DELTA_LOG: &str = "deltas.log";

/// The default delta log of a snapshot directory: `deltas.log` beside it.
pub fn default_delta_log(snapshot_dir: &Path) -> PathBuf {
    let parent = snapshot_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(DEFAULT_DELTA_LOG)
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4433";

/// One worker: a lookup's hops (endpoint, connection driver, request task)
/// then stay on one thread instead of waking another. On the 2-core bench
/// machine: concurrency 1 p50 85 µs (128 with two workers), concurrency 64
/// p99 1.96 ms (2.64) at 9% less throughput, bulk 96,500 items/s (45,800)
/// (server/BENCH.md, 2026-11-22 after the fixes). Raise it for many connections on a
/// machine with cores to spare: quinn drives each connection on one task.
///
/// `eligd` runs one worker as tokio's current-thread runtime, whose tasks
/// run in the order they were woken: the connection driver, woken by the
/// first answer written, runs after the request tasks already ready and
/// sends their answers together (full datagrams, segmentation offload). The
/// multi-thread scheduler's LIFO slot ran it right after every answer, one
/// datagram and one `sendmsg` each: concurrency 64 went from 54,500 to
/// 96,100 lookups/s, p99 1.59 to 0.91 ms (server/BENCH.md, third session).
pub const DEFAULT_WORKER_THREADS: usize = 1;

impl RawConfig {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        RawConfig::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })
    }

    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Check every setting; the first problem found is the error.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = address("listen", &listen_text)?;
        let snapshot_dir = self.snapshot_dir.ok_or(ConfigError::Missing { key: "snapshot_dir", flag: "--snapshot" })?;
        // A node that follows the snapshot store joins from it without one.
        let joins = self.feed.as_ref().is_some_and(|f| f.follow_store);
        if !joins && !snapshot_dir.join(elig_engine::manifest::MANIFEST_FILE).is_file() {
            return Err(ConfigError::Invalid {
                key: "snapshot_dir",
                value: snapshot_dir.display().to_string(),
                reason: "not a snapshot directory (no manifest.json); compile one with `elig-loader compile`, or follow the snapshot store ([feed])".into(),
            });
        }
        let tls = TlsPaths {
            ca: file("tls.ca", self.tls.ca, "--ca")?,
            cert: file("tls.cert", self.tls.cert, "--cert")?,
            key: file("tls.key", self.tls.key, "--key")?,
        };
        let metrics_listen = self.metrics_listen.as_deref().map(|m| address("metrics_listen", m)).transpose()?;
        if let Some(dir) = self.audit_log.as_ref().and_then(|p| p.parent()).filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(ConfigError::Invalid {
                    key: "audit_log",
                    value: self.audit_log.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    reason: "its directory does not exist".into(),
                });
            }
        }
        let delta_log = delta_log(self.delta_log, &snapshot_dir)?;
        let fixed_clock = match self.fixed_clock {
            None => None,
            Some(t) => Some(elig_engine::ids::timestamp("fixed_clock", &t).map_err(|e| ConfigError::Invalid {
                key: "fixed_clock",
                value: t.clone(),
                reason: e.reason,
            })?),
        };
        let worker_threads = ranged("worker_threads", self.worker_threads, DEFAULT_WORKER_THREADS as u64, 1, 1024)? as usize;
        use elig_engine::residency::{MemoryLimit, Residency};
        let residency = match self.residency.as_deref() {
            None | Some("resident") => Residency::Resident,
            Some("on_demand") => Residency::OnDemand,
            Some(other) => {
                return Err(ConfigError::Invalid { key: "residency", value: other.into(), reason: "must be resident or on_demand".into() })
            }
        };
        let memory_limit = match self.memory_limit_bytes {
            None => MemoryLimit::Available,
            Some(n) => MemoryLimit::Bytes(ranged("memory_limit_bytes", Some(n), n, 1 << 20, u64::MAX)?),
        };
        let buffer = |key, v| ranged(key, v, DEFAULT_UDP_BUFFER_BYTES as u64, 64 << 10, 1 << 30).map(|b| b as usize);
        let udp = Udp {
            recv_buffer_bytes: buffer("udp.recv_buffer_bytes", self.udp.recv_buffer_bytes)?,
            send_buffer_bytes: buffer("udp.send_buffer_bytes", self.udp.send_buffer_bytes)?,
            max_payload: max_udp_payload("udp.max_payload", self.udp.max_payload)?,
            steering: match self.udp.steering.as_deref() {
                None => Steering::default(),
                Some(s) => Steering::parse(s).ok_or_else(|| ConfigError::Invalid {
                    key: "udp.steering",
                    value: s.into(),
                    reason: "must be connection_id or hash".into(),
                })?,
            },
        };
        let workers = ranged("workers", self.workers, default_workers() as u64, 1, MAX_WORKERS as u64)? as usize;
        let d = Limits::default();
        let l = self.limits;
        let limits = Limits {
            max_bulk_items: ranged("limits.max_bulk_items", l.max_bulk_items, d.max_bulk_items, 1, 1_000_000)?,
            max_frame_bytes: ranged("limits.max_frame_bytes", l.max_frame_bytes, d.max_frame_bytes as u64, 1024, 16 << 20)? as usize,
            max_streams_per_connection: ranged(
                "limits.max_streams_per_connection",
                l.max_streams_per_connection,
                d.max_streams_per_connection.into(),
                1,
                10_000,
            )? as u32,
            max_connections: ranged("limits.max_connections", l.max_connections, d.max_connections as u64, 1, 1_000_000)? as usize,
            idle_timeout_secs: ranged("limits.idle_timeout_secs", l.idle_timeout_secs, d.idle_timeout_secs, 10, 3600)?,
            frame_timeout_secs: ranged("limits.frame_timeout_secs", l.frame_timeout_secs, d.frame_timeout_secs, 1, 3600)?,
            shutdown_grace_secs: ranged("limits.shutdown_grace_secs", l.shutdown_grace_secs, d.shutdown_grace_secs, 0, 3600)?,
            max_delta_bytes: ranged("limits.max_delta_bytes", l.max_delta_bytes, d.max_delta_bytes as u64, 1024, 1 << 30)? as usize,
            handshake_timeout_secs: ranged("limits.handshake_timeout_secs", l.handshake_timeout_secs, d.handshake_timeout_secs, 1, 60)?,
            retry_after_handshakes: ranged(
                "limits.retry_after_handshakes",
                l.retry_after_handshakes,
                d.retry_after_handshakes as u64,
                0,
                1_000_000,
            )? as usize,
            max_handshakes_per_address: ranged(
                "limits.max_handshakes_per_address",
                l.max_handshakes_per_address,
                d.max_handshakes_per_address as u64,
                1,
                1_000_000,
            )? as usize,
            min_seq_wait_ms: ranged("limits.min_seq_wait_ms", l.min_seq_wait_ms, d.min_seq_wait_ms, 0, 60_000)?,
        };
        Ok(Config {
            listen,
            snapshot_dir,
            tls,
            metrics_listen,
            audit_log: self.audit_log,
            audit_key_salt: self.audit_key_salt.unwrap_or_default(),
            delta_log,
            fixed_clock,
            worker_threads,
            workers,
            lock_memory: self.lock_memory.unwrap_or(elig_engine::engine::EngineOptions::default().lock_memory),
            residency,
            memory_limit,
            udp,
            limits,
            feed: feed(self.feed)?,
        })
    }
}

/// `[feed]`: at least one server, a consumer name NATS accepts.
fn feed(given: Option<crate::ops::feed::FeedConfig>) -> Result<Option<crate::ops::feed::FeedConfig>, ConfigError> {
    let Some(f) = given else { return Ok(None) };
    if f.names.servers.is_empty() {
        return Err(ConfigError::Invalid { key: "feed.servers", value: "[]".into(), reason: "name at least one NATS server".into() });
    }
    let bad = |c: char| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\');
    if f.consumer.is_empty() || f.consumer.chars().any(bad) {
        return Err(ConfigError::Invalid {
            key: "feed.consumer",
            value: f.consumer.clone(),
            reason: "one name per node, without spaces, '.', '*', '>' or slashes".into(),
        });
    }
    Ok(Some(f))
}

/// The delta log: given or beside the snapshot directory; its directory
/// must exist, it must not be a directory, nor inside the snapshot.
fn delta_log(given: Option<PathBuf>, snapshot_dir: &Path) -> Result<PathBuf, ConfigError> {
    let path = given.unwrap_or_else(|| default_delta_log(snapshot_dir));
    let invalid = |reason: &str| ConfigError::Invalid { key: "delta_log", value: path.display().to_string(), reason: reason.into() };
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(invalid("not a file path"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(invalid("its directory does not exist"));
    }
    if path.is_dir() {
        return Err(invalid("is a directory; name the log file"));
    }
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if abs(dir).starts_with(abs(snapshot_dir)) {
        return Err(invalid("is inside snapshot_dir; the log outlives snapshots (swaps bring new directories), put it beside them"));
    }
    Ok(path)
}

fn address(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: "not a socket address like 127.0.0.1:4433 or [::1]:4433".into(),
    })
}

fn file(key: &'static str, path: Option<PathBuf>, flag: &'static str) -> Result<PathBuf, ConfigError> {
    let path = path.ok_or(ConfigError::Missing { key, flag })?;
    if !path.is_file() {
        return Err(ConfigError::Invalid { key, value: path.display().to_string(), reason: "no such file".into() });
    }
    Ok(path)
}

/// The largest UDP payload setting: the client's check (`elig_client::udp`).
fn max_udp_payload(key: &'static str, v: Option<u64>) -> Result<u16, ConfigError> {
    elig_client::udp::checked_max_udp_payload(v).map_err(|reason| ConfigError::Invalid {
        key,
        value: v.unwrap_or_default().to_string(),
        reason,
    })
}

fn ranged(key: &'static str, v: Option<u64>, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::Invalid { key, value: v.to_string(), reason: format!("must be between {min} and {max}") });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir(p.join("snap")).unwrap();
        std::fs::write(p.join("snap/manifest.json"), "{}").unwrap();
        for f in ["ca.pem", "server.pem", "server.key"] {
            std::fs::write(p.join(f), "x").unwrap();
        }
        let d = p.display();
        let toml = format!(
            "snapshot_dir = \"{d}/snap\"\n[tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\n[limits]\nmax_bulk_items = 500\n"
        );
        (dir, toml)
    }

    #[test]
    fn a_file_with_overrides_validates() {
        let (_dir, toml) = setup();
        let raw = RawConfig::from_toml(&toml).unwrap();
        let over = RawConfig {
            listen: Some("[::1]:0".into()),
            limits: RawLimits { idle_timeout_secs: Some(15), ..Default::default() },
            ..Default::default()
        };
        let c = raw.overridden_by(over).validate().unwrap();
        assert_eq!(c.listen, "[::1]:0".parse::<SocketAddr>().unwrap());
        assert_eq!(c.limits.max_bulk_items, 500);
        assert_eq!(c.limits.idle_timeout_secs, 15);
        assert_eq!(c.limits.max_frame_bytes, 65536);
        assert_eq!(c.limits.max_streams_per_connection, 256);
        assert_eq!(c.worker_threads, DEFAULT_WORKER_THREADS);
        let over = RawConfig { worker_threads: Some(2), ..Default::default() };
        let c = RawConfig::from_toml(&format!("worker_threads = 4\n{toml}")).unwrap().overridden_by(over).validate().unwrap();
        assert_eq!(c.worker_threads, 2);
        assert!(c.lock_memory, "snapshots are locked in memory unless told otherwise");
        let c = RawConfig::from_toml(&format!("lock_memory = false\n{toml}")).unwrap().validate().unwrap();
        assert!(!c.lock_memory);
        let over = RawConfig { lock_memory: Some(true), ..Default::default() };
        let c = RawConfig::from_toml(&format!("lock_memory = false\n{toml}")).unwrap().overridden_by(over).validate().unwrap();
        assert!(c.lock_memory, "the flag overrides the file");
        let bad = RawConfig::from_toml(&format!("lock_memory = \"yes\"\n{toml}")).unwrap_err().to_string();
        assert!(bad.contains("lock_memory"), "{bad}");
        assert_eq!(
            c.udp,
            Udp { recv_buffer_bytes: 4 << 20, send_buffer_bytes: 4 << 20, max_payload: 1452, steering: Steering::ConnectionId }
        );
        let over = RawConfig { udp: RawUdp { send_buffer_bytes: Some(1 << 20), ..Default::default() }, ..Default::default() };
        let c = RawConfig::from_toml(&format!("{toml}[udp]\nrecv_buffer_bytes = 8388608\nmax_payload = 9000\n"))
            .unwrap()
            .overridden_by(over)
            .validate()
            .unwrap();
        assert_eq!(
            c.udp,
            Udp { recv_buffer_bytes: 8 << 20, send_buffer_bytes: 1 << 20, max_payload: 9000, steering: Steering::ConnectionId }
        );
        assert_eq!(c.metrics_listen, None);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let (_dir, toml) = setup();
        let check = |extra: &str, want: &str| {
            let text = format!("{extra}\n{toml}");
            let err = match RawConfig::from_toml(&text) {
                Ok(raw) => raw.validate().unwrap_err().to_string(),
                Err(e) => e,
            };
            assert!(err.contains(want), "{extra}: {err}");
        };
        check("listen = \"localhost\"", "setting 'listen' = 'localhost': not a socket address");
        check("metrics_listen = \"9464\"", "setting 'metrics_listen' = '9464'");
        check("colour = \"red\"", "unknown field `colour`");
        check("fixed_clock = \"2026\"", "setting 'fixed_clock' = '2026': must be a timestamp");
        let text = toml.replace("max_bulk_items = 500", "max_bulk_items = 0");
        let err = RawConfig::from_toml(&text).unwrap().validate().unwrap_err();
        assert_eq!(err.to_string(), "setting 'limits.max_bulk_items' = '0': must be between 1 and 1000000");
        let err = RawConfig::default().validate().unwrap_err();
        assert_eq!(err.to_string(), "missing setting 'snapshot_dir': set it in the configuration file or pass --snapshot");
        let text = toml.replace("server.key", "nope.key");
        let err = RawConfig::from_toml(&text).unwrap().validate().unwrap_err().to_string();
        assert!(err.starts_with("setting 'tls.key' = '") && err.ends_with("nope.key': no such file"), "{err}");
        let text = toml.replace("/snap\"", "/nosnap\"");
        let err = RawConfig::from_toml(&text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("not a snapshot directory"), "{err}");
        check("worker_threads = 0", "setting 'worker_threads' = '0': must be between 1 and 1024");
        check("residency = \"lazy\"", "setting 'residency' = 'lazy': must be resident or on_demand");
        check("memory_limit_bytes = 10", "setting 'memory_limit_bytes' = '10': must be between 1048576 and 18446744073709551615");
        check("worker_threads = 5000", "setting 'worker_threads' = '5000': must be between 1 and 1024");
        check("workers = 0", "setting 'workers' = '0': must be between 1 and 64");
        check("workers = 65", "setting 'workers' = '65': must be between 1 and 64");
        let udp = |extra: &str| RawConfig::from_toml(&format!("{toml}[udp]\n{extra}\n")).unwrap().validate().unwrap_err().to_string();
        assert_eq!(udp("recv_buffer_bytes = 1000"), "setting 'udp.recv_buffer_bytes' = '1000': must be between 65536 and 1073741824");
        assert_eq!(udp("max_payload = 1199"), "setting 'udp.max_payload' = '1199': must be between 1200 and 65527");
        assert_eq!(udp("max_payload = 65528"), "setting 'udp.max_payload' = '65528': must be between 1200 and 65527");
        assert_eq!(udp("send_buffer_bytes = 0"), "setting 'udp.send_buffer_bytes' = '0': must be between 65536 and 1073741824");
        assert_eq!(udp("steering = \"random\""), "setting 'udp.steering' = 'random': must be connection_id or hash");
        let c = RawConfig::from_toml(&format!("workers = 3\n{toml}[udp]\nsteering = \"hash\"\n")).unwrap().validate().unwrap();
        assert_eq!((c.workers, c.udp.steering), (3, Steering::Hash));
        let c = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
        assert_eq!(c.workers, std::thread::available_parallelism().map_or(1, |n| n.get()).min(64), "one worker per core by default");
        assert!(RawConfig::from_toml(&format!("{toml}[udp]\nbuffer = 1\n")).unwrap_err().contains("unknown field `buffer`"));
        let text = toml.replace("max_bulk_items = 500", "max_delta_bytes = 10");
        let err = RawConfig::from_toml(&text).unwrap().validate().unwrap_err();
        assert_eq!(err.to_string(), "setting 'limits.max_delta_bytes' = '10': must be between 1024 and 1073741824");
    }

    #[test]
    fn the_delta_log_defaults_beside_the_snapshot_and_is_checked() {
        let (dir, toml) = setup();
        let c = RawConfig::from_toml(&toml).unwrap().validate().unwrap();
        assert_eq!(c.delta_log, dir.path().join("deltas.log"));
        assert_eq!(c.limits.max_delta_bytes, 16 << 20);
        assert_eq!(default_delta_log(Path::new("snap")), Path::new("./deltas.log"));
        let d = dir.path().display();
        for (value, want) in [
            (format!("{d}/nodir/deltas.log"), "its directory does not exist"),
            (format!("{d}/snap"), "is a directory"),
            (format!("{d}/snap/deltas.log"), "inside snapshot_dir"),
        ] {
            let text = format!("delta_log = \"{value}\"\n{toml}");
            let err = RawConfig::from_toml(&text).unwrap().validate().unwrap_err().to_string();
            assert!(err.starts_with(&format!("setting 'delta_log' = '{value}': ")) && err.contains(want), "{value}: {err}");
        }
        let text = format!("delta_log = \"{d}/state.log\"\n{toml}");
        assert_eq!(RawConfig::from_toml(&text).unwrap().validate().unwrap().delta_log, dir.path().join("state.log"));
    }
}
