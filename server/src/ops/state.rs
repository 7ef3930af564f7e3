//! What `eligd` keeps between runs besides the snapshots: the delta log
//! (written by the engine) and the *live snapshot record*, a one-line file
//! `<delta_log>.snapshot` naming the snapshot directory last swapped in.
//!
//! A swap brings a new snapshot directory while the configuration still
//! names the old one. Without the record, a restart after a swap would open
//! the old snapshot: it would serve yesterday's data (or fail on a log that
//! the swap compacted). On start, the recorded snapshot is used when its
//! generation is newer than the configured one; delete the record to go
//! back to the configured snapshot.

use std::path::{Path, PathBuf};

use elig_engine::engine::{Engine, EngineOptions, OpenError, Replay};
use elig_engine::snapshot::read_manifest;

pub use elig_engine::delta_log::{live_record_path, read_live, record_live};

#[derive(Debug, thiserror::Error)]
#[error("opening snapshot {snapshot} with delta log {log}: {source}")]
pub struct StartError {
    pub snapshot: PathBuf,
    pub log: PathBuf,
    pub source: Box<OpenError>,
}

/// An engine opened for serving.
#[derive(Debug)]
pub struct Opened {
    pub engine: Engine,
    /// What replaying the delta log did.
    pub replay: Replay,
    /// The snapshot directory opened.
    pub snapshot_dir: PathBuf,
    /// It came from the live snapshot record, not the configuration.
    pub from_record: bool,
}

/// The snapshot to open: the configured one, or the recorded one when its
/// generation is newer.
pub fn choose_snapshot(configured: &Path, delta_log: &Path) -> (PathBuf, bool) {
    let record = live_record_path(delta_log);
    let recorded = match read_live(delta_log) {
        Ok(Some(p)) => p,
        Ok(None) => return (configured.to_path_buf(), false),
        Err(e) => {
            tracing::warn!(record = %record.display(), error = %e, "cannot read the live snapshot record; opening the configured snapshot");
            return (configured.to_path_buf(), false);
        }
    };
    let generation = |dir: &Path| read_manifest(dir).map(|m| m.generation);
    match (generation(configured), generation(&recorded)) {
        (Ok(c), Ok(r)) if r > c => {
            tracing::info!(
                snapshot = %recorded.display(), generation = r, configured = %configured.display(), configured_generation = c,
                record = %record.display(), "opening the snapshot last swapped in, newer than snapshot_dir"
            );
            (recorded, true)
        }
        (Err(_), Ok(r)) => {
            tracing::warn!(snapshot = %recorded.display(), generation = r, configured = %configured.display(),
                "snapshot_dir does not read; opening the snapshot last swapped in");
            (recorded, true)
        }
        (_, Err(e)) => {
            tracing::warn!(snapshot = %recorded.display(), error = %e, record = %record.display(),
                "the snapshot last swapped in does not read; opening the configured snapshot");
            (configured.to_path_buf(), false)
        }
        (Ok(_), Ok(_)) => (configured.to_path_buf(), false),
    }
}

/// Open the snapshot ([`choose_snapshot`]) and replay the delta log.
/// Blocks: it verifies and pre-faults the whole snapshot.
pub fn open_engine(configured: &Path, delta_log: &Path, options: EngineOptions) -> Result<Opened, StartError> {
    let (snapshot_dir, from_record) = choose_snapshot(configured, delta_log);
    let (engine, replay) = Engine::open_with_log_using(&snapshot_dir, delta_log, options).map_err(|source| StartError {
        snapshot: snapshot_dir.clone(),
        log: delta_log.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(Opened { engine, replay, snapshot_dir, from_record })
}

/// Log what opening did (the replay of the delta log above all).
pub fn log_opened(o: &Opened, delta_log: &Path) {
    let gen = o.engine.pin();
    tracing::info!(
        snapshot = %o.snapshot_dir.display(),
        generation = gen.id(),
        snapshot_delta_seq = gen.snapshot.manifest().delta_seq,
        delta_log = %delta_log.display(),
        replayed = o.replay.replayed,
        skipped = o.replay.skipped,
        dropped_bytes = o.replay.dropped_bytes,
        delta_seq = gen.overlay.visible(),
        "delta log replayed"
    );
    if o.replay.dropped_bytes > 0 {
        tracing::warn!(
            delta_log = %delta_log.display(),
            dropped_bytes = o.replay.dropped_bytes,
            "the delta log ended in a torn or corrupt record (a crash while writing it); it was never acknowledged and was cut off"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_beside_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deltas.log");
        assert_eq!(read_live(&log).unwrap(), None);
        record_live(&log, Path::new("/srv/elig/snap-2")).unwrap();
        assert_eq!(read_live(&log).unwrap(), Some(PathBuf::from("/srv/elig/snap-2")));
        // The recorded snapshot does not exist: the configured one is used.
        assert_eq!(choose_snapshot(Path::new("/nowhere/snap-1"), &log), (PathBuf::from("/nowhere/snap-1"), false));
    }
}
