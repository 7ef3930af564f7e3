//! A following node and the snapshot store (`contract.md` section 2b):
//! joining from the store with no local snapshot, and swapping to each
//! newer generation published to the bucket.
//!
//! Downloads go to `[feed] store_dir`, one directory per generation, and
//! are verified before anything uses them ([`elig_loader::store::download`]).
//! A swap takes the path `elig swap` takes ([`operator::swap`]): requests in
//! flight finish on the old generation, the deltas newer than the snapshot
//! stay applied, and the live snapshot record makes a restart open it. A
//! generation that does not verify, or whose swap is refused, is remembered
//! and not downloaded again; the live generation keeps serving. Once a newer
//! generation is live, older downloads beyond `store_keep_older` are deleted
//! ([`prune`]), with downloads a crash left half done.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use elig_engine::engine::Engine;
use elig_engine::snapshot::read_manifest;
use elig_loader::store::{self, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::core::operator;
use crate::ops::feed::{Feed, FeedConfig};
use crate::ops::metrics::{self, Change};
use crate::ops::state;

/// How a node with `[feed]` and no readable local snapshot got one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub generation: u64,
    pub dir: PathBuf,
}

/// Before opening: when neither `snapshot_dir` nor the live snapshot record
/// names a readable snapshot, download the newest generation from the store
/// (waiting for the bucket and for a first generation, logging every 10 s),
/// and record it as the live snapshot. `None` when a local one is there.
pub async fn join(feed: &FeedConfig, snapshot_dir: &Path, delta_log: &Path, stop: &CancellationToken) -> Option<Joined> {
    let (dir, _) = state::choose_snapshot(snapshot_dir, delta_log);
    if !feed.follow_store || read_manifest(&dir).is_ok() {
        return None;
    }
    let into = feed.store_dir(delta_log);
    let servers = feed.names.servers.join(",");
    tracing::info!(snapshot = %dir.display(), bucket = %feed.bucket, store_dir = %into.display(), "no local snapshot: joining from the snapshot store");
    let mut last_said = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let attempt = async {
            tokio::fs::create_dir_all(&into).await.map_err(|source| StoreError::Io { path: into.clone(), source })?;
            let s = store::open(&servers, &feed.bucket, None).await?;
            store::download(&s, None, &into).await
        };
        let attempt = tokio::select! {
            _ = stop.cancelled() => return None,
            a = attempt => a,
        };
        match attempt {
            Ok(dir) => {
                let generation = read_manifest(&dir).map(|m| m.generation).unwrap_or_default();
                if let Err(e) = state::record_live(delta_log, &dir) {
                    tracing::warn!(error = %e, "cannot write the live snapshot record; a restart downloads again");
                }
                tracing::info!(generation, dir = %dir.display(), "downloaded and verified the newest snapshot from the store");
                return Some(Joined { generation, dir });
            }
            Err(e) => {
                if last_said.elapsed() >= Duration::from_secs(10) {
                    tracing::warn!(error = %e, bucket = %feed.bucket, "joining: no snapshot from the store yet; retrying");
                    last_said = std::time::Instant::now();
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Where the live snapshot came from, for the status.
pub fn source(engine: &Engine, feed: &FeedConfig, delta_log: &Path) -> String {
    let gen = engine.pin();
    let dir = gen.snapshot.dir();
    let store_dir = feed.store_dir(delta_log);
    let in_store = std::fs::canonicalize(dir).ok().zip(std::fs::canonicalize(&store_dir).ok()).is_some_and(|(d, s)| d.starts_with(s));
    if in_store {
        format!("store {} generation {}", feed.bucket, gen.id())
    } else {
        format!("local {}", dir.display())
    }
}

/// Follow the bucket until `stop`: list it every `store_poll_ms`, and
/// download, verify and (with `auto_swap`) swap to a newer generation.
pub fn spawn_watch(engine: Arc<Engine>, feed: Arc<Feed>, delta_log: PathBuf, stop: CancellationToken) {
    if !feed.config().follow_store {
        return;
    }
    tokio::spawn(async move {
        let mut watch = Watch { engine, feed, delta_log, store: None, refused: BTreeSet::new(), refusal: None, pending: None };
        let poll = Duration::from_millis(watch.feed.config().store_poll_ms.max(50));
        let mut failures = 0u32;
        loop {
            // After a failure (the bucket unreachable, an object missing), the
            // next look waits longer, up to 5 minutes: a generation that keeps
            // failing is not downloaded again and again.
            let wait = (poll * 2u32.saturating_pow(failures.min(12))).min(Duration::from_secs(300));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            // A failure to read the bucket is reported until a look succeeds;
            // the last refused generation until a newer one is taken.
            let looked = tokio::select! {
                _ = stop.cancelled() => return,
                l = watch.look() => l,
            };
            let alarm = match looked {
                Ok(()) => {
                    failures = 0;
                    watch.refusal.clone()
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(alarm = %e, failures, "snapshot store");
                    Some(e)
                }
            };
            watch.feed.update(|s| s.store.alarm = alarm);
        }
    });
}

struct Watch {
    engine: Arc<Engine>,
    feed: Arc<Feed>,
    delta_log: PathBuf,
    store: Option<Store>,
    /// Generations refused here: never downloaded again.
    refused: BTreeSet<u64>,
    /// Why the last of them was refused.
    refusal: Option<String>,
    /// Downloaded, waiting for `elig swap`.
    pending: Option<u64>,
}

impl Watch {
    /// One look at the bucket. `Err` is the alarm to report.
    async fn look(&mut self) -> Result<(), String> {
        let config = self.feed.config().clone();
        let s = match &self.store {
            Some(s) => s.clone(),
            None => {
                let s = store::open(&config.names.servers.join(","), &config.bucket, None).await.map_err(|e| e.to_string())?;
                self.store = Some(s.clone());
                s
            }
        };
        let newest = match store::generations(&s).await {
            Ok(g) => g.last().copied(),
            Err(e) => {
                self.store = None;
                return Err(e.to_string());
            }
        };
        self.feed.update(|st| st.store.newest_generation = newest);
        let live = self.engine.pin().id();
        if self.pending.is_some_and(|p| p <= live) {
            // Swapped in by the operator (`elig swap`).
            self.pending = None;
            self.feed.update(|st| st.store.pending = None);
        }
        self.prune(&config);
        let Some(newest) = newest.filter(|n| *n > live && !self.refused.contains(n)) else { return Ok(()) };
        if self.pending == Some(newest) {
            return Ok(());
        }
        let into = config.store_dir(&self.delta_log);
        tokio::fs::create_dir_all(&into).await.map_err(|e| format!("{}: {e}", into.display()))?;
        let dir = match store::download(&s, Some(newest), &into).await {
            Ok(d) => d,
            Err(e @ StoreError::Corrupt { .. }) => return Err(self.refuse(newest, format!("{e}"))),
            Err(e) => return Err(e.to_string()),
        };
        if !config.auto_swap {
            tracing::info!(generation = newest, dir = %dir.display(), "snapshot downloaded and verified; waiting for elig swap (auto_swap = false)");
            self.pending = Some(newest);
            let shown = dir.display().to_string();
            self.feed.update(|st| st.store.pending = Some(shown));
            return Ok(());
        }
        self.swap(newest, dir).await
    }

    async fn swap(&mut self, generation: u64, dir: PathBuf) -> Result<(), String> {
        let engine = self.engine.clone();
        let shown = dir.display().to_string();
        let result = tokio::task::spawn_blocking(move || operator::swap(&engine, shown)).await.map_err(|e| e.to_string())?;
        metrics::engine(&self.engine.pin());
        match result {
            Ok(r) => {
                metrics::swap(Change::Done);
                tracing::info!(
                    generation = r.generation, previous = r.previous_generation, snapshot = %r.snapshot_dir,
                    replayed = r.replayed, total_ms = r.total_ms, "swapped to the newer snapshot from the store"
                );
                let source = format!("store {} generation {}", self.feed.config().bucket, r.generation);
                self.refusal = None;
                self.feed.update(|st| {
                    st.snapshot_source = source;
                    st.store.pending = None;
                });
                // Pruned at the next look, as after a swap by the operator.
                Ok(())
            }
            Err(refusal) => {
                metrics::swap(Change::Refused);
                Err(self.refuse(generation, format!("swap to generation {generation} refused: {}: {}", refusal.code, refusal.message)))
            }
        }
    }

    /// Delete what `store_dir` no longer needs; a failure is only logged
    /// (the next look tries again).
    fn prune(&self, config: &FeedConfig) {
        let gen = self.engine.pin();
        match prune(&config.store_dir(&self.delta_log), gen.snapshot.dir(), gen.id(), config.store_keep_older) {
            Ok(removed) => {
                for (name, bytes) in removed {
                    tracing::info!(removed = %name, bytes, live = gen.id(), "snapshot store: deleted a download this node no longer needs");
                }
            }
            Err(e) => tracing::warn!(error = %e, "snapshot store: cannot prune the downloaded generations"),
        }
    }

    /// Remember a generation this node will not take; the alarm says so.
    fn refuse(&mut self, generation: u64, why: String) -> String {
        self.refused.insert(generation);
        let refused: Vec<u64> = self.refused.iter().copied().collect();
        self.feed.update(|st| st.store.refused = refused);
        let live = self.engine.pin().id();
        tracing::error!(generation, live, reason = %why, "snapshot from the store refused; the live generation keeps serving");
        let alarm = format!("{why}; generation {live} keeps serving");
        self.refusal = Some(alarm.clone());
        alarm
    }
}

/// Delete from `store_dir` the generation directories older than the live
/// generation `live` beyond the newest `keep_older` of them, and the
/// half-done downloads (`.<generation>.download-<pid>`) of a generation not
/// newer than `live` or of a process that is gone. Never the live snapshot
/// `live_dir`, a newer (pending) generation, or anything else. Returns what
/// was deleted, with its size in bytes. (A generation still pinned by
/// requests in flight keeps its mapped pages after its files are deleted.)
pub fn prune(store_dir: &Path, live_dir: &Path, live: u64, keep_older: usize) -> std::io::Result<Vec<(String, u64)>> {
    let live_dir = std::fs::canonicalize(live_dir).unwrap_or_else(|_| live_dir.to_path_buf());
    let entries = match std::fs::read_dir(store_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut older = Vec::new();
    let mut doomed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !entry.file_type()?.is_dir() || std::fs::canonicalize(&path).is_ok_and(|p| p == live_dir) {
            continue;
        }
        if let Ok(generation) = name.parse::<u64>() {
            if generation < live {
                older.push((generation, name, path));
            }
        } else if let Some((generation, pid)) = half_done(&name) {
            if generation <= live || (pid != std::process::id() && process_gone(pid)) {
                doomed.push((name, path));
            }
        }
    }
    older.sort_by_key(|o| std::cmp::Reverse(o.0));
    doomed.extend(older.into_iter().skip(keep_older).map(|(_, name, path)| (name, path)));
    let mut removed = Vec::new();
    for (name, path) in doomed {
        let bytes = dir_bytes(&path);
        std::fs::remove_dir_all(&path)?;
        removed.push((name, bytes));
    }
    Ok(removed)
}

/// `(generation, pid)` of a download's temporary directory name.
fn half_done(name: &str) -> Option<(u64, u32)> {
    let (generation, pid) = name.strip_prefix('.')?.split_once(".download-")?;
    Some((generation.parse().ok()?, pid.parse().ok()?))
}

/// Whether process `pid` has exited (only where `/proc` says so).
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    }

    #[test]
    fn only_what_no_one_needs_is_pruned() {
        let store = tempfile::tempdir().unwrap();
        for d in [
            "7",
            "8",
            "9",
            "10",
            "11",
            ".9.download-1",
            ".12.download-4294967295",
            &format!(".12.download-{}", std::process::id()),
            "notes",
        ] {
            std::fs::create_dir(store.path().join(d)).unwrap();
            std::fs::write(store.path().join(d).join("f"), b"12345").unwrap();
        }
        std::fs::write(store.path().join("8.txt"), b"a file, not a generation").unwrap();
        // Live: generation 10 in the store; 11 is pending.
        let removed = prune(store.path(), &store.path().join("10"), 10, 1).unwrap();
        let mut gone: Vec<(String, u64)> = removed;
        gone.sort();
        assert_eq!(
            gone,
            vec![(".12.download-4294967295".into(), 5), (".9.download-1".into(), 5), ("7".into(), 5), ("8".into(), 5)],
            "older than the one kept, and downloads no one finishes"
        );
        assert_eq!(
            names(store.path()),
            [format!(".12.download-{}", std::process::id()), "10".into(), "11".into(), "8.txt".into(), "9".into(), "notes".into()]
        );
        // Nothing kept older: 9 goes; the live one never, even named older.
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(prune(store.path(), elsewhere.path(), 10, 0).unwrap(), vec![("9".to_string(), 5)]);
        let mut gone: Vec<String> = prune(store.path(), &store.path().join("10"), 12, 0).unwrap().into_iter().map(|(n, _)| n).collect();
        gone.sort();
        assert_eq!(gone, [format!(".12.download-{}", std::process::id()), "11".into()], "not the live 10, even when older");
        assert_eq!(names(store.path()), ["10", "8.txt", "notes"]);
        assert!(prune(&store.path().join("absent"), elsewhere.path(), 10, 0).unwrap().is_empty());
    }
}
