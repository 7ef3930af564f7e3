//! Where a snapshot's bytes live: files mapped from a published directory
//! (a server), or buffers in memory (tests: a snapshot opened, corrupted and
//! verified without files). The reader above does not tell them apart.

use std::collections::BTreeMap;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};
use rkyv::util::AlignedVec;

use crate::mapped;

/// The bytes of one snapshot file.
#[derive(Debug)]
pub enum Bytes {
    /// Mapped read-only from a published file (`mapped::map_file`).
    Mapped(Mmap),
    /// Held in memory, 16-byte aligned as rkyv archives need.
    Owned(AlignedVec),
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

impl Bytes {
    /// A copy of `bytes` in an aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> Bytes {
        let mut v = AlignedVec::with_capacity(bytes.len());
        v.extend_from_slice(bytes);
        Bytes::Owned(v)
    }

    /// Ask the kernel to read a mapping in now (memory needs nothing).
    pub(crate) fn will_need(&self) {
        if let Bytes::Mapped(m) = self {
            let _ = m.advise(Advice::WillNeed);
            mapped::collapse_huge(m);
        }
    }

    /// Lock a mapping in memory; heap bytes are not paged from a file, so
    /// there is nothing to lock.
    pub(crate) fn lock(&self) -> io::Result<()> {
        match self {
            Bytes::Mapped(m) => m.lock(),
            Bytes::Owned(_) => Ok(()),
        }
    }

    pub(crate) fn unlock(&self) {
        if let Bytes::Mapped(m) = self {
            let _ = m.unlock();
        }
    }
}

/// A snapshot's files in memory, by file name (`manifest.json`,
/// `persons-00000.rkyv`, ...), as a snapshot directory would hold them.
pub type MemoryFiles = BTreeMap<String, Vec<u8>>;

/// Where [`crate::snapshot::SnapshotFiles`] reads a snapshot from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A published snapshot directory.
    Dir(&'a Path),
    /// Files in memory; `label` names them in errors and `status`.
    Memory { label: &'a Path, files: &'a MemoryFiles },
}

impl Source<'_> {
    /// The directory, or the label of files in memory.
    pub(crate) fn dir(&self) -> &Path {
        match self {
            Source::Dir(dir) => dir,
            Source::Memory { label, .. } => label,
        }
    }

    /// What errors call a file.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// A small file, read whole (the manifest, the anomaly report).
    pub(crate) fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        match self {
            Source::Dir(dir) => std::fs::read(dir.join(name)),
            Source::Memory { files, .. } => files.get(name).cloned().ok_or_else(|| not_in_memory(name)),
        }
    }

    /// A payload file: mapped from a directory, copied from memory.
    pub(crate) fn bytes(&self, name: &str) -> io::Result<Bytes> {
        match self {
            // SAFETY: snapshot files are published once by rename and never
            // modified afterwards (see `mapped`, invariant 1).
            Source::Dir(dir) => unsafe { mapped::map_file(&dir.join(name)) }.map(Bytes::Mapped),
            Source::Memory { files, .. } => files.get(name).map(|b| Bytes::copy_from(b)).ok_or_else(|| not_in_memory(name)),
        }
    }
}

fn not_in_memory(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file '{name}' among the snapshot's files in memory"))
}
