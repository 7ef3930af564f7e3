//! Where a following node applies the stream's batches: one thread of its
//! own at the lowest scheduling priority, so that on a busy machine the
//! answers go first and the feed takes the CPU they leave (a 1,000-row batch
//! is about 17 ms of CPU; on two cores it doubled a lookup's p99 when it ran
//! at the answers' priority). Batches are applied one at a time, in order,
//! through [`Engine::apply`] as `elig delta` applies them.

use std::sync::Arc;

use elig_engine::engine::{DeltaError, Engine};
use elig_wire::report::DeltaAck;
use tokio::sync::oneshot;

type Job = (bytes::Bytes, oneshot::Sender<Result<DeltaAck, DeltaError>>);

/// The applier thread of one feed; it ends when this is dropped.
#[derive(Debug)]
pub struct Applier {
    jobs: crossbeam::channel::Sender<Job>,
}

impl Applier {
    pub fn start(engine: Arc<Engine>) -> Applier {
        let (jobs, queue) = crossbeam::channel::unbounded::<Job>();
        let spawned = std::thread::Builder::new().name("elig-feed-apply".into()).spawn(move || {
            if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
                tracing::warn!(error = ?e, "the feed's batches apply at the answers' priority (lowering it was refused)");
            }
            for (batch, done) in queue {
                let _ = done.send(engine.apply(&batch));
            }
        });
        if let Err(e) = spawned {
            // Without the thread every apply reports it; the feed retries.
            tracing::error!(error = %e, "cannot start the feed's apply thread");
        }
        Applier { jobs }
    }

    /// Apply one batch on the applier thread. `Err` only when that thread is gone.
    pub async fn apply(&self, batch: bytes::Bytes) -> Result<Result<DeltaAck, DeltaError>, String> {
        let (done, result) = oneshot::channel();
        // The feed waits for each batch, so the queue never holds more than one.
        self.jobs.send((batch, done)).map_err(|_| "the feed's apply thread is gone".to_string())?;
        result.await.map_err(|_| "the feed's apply thread stopped while applying".to_string())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value of this process's thread named `name`, from /proc.
    fn nice_of(name: &str) -> Option<i64> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = task.ok()?.path();
            if std::fs::read_to_string(dir.join("comm")).ok()?.trim() == name {
                let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                // Fields after the parenthesised name: state is field 3, nice field 19.
                let rest = stat.rsplit_once(") ")?.1;
                return rest.split(' ').nth(16)?.parse().ok();
            }
        }
        None
    }

    #[tokio::test]
    async fn batches_apply_in_order_on_a_thread_below_the_answers() {
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../loader/tests/golden/v2");
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::open_with_log(&golden, &dir.path().join("deltas.log")).unwrap();
        let applier = Applier::start(Arc::new(engine));
        let batch = |seq: u64| bytes::Bytes::from(format!("{{\"seq\": {seq}, \"created\": \"20261122101500\"}}\n"));
        let first = applier.apply(batch(1)).await.unwrap().unwrap();
        assert_eq!((first.seq, first.duplicate), (1, false));
        assert!(matches!(applier.apply(batch(3)).await.unwrap(), Err(DeltaError::Gap { expected: 2, got: 3 })));
        assert!(applier.apply(batch(1)).await.unwrap().unwrap().duplicate);
        let nice = nice_of("elig-feed-apply").expect("the apply thread is running");
        assert!(nice > 0, "the apply thread runs below the answers' priority: nice {nice}");
    }
}
