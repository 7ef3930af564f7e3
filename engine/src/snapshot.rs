//! A snapshot directory opened for lookups.
//!
//! [`SnapshotFiles::open`] is cheap (manifest, maps, footers); [`SnapshotFiles::verify`]
//! checks every checksum and validates every rkyv archive once and only then
//! yields a [`Snapshot`], whose accessors use unchecked access.

use std::path::{Path, PathBuf};

use rkyv::util::AlignedVec;

use crate::envelope::{self, EnvelopeError, FileKind, Footer};
use crate::index::{ArchivedHashIndex, HashIndex, Hit};
use crate::manifest::{FileEntry, IndexName, Manifest, ManifestError, ANOMALIES_FILE, MANIFEST_FILE};
use crate::mapped;
use crate::model::{ArchivedPersonRecord, ArchivedPersonShard, PersonShard, SHARD_PERSONS};
use crate::source::{Bytes, MemoryFiles, Source};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Manifest { path: PathBuf, source: ManifestError },
    #[error("{path}: {source}")]
    Envelope { path: PathBuf, source: EnvelopeError },
    #[error("{path}: archive does not validate: {message}")]
    Archive { path: PathBuf, message: String },
    #[error("{path}: {what} is {found}, the manifest says {expected}")]
    Mismatch { path: PathBuf, what: &'static str, found: String, expected: String },
    #[error("manifest format version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("manifest lists no '{index}' index")]
    MissingIndex { index: &'static str },
}

/// One opened file: its bytes, footer (where the payload ends), and the
/// checksum its manifest entry promises.
#[derive(Debug)]
struct Part {
    path: PathBuf,
    bytes: Bytes,
    footer: Footer,
    expected_checksum: String,
}

impl Part {
    fn open(from: Source<'_>, entry: &FileEntry, kind: FileKind, generation: u64) -> Result<Part, SnapshotError> {
        let path = from.path(&entry.file);
        let map = from.bytes(&entry.file).map_err(|source| SnapshotError::Io { path: path.clone(), source })?;
        let (footer, _) = envelope::open(&map, kind).map_err(|source| SnapshotError::Envelope { path: path.clone(), source })?;
        if footer.generation != generation {
            return Err(SnapshotError::Envelope {
                path,
                source: EnvelopeError::Generation { found: footer.generation, expected: generation },
            });
        }
        Ok(Part { path, bytes: map, footer, expected_checksum: entry.checksum.clone() })
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[..self.footer.payload_len as usize]
    }
}

/// A snapshot whose files are mapped but not yet verified.
#[derive(Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Part>,
    indexes: Vec<Part>,
}

/// Read `manifest.json` of a snapshot directory: its version, then its own
/// checksum and canonical form (`Manifest::decode`), so a manifest that was
/// edited in any byte (its `delta_seq`, say) is refused.
pub fn read_manifest(dir: &Path) -> Result<Manifest, SnapshotError> {
    manifest_of(Source::Dir(dir))
}

fn manifest_of(from: Source<'_>) -> Result<Manifest, SnapshotError> {
    let path = from.path(MANIFEST_FILE);
    let text = from.read(MANIFEST_FILE).map_err(|source| SnapshotError::Io { path: path.clone(), source })?;
    Manifest::decode(&text, envelope::FORMAT_VERSION).map_err(|source| match source {
        ManifestError::Version { found, expected } => SnapshotError::Version { found, expected },
        source => SnapshotError::Manifest { path, source },
    })
}

/// `anomalies.csv` must be the bytes the manifest lists (it is small: read
/// whole at every open).
fn check_anomalies(from: Source<'_>, entry: &FileEntry) -> Result<(), SnapshotError> {
    let path = from.path(ANOMALIES_FILE);
    if entry.file != ANOMALIES_FILE {
        return Err(SnapshotError::Mismatch {
            path,
            what: "anomaly report name",
            found: entry.file.clone(),
            expected: ANOMALIES_FILE.into(),
        });
    }
    let bytes = from.read(ANOMALIES_FILE).map_err(|source| SnapshotError::Io { path: path.clone(), source })?;
    if bytes.len() as u64 != entry.bytes {
        return Err(SnapshotError::Mismatch { path, what: "length", found: bytes.len().to_string(), expected: entry.bytes.to_string() });
    }
    let found = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
    if found != entry.checksum {
        return Err(SnapshotError::Mismatch { path, what: "checksum", found, expected: entry.checksum.clone() });
    }
    Ok(())
}

impl SnapshotFiles {
    /// Cheap open: manifest (with its checksum), the anomaly report's
    /// checksum, maps, magic, version and lengths.
    pub fn open(dir: &Path) -> Result<SnapshotFiles, SnapshotError> {
        SnapshotFiles::open_from(Source::Dir(dir))
    }

    /// [`SnapshotFiles::open`] on a snapshot's files in memory (copied into
    /// aligned buffers); `label` stands for the directory in errors and
    /// [`Snapshot::dir`].
    pub fn from_memory(label: &Path, files: &MemoryFiles) -> Result<SnapshotFiles, SnapshotError> {
        SnapshotFiles::open_from(Source::Memory { label, files })
    }

    fn open_from(from: Source<'_>) -> Result<SnapshotFiles, SnapshotError> {
        let manifest = manifest_of(from)?;
        check_anomalies(from, &manifest.anomalies)?;
        let g = manifest.generation;
        let shards = manifest.shards.iter().map(|e| Part::open(from, e, FileKind::PersonShard, g)).collect::<Result<Vec<_>, _>>()?;
        let mut indexes = Vec::with_capacity(IndexName::ALL.len());
        for name in IndexName::ALL {
            let entry = manifest.index(name).ok_or(SnapshotError::MissingIndex { index: name.name() })?;
            indexes.push(Part::open(from, entry, FileKind::HashIndex, g)?);
        }
        Ok(SnapshotFiles { dir: from.dir().to_path_buf(), manifest, shards, indexes })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes the files map (or hold, in memory).
    pub fn mapped_bytes(&self) -> u64 {
        self.parts().map(|p| p.bytes.len() as u64).sum()
    }

    /// Every opened file: shards, then indexes.
    fn parts(&self) -> impl Iterator<Item = &Part> {
        self.shards.iter().chain(&self.indexes)
    }

    /// Check every checksum against footer and manifest, and validate every
    /// archive with rkyv. Runs once, before a snapshot serves, on every core:
    /// each file's checksum and each file's validation is a job of its own
    /// (one shard's two jobs run side by side), and the first failure in job
    /// order is reported (checksums first), whichever thread finds it.
    pub fn verify(self) -> Result<Snapshot, SnapshotError> {
        use rayon::prelude::*;
        let persons = self.manifest.persons;
        let mut jobs: Vec<Job<'_>> = self.parts().map(Job::Checksum).collect();
        jobs.extend(self.shards.iter().map(Job::Shard));
        jobs.extend(self.indexes.iter().map(Job::Index));
        let results: Vec<Result<(), SnapshotError>> = jobs.par_iter().map(|job| job.run(persons)).collect();
        results.into_iter().collect::<Result<(), SnapshotError>>()?;
        let generation_text = crate::answer::Str::from(self.manifest.generation.to_string());
        Ok(Snapshot { files: self, locked: Default::default(), generation_text })
    }
}

/// One unit of verification work.
enum Job<'a> {
    /// The payload's xxh3 against its footer and its manifest entry.
    Checksum(&'a Part),
    /// A shard archive through rkyv validation.
    Shard(&'a Part),
    /// An index archive through rkyv validation, and every target in range.
    Index(&'a Part),
}

impl Job<'_> {
    fn run(&self, persons: u64) -> Result<(), SnapshotError> {
        match *self {
            Job::Checksum(part) => {
                // Each part carries its own manifest entry's checksum (indexes
                // are found by name, whatever order the manifest lists them in).
                envelope::check_sum(&part.footer, part.payload())
                    .map_err(|source| SnapshotError::Envelope { path: part.path.clone(), source })?;
                let found = format!("{:016x}", part.footer.checksum);
                if found != part.expected_checksum {
                    return Err(SnapshotError::Mismatch {
                        path: part.path.clone(),
                        what: "checksum",
                        found,
                        expected: part.expected_checksum.clone(),
                    });
                }
            }
            Job::Shard(part) => {
                let shard = rkyv::access::<ArchivedPersonShard, rkyv::rancor::Error>(part.payload())
                    .map_err(|e| SnapshotError::Archive { path: part.path.clone(), message: e.to_string() })?;
                if shard.records.len() > SHARD_PERSONS as usize {
                    return Err(SnapshotError::Archive { path: part.path.clone(), message: "shard holds too many records".into() });
                }
            }
            Job::Index(part) => {
                let index = rkyv::access::<ArchivedHashIndex, rkyv::rancor::Error>(part.payload())
                    .map_err(|e| SnapshotError::Archive { path: part.path.clone(), message: e.to_string() })?;
                check_index_targets(index, persons).map_err(|message| SnapshotError::Archive { path: part.path.clone(), message })?;
            }
        }
        Ok(())
    }
}

/// Every value an index holds must point at an existing record, so the
/// request path never indexes out of range.
fn check_index_targets(index: &ArchivedHashIndex, persons: u64) -> Result<(), String> {
    let want = (index.len() as u64).checked_mul(crate::index::SLOT_BYTES as u64).and_then(|n| n.checked_add(crate::index::SLOT_PAD as u64));
    if want != Some(index.slots.len() as u64) {
        return Err(format!("{} slot bytes for {} slots", index.slots.len(), index.len()));
    }
    for i in 0..index.len() {
        let value = index.slot(i) as u32;
        if value == 0 {
            continue;
        }
        if value & crate::index::MULTI == 0 {
            if u64::from(value - 1) >= persons {
                return Err(format!("slot points at record {} of {persons}", value - 1));
            }
        } else {
            let off = (value & !crate::index::MULTI) as usize;
            let count = index.multi.get(off).map(|c| c.to_native() as usize).ok_or("multi offset out of range")?;
            let list = index.multi.get(off + 1..off + 1 + count).ok_or("multi list out of range")?;
            if list.iter().any(|p| u64::from(p.to_native()) >= persons) {
                return Err("multi list points past the last record".into());
            }
        }
    }
    Ok(())
}

/// A verified snapshot, ready for lookups.
#[derive(Debug)]
pub struct Snapshot {
    files: SnapshotFiles,
    /// Every mapping is locked in memory (`prefault`).
    locked: std::sync::atomic::AtomicBool,
    /// The generation as every answer header shows it, formatted once.
    generation_text: crate::answer::Str,
}

impl Snapshot {
    /// Open and verify in one step.
    pub fn load(dir: &Path) -> Result<Snapshot, SnapshotError> {
        SnapshotFiles::open(dir)?.verify()
    }

    /// Open and verify a snapshot's files in memory ([`SnapshotFiles::from_memory`]).
    pub fn from_memory(label: &Path, files: &MemoryFiles) -> Result<Snapshot, SnapshotError> {
        SnapshotFiles::from_memory(label, files)?.verify()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.files.manifest
    }

    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    pub fn generation(&self) -> u64 {
        self.files.manifest.generation
    }

    /// [`Snapshot::generation`] as answer text.
    pub fn generation_text(&self) -> &crate::answer::Str {
        &self.generation_text
    }

    pub fn persons(&self) -> u32 {
        self.files.manifest.persons as u32
    }

    /// Bytes mapped by this snapshot.
    pub fn mapped_bytes(&self) -> u64 {
        self.files.parts().map(|p| p.bytes.len() as u64).sum()
    }

    /// Touch every page so the first requests after a swap do not fault, and
    /// have the kernel map the files with 2 MiB pages (`mapped::collapse_huge`).
    pub fn prefault(&self) -> u64 {
        let mut sum = 0u64;
        for part in self.files.parts() {
            part.bytes.will_need();
            for b in part.bytes.iter().step_by(4096) {
                sum = sum.wrapping_add(u64::from(*b));
            }
        }
        std::hint::black_box(sum)
    }

    /// Lock every mapping in memory (`mlock`): a page the kernel reclaims
    /// (it does on this project's VM: DAMON pages out file pages idle for a
    /// minute, and scattered hot records look idle to it) costs the next
    /// lookup a disk read. Needs `CAP_IPC_LOCK` or a `RLIMIT_MEMLOCK` of the
    /// snapshot's size (a swap unlocks the old snapshot before locking the
    /// new one); without it the snapshot serves unlocked, with a warning,
    /// and [`Snapshot::memory_locked`] says so.
    pub fn lock_in_memory(&self) {
        let maps = || self.files.parts().map(|part| &part.bytes);
        match maps().try_for_each(|m| m.lock()) {
            Ok(()) => self.locked.store(true, std::sync::atomic::Ordering::Relaxed),
            Err(e) => {
                // All or nothing: parts left locked would count against the
                // limit while the status says "not locked".
                maps().for_each(Bytes::unlock);
                tracing::warn!(
                    dir = %self.files.dir.display(),
                    error = %e,
                    "snapshot not locked in memory (needs CAP_IPC_LOCK or RLIMIT_MEMLOCK of its size): pages the kernel reclaims cost a disk read"
                );
            }
        }
    }

    /// Let the kernel reclaim this snapshot's pages again: a swap does this to
    /// the outgoing snapshot before locking the new one, so the lock limit
    /// needs to cover one snapshot, not two.
    pub fn unlock_memory(&self) {
        if self.locked.swap(false, std::sync::atomic::Ordering::Relaxed) {
            for part in self.files.parts() {
                part.bytes.unlock();
            }
        }
    }

    /// Whether [`Snapshot::lock_in_memory`] locked every mapping.
    pub fn memory_locked(&self) -> bool {
        self.locked.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn shard(&self, shard: usize) -> Option<&ArchivedPersonShard> {
        let part = self.files.shards.get(shard)?;
        // SAFETY: `verify` validated this payload; the file never changes.
        Some(unsafe { mapped::archived_unchecked::<ArchivedPersonShard>(part.payload()) })
    }

    /// The person record number `idx`.
    pub fn person(&self, idx: u32) -> Option<&ArchivedPersonRecord> {
        let shard = self.shard((idx / SHARD_PERSONS) as usize)?;
        shard.records.get((idx % SHARD_PERSONS) as usize)
    }

    fn hash_index(&self, name: IndexName) -> &ArchivedHashIndex {
        // `indexes` holds one part per name, in `IndexName::ALL` order, which
        // is declaration order (a manifest test checks it).
        let part = &self.files.indexes[name as usize];
        // SAFETY: `verify` validated this payload; the file never changes.
        unsafe { mapped::archived_unchecked::<ArchivedHashIndex>(part.payload()) }
    }

    /// Persons whose records hold `key` in index `name`, confirmed by `holds`.
    pub fn find(&self, name: IndexName, key: &str, holds: impl Fn(&ArchivedPersonRecord) -> bool) -> Option<Hit<'_>> {
        self.find_confirmed(name, key, |p| self.person(p).is_some_and(&holds))
    }

    /// As [`Snapshot::find`], with the caller confirming a slot by its first
    /// record number (`View::find` may confirm with a delta's version).
    pub(crate) fn find_confirmed(&self, name: IndexName, key: &str, confirm: impl FnMut(u32) -> bool) -> Option<Hit<'_>> {
        self.hash_index(name).find(key.as_bytes(), confirm)
    }

    /// Every person record, in order (compile from deltas, tests).
    pub fn iter_persons(&self) -> impl Iterator<Item = (u32, &ArchivedPersonRecord)> + '_ {
        (0..self.persons()).filter_map(move |i| self.person(i).map(|p| (i, p)))
    }
}

/// Serialise an index or shard payload (used by the loader and tests).
pub fn archive_index(index: &HashIndex) -> AlignedVec {
    rkyv::to_bytes::<rkyv::rancor::Error>(index).expect("serialising plain vectors cannot fail")
}

pub fn archive_shard(shard: &PersonShard) -> AlignedVec {
    archive_shard_in(shard, AlignedVec::new())
}

/// [`archive_shard`] into `buffer`, emptied first: a compile archives one
/// shard after another into the same memory (a shard is about 130 MiB, and
/// growing a fresh buffer to it each time cost a sixth of a compile's CPU in
/// copies and freshly zeroed pages).
pub fn archive_shard_in(shard: &PersonShard, mut buffer: AlignedVec) -> AlignedVec {
    buffer.clear();
    rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(shard, buffer).expect("serialising owned records cannot fail")
}
