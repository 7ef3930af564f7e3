//! Where a following node applies the stream's batches: off the answers'
//! threads, one batch at a time, in order, through [`Engine::apply`] as
//! `elig delta` applies them.
//!
//! Two threads, two lanes. A batch that arrives while the node is caught
//! up applies on the background thread, below the answers' priority, so
//! that on a busy machine the answers go first (a 1,000-row batch is about
//! 17 ms of CPU; on two cores it doubled a lookup's p99 at the answers'
//! priority). A batch the node is late with (more wait behind it, or it has
//! been in the stream longer than [`LATE`]) applies on the catch-up thread,
//! at the answers' priority: a node that is saturated with answers must not
//! fall ever further behind the tier (at the lowest priority alone it did:
//! 60 s behind on a two-core CI machine under load). Two threads because an
//! unprivileged thread may lower its priority but never raise it again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use elig_engine::engine::{DeltaError, Engine};
use elig_wire::report::DeltaAck;
use tokio::sync::oneshot;

type Job = (bytes::Bytes, oneshot::Sender<Result<DeltaAck, DeltaError>>);

/// A batch in the stream longer than this is late: it applies at the
/// answers' priority (the tier's publish-to-visible target is 200 ms).
pub const LATE: Duration = Duration::from_millis(100);

/// The background lane's priority in the crate's cross-platform scale
/// (0..=99): nice 10 on Linux (nice = trunc(39 * (1 - p / 99)) - 20), a
/// tenth of an answer thread's CPU weight, so a batch is slowed under load
/// but not starved.
const BACKGROUND_PRIORITY: u8 = 22;

/// Which thread applies a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The node is caught up: below the answers' priority.
    Background,
    /// The node is late: at the answers' priority.
    CatchUp,
}

impl Lane {
    /// The lane of a batch with `pending` more behind it in the stream,
    /// that has been in the stream for `age`.
    pub fn of(pending: u64, age: Duration) -> Lane {
        if pending > 0 || age > LATE {
            Lane::CatchUp
        } else {
            Lane::Background
        }
    }

    /// At most 15 bytes: Linux keeps no more of a thread's name.
    fn thread_name(self) -> &'static str {
        match self {
            Lane::Background => "elig-apply-bg",
            Lane::CatchUp => "elig-apply-late",
        }
    }

    /// The metric's `lane` label.
    fn label(self) -> &'static str {
        match self {
            Lane::Background => "background",
            Lane::CatchUp => "catch_up",
        }
    }
}

/// The applier threads of one feed; they end when this is dropped.
#[derive(Debug)]
pub struct Applier {
    background: crossbeam::channel::Sender<Job>,
    catch_up: crossbeam::channel::Sender<Job>,
    /// Batches applied on each lane: background, catch-up.
    applied: [AtomicU64; 2],
}

impl Applier {
    pub fn start(engine: Arc<Engine>) -> Applier {
        Applier { background: spawn(Lane::Background, engine.clone()), catch_up: spawn(Lane::CatchUp, engine), applied: Default::default() }
    }

    /// Apply one batch on `lane`'s thread. `Err` only when that thread is gone.
    pub async fn apply(&self, batch: bytes::Bytes, lane: Lane) -> Result<Result<DeltaAck, DeltaError>, String> {
        let (done, result) = oneshot::channel();
        let jobs = match lane {
            Lane::Background => &self.background,
            Lane::CatchUp => &self.catch_up,
        };
        // The feed waits for each batch, so one batch at a time is applied.
        jobs.send((batch, done)).map_err(|_| format!("the feed's apply thread {} is gone", lane.thread_name()))?;
        let r = result.await.map_err(|_| format!("the feed's apply thread {} stopped while applying", lane.thread_name()))?;
        self.applied[lane as usize].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("elig_feed_batches_applied_total", "lane" => lane.label()).increment(1);
        Ok(r)
    }

    /// How many batches `lane` has applied (refused ones included).
    pub fn applied_on(&self, lane: Lane) -> u64 {
        self.applied[lane as usize].load(Ordering::Relaxed)
    }
}

fn spawn(lane: Lane, engine: Arc<Engine>) -> crossbeam::channel::Sender<Job> {
    let (jobs, queue) = crossbeam::channel::unbounded::<Job>();
    let spawned = std::thread::Builder::new().name(lane.thread_name().into()).spawn(move || {
        if lane == Lane::Background {
            let lowered = thread_priority::ThreadPriorityValue::try_from(BACKGROUND_PRIORITY).map_err(|e| format!("{e:?}")).and_then(|p| {
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Crossplatform(p))
                    .map_err(|e| format!("{e:?}"))
            });
            if let Err(e) = lowered {
                tracing::warn!(error = %e, "the feed's background batches apply at the answers' priority (lowering it was refused)");
            }
        }
        for (batch, done) in queue {
            let _ = done.send(engine.apply(&batch));
        }
    });
    if let Err(e) = spawned {
        // Without the thread every apply on its lane reports it; the feed retries.
        tracing::error!(error = %e, lane = lane.thread_name(), "cannot start a feed apply thread");
    }
    jobs
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value in a thread's `stat` line: field 19, the state (field
    /// 3) being the first after the parenthesised name.
    fn nice_in(stat: &str) -> Option<i64> {
        stat.rsplit_once(") ")?.1.split(' ').nth(16)?.parse().ok()
    }

    /// The nice value of this process's thread named `name`, from /proc.
    fn nice_of(name: &str) -> Option<i64> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == name {
                return nice_in(&std::fs::read_to_string(dir.join("stat")).ok()?);
            }
        }
        None
    }

    #[test]
    fn a_batch_is_late_when_more_wait_behind_it_or_it_is_old() {
        assert_eq!(Lane::of(0, Duration::ZERO), Lane::Background);
        assert_eq!(Lane::of(0, LATE), Lane::Background);
        assert_eq!(Lane::of(0, LATE + Duration::from_millis(1)), Lane::CatchUp);
        assert_eq!(Lane::of(1, Duration::ZERO), Lane::CatchUp);
    }

    #[tokio::test]
    async fn batches_apply_in_order_across_both_lanes_the_background_one_below_the_answers() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../loader/tests/golden/v2");
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::open_with_log(&golden, &dir.path().join("deltas.log")).unwrap();
        let engine = Arc::new(engine);
        let applier = Applier::start(engine.clone());
        let batch = |seq: u64| bytes::Bytes::from(format!("{{\"seq\": {seq}, \"created\": \"20261122101500\"}}\n"));
        let first = applier.apply(batch(1), Lane::Background).await.unwrap().unwrap();
        assert_eq!((first.seq, first.duplicate), (1, false));
        let second = applier.apply(batch(2), Lane::CatchUp).await.unwrap().unwrap();
        assert_eq!((second.seq, second.duplicate), (2, false));
        assert!(matches!(applier.apply(batch(4), Lane::Background).await.unwrap(), Err(DeltaError::Gap { expected: 3, got: 4 })));
        assert!(applier.apply(batch(1), Lane::CatchUp).await.unwrap().unwrap().duplicate);
        assert_eq!(engine.pin().view().delta_seq, 2);
        assert_eq!((applier.applied_on(Lane::Background), applier.applied_on(Lane::CatchUp)), (2, 2));
        let background = nice_of("elig-apply-bg").expect("the background thread is running");
        assert_eq!(background, 10, "the background lane runs below the answers");
        let catch_up = nice_of("elig-apply-late").expect("the catch-up thread is running");
        assert_eq!(catch_up, nice_of_this_thread(), "the catch-up lane runs at the answers' priority");
    }

    fn nice_of_this_thread() -> i64 {
        nice_in(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()).unwrap()
    }
}
