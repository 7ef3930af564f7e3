//! Payloads the server reports with: bulk summaries, delta
//! acknowledgements, swap results, the operator's status and usage reports.
//! The server fills them; clients read them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Payload of the `Summary` frame that ends a bulk inquiry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkSummary {
    /// Items answered (`NumberOfProcessingResult`).
    pub items: u64,
    /// Items with `ProcessingResultStatus` 1 (`NumberOfNormalProcessing`).
    pub normal: u64,
    /// Items with `ProcessingResultStatus` 2 (`NumberOfError`).
    pub errors: u64,
    /// The snapshot generation every item was answered from.
    pub generation: u64,
    pub delta_seq: u64,
}

/// Payload of a `Report` frame answering a `Delta` frame: the batch is
/// durable (logged and fsynced) and visible to every request that starts
/// after this acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaAck {
    pub seq: u64,
    /// The sequence was already applied: acknowledged again without effect.
    pub duplicate: bool,
    /// Change lines in the batch.
    pub rows: u64,
    /// The snapshot generation the batch was applied over.
    pub generation: u64,
}

/// Payload of a `Report` frame answering a `DeltaCheck` frame: the batch
/// would be taken by this node as it stands; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaCheck {
    pub seq: u64,
    /// The node already applied this batch (the same bytes).
    pub duplicate: bool,
    pub rows: u64,
    /// The node's delta seq it was checked against.
    pub node_seq: u64,
    pub generation: u64,
}

/// Payload of a `Report` frame answering a `Swap` frame: the new snapshot
/// is live (`Engine::swap` fills it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapResult {
    pub previous_generation: u64,
    pub generation: u64,
    pub snapshot_dir: String,
    /// Deltas the new snapshot already includes (its manifest).
    pub snapshot_delta_seq: u64,
    /// Newer batches carried over onto the new snapshot.
    pub replayed: u64,
    /// The delta sequence visible once the swap was done.
    pub delta_seq: u64,
    pub verify_ms: u64,
    pub prefault_ms: u64,
    pub total_ms: u64,
    /// Recording the live snapshot or compacting the delta log failed (the
    /// swap stands; the log keeps older batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_error: Option<String>,
}

/// What the server knows about itself, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `YYYYMMDDHHmmss`, Japan time.
    pub started: u64,
    pub uptime_secs: u64,
    pub connections_active: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    pub limits: Option<Limits>,
    /// Resident set size of the process (`VmRSS` of `/proc/self/status`), where available.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// Connection attempts and what came of them (`admission`).
    #[serde(default)]
    pub handshakes: HandshakeCounts,
    /// The delta feed, when this node follows the stream (`[feed]`).
    #[serde(default)]
    pub feed: Option<FeedStatus>,
    /// The worker that answered this status (its index).
    #[serde(default)]
    pub worker: Option<u32>,
    /// Connections open on each worker, by index: one entry a worker (`workers`).
    #[serde(default)]
    pub worker_connections: Vec<u64>,
}

/// Connection attempts since start, by what the server did with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeCounts {
    /// Admitted: a handshake was started.
    pub accepted: u64,
    /// Answered with a stateless Retry (address validation).
    pub retried: u64,
    /// Dropped unanswered: Initials from a socket that ignored its Retries
    /// (most of them dropped on receive, before quinn).
    #[serde(default)]
    pub ignored: u64,
    /// Refused (connection or per-address limit).
    pub refused: u64,
    /// Admitted, but not done within `handshake_timeout_secs`.
    pub timed_out: u64,
}

/// Size of the deltas applied over the live snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayInfo {
    /// Change lines applied (upserts and deletes).
    pub changed_rows: u64,
    /// Persons with a record version written by deltas.
    pub persons: u64,
    /// Bytes of those versions.
    pub bytes: u64,
}

/// The `status` report: the server's own facts around the engine's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub server_version: String,
    pub protocol: String,
    /// The live snapshot and its deltas, as the engine reports them.
    #[serde(flatten)]
    pub engine: EngineStatus,
    #[serde(flatten)]
    pub runtime: RuntimeInfo,
}

/// What the engine reports about the live generation (`Engine::status`
/// fills it; the fields sit at the top level of [`StatusReport`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// The live snapshot generation.
    pub generation: u64,
    /// The last delta batch visible to lookups.
    pub delta_seq: u64,
    pub persons: u64,
    /// When the snapshot was compiled, `YYYYMMDDHHmmss`.
    pub snapshot_created: u64,
    pub snapshot_dir: String,
    /// The last delta batch the snapshot itself includes (its manifest).
    #[serde(default)]
    pub snapshot_delta_seq: u64,
    /// Rows per table in the snapshot (its manifest).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Deltas applied over the snapshot.
    #[serde(default)]
    pub overlay: OverlayInfo,
    #[serde(default)]
    pub delta_log: Option<String>,
    /// Bytes of the snapshot files mapped into memory.
    pub mapped_bytes: u64,
    /// Whether those pages are locked in memory (the kernel cannot page
    /// them out); false when eligd lacks `CAP_IPC_LOCK` or `RLIMIT_MEMLOCK`.
    #[serde(default)]
    pub memory_locked: bool,
    #[serde(default)]
    pub residency: Residency,
}

/// How a snapshot is held (`residency` in `eligd.toml` and in `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Pre-faulted (and locked with `lock_memory`); a snapshot that does
    /// not fit is refused.
    #[default]
    Resident,
    /// Paged in as lookups touch it: serves a snapshot larger than memory.
    OnDemand,
}

impl Residency {
    pub fn name(self) -> &'static str {
        match self {
            Residency::Resident => "resident",
            Residency::OnDemand => "on_demand",
        }
    }
}

/// Where the feed is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedState {
    /// Reaching NATS or the stream (retried every second).
    #[default]
    Connecting,
    /// Reading the stream and applying batches in order.
    Following,
    /// Refused a batch (a gap or an invalid batch): answering at the last
    /// good seq until the batch is replaced in the stream.
    Stopped,
}

/// The feed in `elig status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    pub state: FeedState,
    pub stream: String,
    pub consumer: String,
    /// The last batch applied on this node (its delta log).
    pub applied_seq: u64,
    /// The newest batch in the stream, as last seen.
    pub stream_seq: u64,
    /// Batches in the stream not yet applied here.
    pub lag_batches: u64,
    /// Seconds since the oldest unapplied batch entered the stream (0 when caught up).
    pub lag_secs: u64,
    /// Batches applied from the stream since the node started.
    pub applied_from_stream: u64,
    /// Why the feed stopped, or the last connection error.
    pub alarm: Option<String>,
    /// The node has replayed the stream up to its end once since it started:
    /// until then it refuses lookups `EN01` (not ready).
    #[serde(default)]
    pub joined: bool,
    /// What `GET /ready` answers: joined, following, and at most
    /// `ready_max_lag` batches behind the stream.
    #[serde(default)]
    pub ready: bool,
    /// Where the live snapshot came from: `local <dir>`, or `store <bucket>
    /// generation N`.
    #[serde(default)]
    pub snapshot_source: String,
    /// The snapshot store as this node follows it.
    #[serde(default)]
    pub store: StoreStatus,
}

/// The snapshot store bucket, as a following node last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub bucket: String,
    /// The node swaps to a newer generation on its own (else it waits for `elig swap`).
    pub auto_swap: bool,
    /// The newest complete generation in the bucket, when last listed.
    pub newest_generation: Option<u64>,
    /// Downloaded and verified, waiting for `elig swap` (`auto_swap = false`).
    pub pending: Option<String>,
    /// Generations this node refused (corrupt, or their swap was refused):
    /// not downloaded again.
    pub refused: Vec<u64>,
    /// The last failure reading the bucket or of a refused generation.
    pub alarm: Option<String>,
}

/// The limits a server enforces (`eligd.toml` `[limits]`), as `status` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_bulk_items: u64,
    pub max_frame_bytes: usize,
    pub max_streams_per_connection: u32,
    pub max_connections: usize,
    pub idle_timeout_secs: u64,
    pub frame_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// Payload of one `Delta` frame (a delta batch).
    #[serde(default = "default_max_delta_bytes")]
    pub max_delta_bytes: usize,
    /// Longest a handshake may take before it is dropped (`admission`).
    #[serde(default = "default_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// Handshakes in progress from which an unvalidated address is sent a
    /// stateless Retry (0: always).
    #[serde(default = "default_retry_after_handshakes")]
    pub retry_after_handshakes: usize,
    /// Handshakes in progress per source IP (unvalidated and validated apart).
    #[serde(default = "default_max_handshakes_per_address")]
    pub max_handshakes_per_address: usize,
    /// Longest a query with a `MinimumDeltaSequence` newer than the node's
    /// seq waits for the batch before it is refused `EN02`.
    #[serde(default = "default_min_seq_wait_ms")]
    pub min_seq_wait_ms: u64,
}

fn default_min_seq_wait_ms() -> u64 {
    Limits::default().min_seq_wait_ms
}

fn default_handshake_timeout_secs() -> u64 {
    Limits::default().handshake_timeout_secs
}

fn default_retry_after_handshakes() -> usize {
    Limits::default().retry_after_handshakes
}

fn default_max_handshakes_per_address() -> usize {
    Limits::default().max_handshakes_per_address
}

fn default_max_delta_bytes() -> usize {
    DEFAULT_MAX_DELTA_BYTES
}

/// Default limit on one delta batch.
pub const DEFAULT_MAX_DELTA_BYTES: usize = 16 << 20;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk_items: 10_000,
            max_frame_bytes: crate::frame::DEFAULT_MAX_FRAME,
            // 64 made a client with 64 requests in flight wait for stream credit,
            // which returns only after the peer acknowledged a finished stream
            // (server/BENCH.md: 650 µs mean wait, 28 ms maxima).
            max_streams_per_connection: 256,
            max_connections: 1024,
            idle_timeout_secs: 30,
            frame_timeout_secs: 30,
            shutdown_grace_secs: 30,
            max_delta_bytes: DEFAULT_MAX_DELTA_BYTES,
            // A TLS 1.3 handshake is two round trips; 5 s covers slow links
            // and retransmissions, and bounds what a flood of Initials holds.
            handshake_timeout_secs: 5,
            retry_after_handshakes: 64,
            max_handshakes_per_address: 8,
            // A batch reaches every following node in milliseconds; a node
            // further behind is better asked again elsewhere.
            min_seq_wait_ms: 2000,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn frame_timeout(&self) -> Duration {
        Duration::from_secs(self.frame_timeout_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    pub fn min_seq_wait(&self) -> Duration {
        Duration::from_millis(self.min_seq_wait_ms)
    }
}

/// Header line of the usage CSV export.
pub const CSV_HEADER: &str = "institution_code,lookup_kind,requests,normal,errors,certificate_checks";

/// One row of the usage report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub institution_code: String,
    pub lookup_kind: String,
    pub requests: u64,
    pub normal: u64,
    pub errors: u64,
    pub certificate_checks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Counting started (server start), `YYYYMMDDHHmmss`.
    pub since: u64,
    /// When the report was made, `YYYYMMDDHHmmss`.
    pub at: u64,
    /// Sorted by institution code, then lookup kind.
    pub rows: Vec<UsageRow>,
}

impl UsageReport {
    /// The CSV export: [`CSV_HEADER`] then one line per row. Institution
    /// codes and kinds never hold commas or quotes.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.institution_code, r.lookup_kind, r.requests, r.normal, r.errors, r.certificate_checks
            ));
        }
        out
    }

    /// The row for one institution and kind.
    pub fn row(&self, institution: &str, kind: &str) -> Option<&UsageRow> {
        self.rows.iter().find(|r| r.institution_code == institution && r.lookup_kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's part sits at the top level, in the order the report
    /// always had: clients that read the JSON see the same bytes.
    #[test]
    fn a_status_report_keeps_its_json_layout() {
        let report = StatusReport {
            server_version: "0.1.0".into(),
            protocol: "elig/1".into(),
            engine: EngineStatus {
                generation: 7,
                delta_seq: 3,
                persons: 60,
                snapshot_created: 20261122000000,
                snapshot_dir: "/s".into(),
                snapshot_delta_seq: 1,
                counts: [("persons".to_string(), 60)].into(),
                overlay: OverlayInfo { changed_rows: 2, persons: 1, bytes: 300 },
                delta_log: Some("/d.log".into()),
                mapped_bytes: 4096,
                memory_locked: true,
                residency: Residency::OnDemand,
            },
            runtime: RuntimeInfo { started: 20261122090000, uptime_secs: 5, ..Default::default() },
        };
        let text = serde_json::to_string(&report).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"server_version":"0.1.0","protocol":"elig/1","generation":7,"delta_seq":3,"persons":60,"#,
                r#""snapshot_created":20261122000000,"snapshot_dir":"/s","snapshot_delta_seq":1,"counts":{"persons":60},"#,
                r#""overlay":{"changed_rows":2,"persons":1,"bytes":300},"delta_log":"/d.log","mapped_bytes":4096,"#,
                r#""memory_locked":true,"residency":"on_demand","started":20261122090000,"uptime_secs":5,"#,
                r#""connections_active":0,"connections_total":0,"requests_total":0,"limits":null,"rss_bytes":null,"#,
                r#""handshakes":{"accepted":0,"retried":0,"ignored":0,"refused":0,"timed_out":0},"feed":null,"#,
                r#""worker":null,"worker_connections":[]}"#
            )
        );
        assert_eq!(serde_json::from_str::<StatusReport>(&text).unwrap(), report);
    }
}
