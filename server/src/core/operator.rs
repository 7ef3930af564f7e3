//! The operator's requests as jobs the machine hands its driver: the
//! machine checks the role and the payload, the driver runs the job
//! (a delta batch or a swap blocks: fsync, verifying and pre-faulting a
//! snapshot, the engine's writer lock; the QUIC driver runs those on
//! tokio's blocking pool) and hands the result back.

use std::path::Path;

use elig_engine::engine::{DeltaError, Engine, SwapError};
use elig_wire::codes;
use elig_wire::report::{DeltaAck, DeltaCheck, RuntimeInfo, StatusReport, SwapResult, UsageReport};

use super::outcome::Refusal;

/// An operator request, checked and ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Status,
    Usage,
    /// One delta batch, the JSON Lines text as received.
    Delta(Vec<u8>),
    /// A dry run of one delta batch: validated, nothing applied.
    CheckDelta(Vec<u8>),
    /// Swap in the snapshot in this directory (an absolute path, as sent).
    Swap(String),
}

impl Job {
    /// Whether the job blocks (run it off the async workers).
    pub fn blocks(&self) -> bool {
        matches!(self, Job::Delta(_) | Job::CheckDelta(_) | Job::Swap(_))
    }
}

/// What a job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Status(Box<StatusReport>),
    Usage(UsageReport),
    Delta(DeltaAck),
    DeltaCheck(DeltaCheck),
    Swap(SwapResult),
}

/// What the server knows about itself that a job reports.
pub trait Facts {
    fn runtime(&self) -> RuntimeInfo;
    fn usage(&self) -> UsageReport;
}

/// Run a job.
pub fn run(engine: &Engine, job: Job, facts: &dyn Facts) -> Result<Report, Refusal> {
    match job {
        Job::Status => Ok(Report::Status(Box::new(status(engine, facts.runtime())))),
        Job::Usage => Ok(Report::Usage(facts.usage())),
        Job::Delta(batch) => delta(engine, &batch).map(Report::Delta),
        Job::CheckDelta(batch) => check_delta(engine, &batch).map(Report::DeltaCheck),
        Job::Swap(dir) => swap(engine, dir).map(Report::Swap),
    }
}

/// The server's status. [`Engine::status`] only pins the live generation
/// (no lock): it never waits for a swap or a batch in progress.
pub fn status(engine: &Engine, runtime: RuntimeInfo) -> StatusReport {
    StatusReport {
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: String::from_utf8_lossy(elig_wire::ALPN).into_owned(),
        engine: engine.status(),
        runtime,
    }
}

/// Apply one delta batch. Acknowledged only once the engine logged it
/// durably and published it. Blocks (fsync).
pub fn delta(engine: &Engine, batch: &[u8]) -> Result<DeltaAck, Refusal> {
    if !engine.has_delta_log() {
        return Err(Refusal::new(
            codes::DELTA_NOT_DURABLE,
            "this server runs without a delta log, so a batch could not survive a restart; nothing was applied",
        ));
    }
    engine.apply(batch).map_err(|e| delta_refusal(&e))
}

/// A dry run of [`delta`]: refused exactly as `delta` would refuse it
/// (the same codes and messages), nothing applied.
pub fn check_delta(engine: &Engine, batch: &[u8]) -> Result<DeltaCheck, Refusal> {
    engine.check(batch).map_err(|e| delta_refusal(&e))
}

/// The refusal for a batch the engine did not take.
pub fn delta_refusal(e: &DeltaError) -> Refusal {
    let code = match e {
        DeltaError::Gap { .. } => codes::DELTA_GAP,
        DeltaError::Conflict { .. } => codes::DELTA_CONFLICT,
        DeltaError::Log { .. } => codes::DELTA_NOT_DURABLE,
        _ => codes::DELTA_INVALID,
    };
    let message = match e {
        DeltaError::Log { .. } => format!("{e}; nothing was applied"),
        _ => format!("{e}; nothing of it was applied"),
    };
    Refusal::new(code, message)
}

/// Swap in a snapshot. Verifies and pre-faults the whole snapshot before
/// it goes live: blocks for as long as that takes. A refused swap leaves
/// the live snapshot serving.
pub fn swap(engine: &Engine, dir: String) -> Result<SwapResult, Refusal> {
    engine.swap(Path::new(&dir)).map_err(|e| swap_refusal(&e))
}

/// The refusal for a swap the engine did not make.
pub fn swap_refusal(e: &SwapError) -> Refusal {
    use elig_engine::envelope::EnvelopeError;
    use elig_engine::snapshot::SnapshotError;
    let code = match e {
        SwapError::Snapshot(SnapshotError::Version { .. })
        | SwapError::Snapshot(SnapshotError::Envelope { source: EnvelopeError::Version { .. }, .. }) => codes::SWAP_VERSION,
        SwapError::NotNewer { .. } => codes::SWAP_NOT_NEWER,
        SwapError::DeltasMissing { .. } | SwapError::Replay { .. } => codes::SWAP_DELTAS,
        _ => codes::SWAP_INVALID,
    };
    Refusal::new(code, e.to_string())
}
