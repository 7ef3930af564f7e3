//! The append-only delta log: a batch is appended and fsynced before it is
//! acknowledged, and replayed on start. Each record (little-endian):
//!
//! ```text
//! 4  magic "ELDL"
//! 4  payload length N
//! 8  batch sequence
//! 8  xxh3-64 of the payload
//! N  payload: the batch exactly as received (JSON Lines)
//! ```
//!
//! A crash mid-append leaves a torn last record; `open` detects it by length
//! or checksum and cuts it off: it was never acknowledged.
//!
//! Compaction drops the batches a new snapshot includes, but not what they
//! were: their change digests ([`Digest`], `contract.md` section 2) move to
//! `<log>.digests`, one `seq digest` line each, written atomically before the
//! log is cut, so a different batch sent later under one of those seqs is
//! still told from a repeat. A log without that file simply has none.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::delta::Digest;

const MAGIC: &[u8; 4] = b"ELDL";
const HEAD: usize = 24;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: a failed append could not be cut back off; refusing further batches until restart")]
    Broken { path: PathBuf },
    #[error("{path}: the delta log is in use by another process (its lock file {lock} is held); one server per log")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("{path}: line {line} '{text}': expected 'SEQ DIGEST' (a decimal seq and 32 hex digits)")]
    Digests { path: PathBuf, line: usize, text: String },
}

#[derive(Debug)]
pub struct DeltaLog {
    path: PathBuf,
    file: File,
    /// Bytes of whole, acknowledged records.
    len: u64,
    /// A failed append left bytes that could not be removed: appending more
    /// would hide acknowledged batches behind a bad record at replay.
    broken: bool,
    /// Digests of the batches compaction removed (`<log>.digests`).
    folded: BTreeMap<u64, Digest>,
    /// `<log>.lock`, locked while this log is open: two servers appending to
    /// one log would interleave their batches' sequences. A separate file,
    /// because compaction renames a new log over the old one.
    _lock: File,
}

/// The lock file beside a log: `<log>.lock`, next to the log's real path
/// (symlinks and `..` resolved), so two names for one log share one lock.
fn lock_path(log: &Path) -> PathBuf {
    let real = std::fs::canonicalize(log)
        .or_else(|_| {
            // Not created yet: resolve its directory.
            let dir = log.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::canonicalize(dir).map(|d| d.join(log.file_name().unwrap_or_default()))
        })
        .unwrap_or_else(|_| log.to_path_buf());
    let mut name = real.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    real.with_file_name(name)
}

/// `<log>.digests`: the change digests of batches compaction removed.
pub fn digests_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".digests");
    log.with_file_name(name)
}

fn read_digests(path: &Path) -> Result<BTreeMap<u64, Digest>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(LogError::Io { path: path.to_path_buf(), source }),
    };
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = || LogError::Digests { path: path.to_path_buf(), line: i + 1, text: line.to_string() };
        let (seq, digest) = line.trim().split_once(' ').ok_or_else(bad)?;
        let seq = seq.parse::<u64>().map_err(|_| bad())?;
        let digest = digest.trim().parse::<Digest>().map_err(|_| bad())?;
        out.insert(seq, digest);
    }
    Ok(out)
}

/// Write a file atomically: temp file, fsync, rename, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The live snapshot record beside a log: `<log>.snapshot`, one line naming
/// the snapshot directory last swapped in, so a restart opens that one (the
/// log may already be compacted past the configured snapshot).
pub fn live_record_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".snapshot");
    log.with_file_name(name)
}

/// Write the live snapshot record atomically (temp file, fsync, rename, fsync dir).
pub fn record_live(log: &Path, snapshot_dir: &Path) -> io::Result<()> {
    write_atomically(&live_record_path(log), format!("{}\n", snapshot_dir.display()).as_bytes())
}

/// The snapshot directory the live record names, if there is one.
pub fn read_live(log: &Path) -> io::Result<Option<PathBuf>> {
    match std::fs::read_to_string(live_record_path(log)) {
        Ok(text) => {
            let p = text.trim_end_matches(['\n', '\r']);
            Ok((!p.is_empty()).then(|| PathBuf::from(p)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One logged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// What `open` found.
#[derive(Debug)]
pub struct Opened {
    pub log: DeltaLog,
    pub records: Vec<Record>,
    /// Bytes of a torn or corrupt tail that were cut off.
    pub dropped_bytes: u64,
    /// The change digests of batches compaction removed, by seq.
    pub folded: BTreeMap<u64, Digest>,
}

fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Parse records until the first bad one; returns them and the good length.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEAD {
        let h = &bytes[at..at + HEAD];
        if &h[0..4] != MAGIC {
            break;
        }
        let n = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let seq = u64::from_le_bytes(h[8..16].try_into().unwrap_or([0; 8]));
        let sum = u64::from_le_bytes(h[16..24].try_into().unwrap_or([0; 8]));
        let Some(payload) = bytes.get(at + HEAD..at + HEAD + n) else { break };
        if xxh3_64(payload) != sum {
            break;
        }
        records.push(Record { seq, payload: payload.to_vec() });
        at += HEAD + n;
    }
    (records, at)
}

impl DeltaLog {
    /// Open (creating if absent), read every good record, cut a torn tail.
    pub fn open(path: &Path) -> Result<Opened, LogError> {
        let err = |source| LogError::Io { path: path.to_path_buf(), source };
        let lock_file = lock_path(path);
        let lock = OpenOptions::new().write(true).create(true).truncate(false).open(&lock_file).map_err(err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LogError::Locked { path: path.to_path_buf(), lock: lock_file }),
            Err(std::fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err)?;
        let (records, good) = parse(&bytes);
        let dropped_bytes = (bytes.len() - good) as u64;
        if dropped_bytes > 0 {
            file.set_len(good as u64).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        file.seek(SeekFrom::End(0)).map_err(err)?;
        let folded = read_digests(&digests_path(path))?;
        Ok(Opened {
            log: DeltaLog { path: path.to_path_buf(), file, len: good as u64, broken: false, folded: folded.clone(), _lock: lock },
            records,
            dropped_bytes,
            folded,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one batch and fsync: only then may it be acknowledged.
    /// A failed append is cut back off, so the log never holds a bad record
    /// in front of later acknowledged ones.
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), LogError> {
        if self.broken {
            return Err(LogError::Broken { path: self.path.clone() });
        }
        let record = encode(seq, payload);
        let written = self.file.write_all(&record).and_then(|_| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(source) => {
                if self.file.set_len(self.len).and_then(|_| self.file.sync_all()).is_err() {
                    self.broken = true;
                }
                Err(LogError::Io { path: self.path.clone(), source })
            }
        }
    }

    /// Rewrite the log without the batches up to `through` (a snapshot now
    /// includes them): their digests go to `<log>.digests` first, then the
    /// log is rewritten (temp file, fsync, rename).
    pub fn compact(&mut self, through: u64) -> Result<usize, LogError> {
        let err = |source| LogError::Io { path: self.path.clone(), source };
        let bytes = std::fs::read(&self.path).map_err(err)?;
        let (records, _) = parse(&bytes);
        let keep: Vec<&Record> = records.iter().filter(|r| r.seq > through).collect();
        let mut folded = self.folded.clone();
        for r in records.iter().filter(|r| r.seq <= through) {
            if let Some(d) = Digest::of_batch(&r.payload) {
                folded.insert(r.seq, d);
            }
        }
        if folded != self.folded {
            let digests = digests_path(&self.path);
            let text: String = folded.iter().map(|(seq, d)| format!("{seq} {d}\n")).collect();
            write_atomically(&digests, text.as_bytes()).map_err(|source| LogError::Io { path: digests, source })?;
            self.folded = folded;
        }
        let tmp = self.path.with_extension("compact");
        let mut f = File::create(&tmp).map_err(err)?;
        for r in &keep {
            f.write_all(&encode(r.seq, &r.payload)).map_err(err)?;
        }
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(err)?;
        self.len = self.file.metadata().map_err(err)?.len();
        Ok(records.len() - keep.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_opened_once_is_refused_to_a_second_opener_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deltas.log");
        let first = DeltaLog::open(&path).unwrap();
        match DeltaLog::open(&path) {
            Err(e @ LogError::Locked { .. }) => {
                let text = e.to_string();
                assert!(text.contains("deltas.log") && text.contains("deltas.log.lock") && text.contains("another process"), "{text}");
            }
            other => panic!("a second open of a log in use must be refused, got {other:?}"),
        }
        drop(first);
        assert!(DeltaLog::open(&path).is_ok(), "the lock goes with the log");
    }

    #[cfg(unix)]
    #[test]
    fn another_name_for_the_same_log_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let _first = DeltaLog::open(&a.join("deltas.log")).unwrap();
        // b/deltas.log is a symlink to a/deltas.log: one log, two names.
        std::os::unix::fs::symlink(a.join("deltas.log"), b.join("deltas.log")).unwrap();
        let second = DeltaLog::open(&b.join("deltas.log"));
        assert!(matches!(second, Err(LogError::Locked { .. })), "{second:?}");
    }

    #[test]
    fn appended_records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deltas.log");
        let mut o = DeltaLog::open(&path).unwrap();
        o.log.append(1, b"one").unwrap();
        o.log.append(2, b"two").unwrap();
        drop(o);
        // A crash mid-append: half a record at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&encode(3, b"three")[..10]).unwrap();
        drop(f);
        let o = DeltaLog::open(&path).unwrap();
        assert_eq!(o.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(o.dropped_bytes, 10);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, 2 * HEAD + 6);
    }

    #[test]
    fn a_corrupt_record_stops_replay_there() {
        let mut bytes = encode(1, b"one");
        let mut second = encode(2, b"two");
        second[HEAD] ^= 1;
        bytes.extend_from_slice(&second);
        let (records, good) = parse(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(good, HEAD + 3);
    }

    #[test]
    fn the_live_record_round_trips_beside_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("deltas.log");
        assert_eq!(live_record_path(&log), dir.path().join("deltas.log.snapshot"));
        assert_eq!(read_live(&log).unwrap(), None);
        record_live(&log, Path::new("/srv/elig/snap-2")).unwrap();
        record_live(&log, Path::new("/srv/elig/snap-3")).unwrap();
        assert_eq!(read_live(&log).unwrap(), Some(PathBuf::from("/srv/elig/snap-3")));
    }

    #[test]
    fn compaction_keeps_only_newer_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deltas.log");
        let mut o = DeltaLog::open(&path).unwrap();
        for s in 1..=4 {
            o.log.append(s, format!("b{s}").as_bytes()).unwrap();
        }
        assert_eq!(o.log.compact(2).unwrap(), 2);
        o.log.append(5, b"b5").unwrap();
        drop(o);
        let again = DeltaLog::open(&path).unwrap();
        assert_eq!(again.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4, 5]);
    }

    fn batch(seq: u64, qid: &str) -> Vec<u8> {
        format!(
            "{{\"seq\": {seq}, \"created\": \"20261122101500\"}}\n{{\"op\": \"delete\", \"table\": \"insurance\", \"key\": {{\"qualification_id\": \"{qid}\"}}}}\n"
        )
        .into_bytes()
    }

    #[test]
    fn compaction_keeps_the_digests_of_the_batches_it_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deltas.log");
        let mut o = DeltaLog::open(&path).unwrap();
        assert!(o.folded.is_empty());
        for s in 1..=3 {
            o.log.append(s, &batch(s, &format!("Q{s}"))).unwrap();
        }
        o.log.compact(1).unwrap();
        o.log.compact(2).unwrap();
        drop(o);
        let again = DeltaLog::open(&path).unwrap();
        assert_eq!(again.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        let want: BTreeMap<u64, Digest> = (1..=2).map(|s| (s, Digest::of_batch(&batch(s, &format!("Q{s}"))).unwrap())).collect();
        assert_eq!(again.folded, want);
        assert_ne!(want[&1], want[&2]);
        drop(again);
        // A damaged digests file is refused, naming the file and the line.
        std::fs::write(digests_path(&path), "1 00ff\n2 nope\n").unwrap();
        let e = DeltaLog::open(&path).unwrap_err().to_string();
        assert!(e.ends_with("deltas.log.digests: line 2 '2 nope': expected 'SEQ DIGEST' (a decimal seq and 32 hex digits)"), "{e}");
    }
}
