//! The live engine: one [`Generation`] behind an `ArcSwap`. A request loads
//! it once and answers everything (a whole bulk inquiry included) from that
//! generation and the delta sequence visible when it started, so a swap or a
//! batch never mixes states in one answer.
//!
//! Writers (delta batches, swaps) take one mutex, so batches apply in
//! sequence order and a swap sees a settled overlay to carry over.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam::channel::{unbounded, Sender};
use elig_wire::report::{DeltaAck, DeltaCheck, EngineStatus, SwapResult};
use serde::Serialize;

use crate::delta::{parse_batch, Batch, BatchError, Digest};
use crate::delta_log::{DeltaLog, LogError};
use crate::lookup::View;
use crate::overlay::{ApplyError, Overlay};
use crate::residency::{self, DoesNotFit, MemoryLimit, Residency};
use crate::snapshot::{Snapshot, SnapshotError, SnapshotFiles};

/// A snapshot plus the deltas applied on top of it.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Snapshot,
    pub overlay: Overlay,
}

impl Generation {
    /// The view a request answers from: pins the visible delta sequence.
    pub fn view(&self) -> View<'_> {
        View { snapshot: &self.snapshot, overlay: Some(&self.overlay), delta_seq: self.overlay.visible() }
    }

    pub fn id(&self) -> u64 {
        self.snapshot.generation()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    #[error("batch refused: {0}")]
    Parse(#[from] BatchError),
    #[error("batch {got} refused: sequence gap, expected {expected}")]
    Gap { expected: u64, got: u64 },
    /// A different batch under a seq already applied (`contract.md` section 2).
    #[error(
        "batch {seq} refused: a different batch was applied under seq {seq} (applied digest {applied}, this batch's digest {offered}); send new changes under a new seq"
    )]
    Conflict { seq: u64, applied: Digest, offered: Digest },
    #[error("batch {seq} refused: {source}")]
    Apply { seq: u64, source: ApplyError },
    #[error("batch {seq} not acknowledged: delta log: {source}")]
    Log { seq: u64, source: LogError },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwapError {
    #[error("swap refused, the live snapshot keeps serving: {0}")]
    Snapshot(#[from] SnapshotError),
    #[error("swap refused, the live snapshot keeps serving: generation {offered} is not newer than the live generation {live}")]
    NotNewer { live: u64, offered: u64 },
    #[error(
        "swap refused, the live snapshot keeps serving: it includes deltas up to {snapshot_seq}, older than the live snapshot's {live_seq}"
    )]
    DeltasMissing { snapshot_seq: u64, live_seq: u64 },
    #[error("swap refused, the live snapshot keeps serving: delta batch {seq} no longer applies on the new snapshot: {source}")]
    Replay { seq: u64, source: ApplyError },
    #[error("swap refused, the live snapshot keeps serving: {0}")]
    DoesNotFit(DoesNotFit),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("delta log: batch {seq} is invalid: {source}")]
    Replay { seq: u64, source: ReplayError },
    #[error("delta log: expected batch {expected} after the snapshot, found {found}")]
    Gap { expected: u64, found: u64 },
    #[error("{dir}: {source}")]
    DoesNotFit { dir: std::path::PathBuf, source: DoesNotFit },
}

/// Why a logged batch does not replay onto the snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// What replaying the log on start did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Replay {
    pub replayed: usize,
    pub skipped: usize,
    pub dropped_bytes: u64,
}

#[derive(Debug)]
struct Writer {
    log: Option<DeltaLog>,
    /// Batches applied over the live snapshot, carried over by a swap.
    batches: Vec<Arc<Batch>>,
    /// The change digest of every batch applied (or found in the delta log),
    /// by seq: a repeat is acknowledged only if it is the same batch.
    digests: BTreeMap<u64, Digest>,
}

/// How an engine holds its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Lock a resident live snapshot in memory ([`Snapshot::lock_in_memory`]).
    /// A swap unlocks the outgoing one first, so one snapshot is locked at a
    /// time (both stay mapped until the old one's last request is done).
    pub lock_memory: bool,
    /// Resident (pre-faulted, refused when it does not fit) or on demand.
    pub residency: Residency,
    /// What a resident snapshot must fit in.
    pub memory_limit: MemoryLimit,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { lock_memory: true, residency: Residency::Resident, memory_limit: MemoryLimit::Available }
    }
}

impl EngineOptions {
    /// Open and verify a snapshot if it fits beside `live_bytes` of the live
    /// one: checked before the verify, which reads every byte.
    fn load(&self, dir: &Path, live_bytes: u64) -> Result<Result<Snapshot, SnapshotError>, DoesNotFit> {
        let files = match SnapshotFiles::open(dir) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        residency::check(self.residency, self.memory_limit, files.mapped_bytes(), live_bytes)?;
        Ok(files.verify())
    }

    /// Pre-fault a snapshot that is to be resident.
    fn prefault(&self, snapshot: &Snapshot) {
        if self.residency == Residency::Resident {
            snapshot.prefault();
        }
    }
}

#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Generation>,
    writer: Mutex<Writer>,
    retired: Sender<Arc<Generation>>,
    /// Outside the writer lock, so status never waits for a swap.
    log_path: Option<std::path::PathBuf>,
    options: EngineOptions,
    /// Notified whenever a batch or a swap is published: a request that
    /// waits for a delta seq (`MinimumDeltaSequence`) listens here.
    advanced: event_listener::Event,
}

/// Old generations are dropped (unmapped) here once their last request is
/// done, so no request thread pays for the unmap.
fn spawn_reaper() -> Sender<Arc<Generation>> {
    let (tx, rx) = unbounded::<Arc<Generation>>();
    std::thread::Builder::new()
        .name("generation-reaper".into())
        .spawn(move || {
            let mut waiting: Vec<Arc<Generation>> = Vec::new();
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(g) => waiting.push(g),
                    Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam::channel::RecvTimeoutError::Disconnected) if waiting.is_empty() => return,
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
                waiting.retain(|g| Arc::strong_count(g) > 1);
            }
        })
        .expect("spawning a thread at start-up");
    tx
}

impl Engine {
    /// Open, verify and pre-fault a snapshot directory, without a delta log.
    pub fn open(dir: &Path) -> Result<Engine, SnapshotError> {
        let snapshot = Snapshot::load(dir)?;
        snapshot.prefault();
        Ok(Engine::from_snapshot(snapshot))
    }

    /// An engine over a verified snapshot, with the default options (the
    /// snapshot locked in memory; pre-faulting is the caller's).
    pub fn from_snapshot(snapshot: Snapshot) -> Engine {
        Engine::with_options(snapshot, EngineOptions::default())
    }

    pub fn with_options(snapshot: Snapshot, options: EngineOptions) -> Engine {
        if options.lock_memory && options.residency == Residency::Resident {
            snapshot.lock_in_memory();
        }
        let overlay = Overlay::new(&snapshot);
        Engine {
            current: ArcSwap::from_pointee(Generation { snapshot, overlay }),
            writer: Mutex::new(Writer { log: None, batches: Vec::new(), digests: BTreeMap::new() }),
            retired: spawn_reaper(),
            log_path: None,
            options,
            advanced: event_listener::Event::new(),
        }
    }

    /// Open a snapshot and its delta log, replaying the batches the snapshot
    /// does not include.
    pub fn open_with_log(dir: &Path, log: &Path) -> Result<(Engine, Replay), OpenError> {
        Engine::open_with_log_using(dir, log, EngineOptions::default())
    }

    pub fn open_with_log_using(dir: &Path, log: &Path, options: EngineOptions) -> Result<(Engine, Replay), OpenError> {
        // The log's lock first: a second server on the same log is refused
        // before it verifies and pins a whole snapshot.
        let opened = DeltaLog::open(log)?;
        let snapshot = options.load(dir, 0).map_err(|source| OpenError::DoesNotFit { dir: dir.to_path_buf(), source })??;
        options.prefault(&snapshot);
        let mut engine = Engine::with_options(snapshot, options);
        engine.log_path = Some(log.to_path_buf());
        let mut replay = Replay { dropped_bytes: opened.dropped_bytes, ..Default::default() };
        {
            let mut w = engine.lock();
            let gen = engine.pin();
            w.digests.extend(&opened.folded);
            for rec in opened.records {
                let visible = gen.overlay.visible();
                if let Some(d) = Digest::of_batch(&rec.payload) {
                    w.digests.insert(rec.seq, d);
                }
                if rec.seq <= visible {
                    replay.skipped += 1;
                    continue;
                }
                if rec.seq != visible + 1 {
                    return Err(OpenError::Gap { expected: visible + 1, found: rec.seq });
                }
                let replay_error = |e: ReplayError| OpenError::Replay { seq: rec.seq, source: e };
                let batch = parse_batch(&rec.payload).map_err(|e| replay_error(e.into()))?;
                gen.overlay.prepare(&gen.snapshot, &batch).map_err(|e| replay_error(e.into()))?.publish();
                w.batches.push(Arc::new(batch));
                replay.replayed += 1;
            }
            w.log = Some(opened.log);
        }
        Ok((engine, replay))
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A writer that panicked left no half-published batch (publish is
        // the last step), so the state behind a poisoned lock is usable.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live generation; hold the `Arc` for the whole request.
    pub fn pin(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Validate, log durably, then publish one batch.
    pub fn apply(&self, text: &[u8]) -> Result<DeltaAck, DeltaError> {
        let batch = parse_batch(text)?;
        let mut w = self.lock();
        let gen = self.pin();
        let visible = gen.overlay.visible();
        let rows = batch.changes.len() as u64;
        if batch.seq <= visible {
            // A seq the snapshot folded in without this node's log knows no
            // digest: it can only be taken for the repeat it claims to be.
            if let Some(&applied) = w.digests.get(&batch.seq).filter(|d| **d != batch.digest) {
                return Err(DeltaError::Conflict { seq: batch.seq, applied, offered: batch.digest });
            }
            return Ok(DeltaAck { seq: batch.seq, duplicate: true, rows, generation: gen.id() });
        }
        if batch.seq != visible + 1 {
            return Err(DeltaError::Gap { expected: visible + 1, got: batch.seq });
        }
        let prepared = gen.overlay.prepare(&gen.snapshot, &batch).map_err(|source| DeltaError::Apply { seq: batch.seq, source })?;
        if let Some(log) = w.log.as_mut() {
            log.append(batch.seq, text).map_err(|source| DeltaError::Log { seq: batch.seq, source })?;
        }
        prepared.publish();
        self.advanced.notify(usize::MAX);
        w.digests.insert(batch.seq, batch.digest);
        w.batches.push(Arc::new(batch));
        Ok(DeltaAck { seq: visible + 1, duplicate: false, rows, generation: gen.id() })
    }

    /// A listener woken at the next batch or swap published. Listen first,
    /// then look at the seq, then wait: nothing published in between is missed.
    pub fn listen_advanced(&self) -> event_listener::EventListener {
        self.advanced.listen()
    }

    /// Block until the live state shows delta batch `seq`, or `deadline`
    /// passes; whether it does.
    pub fn wait_for_seq(&self, seq: u64, deadline: Instant) -> bool {
        use event_listener::Listener;
        loop {
            let advanced = self.listen_advanced();
            if self.pin().view().delta_seq >= seq {
                return true;
            }
            if advanced.wait_deadline(deadline).is_none() {
                return self.pin().view().delta_seq >= seq;
            }
        }
    }

    /// A dry run of [`Engine::apply`]: the batch is validated against the
    /// live state exactly as `apply` would validate it, and nothing is
    /// logged or published.
    pub fn check(&self, text: &[u8]) -> Result<DeltaCheck, DeltaError> {
        let batch = parse_batch(text)?;
        // The writer lock: the state checked is one no batch is changing.
        let w = self.lock();
        let gen = self.pin();
        let visible = gen.overlay.visible();
        let rows = batch.changes.len() as u64;
        let checked = |duplicate| DeltaCheck { seq: batch.seq, duplicate, rows, node_seq: visible, generation: gen.id() };
        if batch.seq <= visible {
            if let Some(&applied) = w.digests.get(&batch.seq).filter(|d| **d != batch.digest) {
                return Err(DeltaError::Conflict { seq: batch.seq, applied, offered: batch.digest });
            }
            return Ok(checked(true));
        }
        if batch.seq != visible + 1 {
            return Err(DeltaError::Gap { expected: visible + 1, got: batch.seq });
        }
        drop(gen.overlay.prepare(&gen.snapshot, &batch).map_err(|source| DeltaError::Apply { seq: batch.seq, source })?);
        Ok(checked(false))
    }

    /// Open, verify and pre-fault a new snapshot off the request path, carry
    /// newer deltas over, then publish it in one store.
    pub fn swap(&self, dir: &Path) -> Result<SwapResult, SwapError> {
        let started = Instant::now();
        let mut w = self.lock();
        let live = self.pin();
        let snapshot = self.options.load(dir, live.snapshot.mapped_bytes()).map_err(SwapError::DoesNotFit)??;
        let verify_ms = started.elapsed().as_millis() as u64;
        if snapshot.generation() <= live.id() {
            return Err(SwapError::NotNewer { live: live.id(), offered: snapshot.generation() });
        }
        let t = Instant::now();
        self.options.prefault(&snapshot);
        let prefault_ms = t.elapsed().as_millis() as u64;
        let base = snapshot.manifest().delta_seq;
        let live_base = live.snapshot.manifest().delta_seq;
        if base < live_base {
            // Batches live_base and older were folded away; we cannot rebuild them.
            return Err(SwapError::DeltasMissing { snapshot_seq: base, live_seq: live_base });
        }
        let overlay = Overlay::new(&snapshot);
        let mut replayed = 0;
        for b in w.batches.iter().filter(|b| b.seq > base) {
            overlay.prepare(&snapshot, b).map_err(|source| SwapError::Replay { seq: b.seq, source })?.publish();
            replayed += 1;
        }
        let generation = snapshot.generation();
        let delta_seq = overlay.visible();
        if self.options.lock_memory && self.options.residency == Residency::Resident {
            // The outgoing snapshot may be paged out while its last requests
            // finish; the lock limit then needs to cover one snapshot only.
            live.snapshot.unlock_memory();
            snapshot.lock_in_memory();
        }
        let old = self.current.swap(Arc::new(Generation { snapshot, overlay }));
        self.advanced.notify(usize::MAX);
        let _ = self.retired.send(old);
        w.batches.retain(|b| b.seq > base);
        // Record the live snapshot before compacting: a restart must never
        // find a log compacted past the snapshot it would open.
        let compact_error = match w.log.as_mut() {
            Some(log) => match crate::delta_log::record_live(log.path(), &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
            {
                Ok(()) => log.compact(base).err().map(|e| e.to_string()),
                Err(e) => Some(format!("live snapshot record not written, log left uncompacted: {e}")),
            },
            None => None,
        };
        if let Some(e) = &compact_error {
            tracing::warn!(error = %e, "delta log compaction failed after swap");
        }
        Ok(SwapResult {
            previous_generation: live.id(),
            generation,
            snapshot_dir: dir.display().to_string(),
            snapshot_delta_seq: base,
            replayed,
            delta_seq,
            verify_ms,
            prefault_ms,
            total_ms: started.elapsed().as_millis() as u64,
            compact_error,
        })
    }

    /// Whether batches are logged durably (the engine was opened with a log).
    pub fn has_delta_log(&self) -> bool {
        self.log_path.is_some()
    }

    /// The live generation as `status` reports it. Only pins the
    /// generation (no lock): never waits for a swap or a batch.
    pub fn status(&self) -> EngineStatus {
        let gen = self.pin();
        let m = gen.snapshot.manifest();
        EngineStatus {
            generation: gen.id(),
            delta_seq: gen.overlay.visible(),
            persons: m.persons,
            snapshot_created: m.created,
            snapshot_dir: gen.snapshot.dir().display().to_string(),
            snapshot_delta_seq: m.delta_seq,
            counts: m.counts.iter().cloned().collect(),
            overlay: gen.overlay.stats(),
            delta_log: self.log_path.as_ref().map(|p| p.display().to_string()),
            mapped_bytes: gen.snapshot.mapped_bytes(),
            memory_locked: gen.snapshot.memory_locked(),
            residency: self.options.residency,
        }
    }
}
