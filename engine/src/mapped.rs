//! The one place with `unsafe`: mapping snapshot files and reading verified
//! rkyv archives without re-validating them on every request.
//!
//! Invariants that make this sound, upheld by the whole project:
//! 1. A published snapshot file is never modified, truncated or rewritten:
//!    the loader writes a temporary directory, fsyncs it and renames it into
//!    place once (`loader::publish`), and nothing writes into it afterwards.
//! 2. A payload is read with [`archived_unchecked`] only after
//!    [`crate::envelope`] verified its checksum and rkyv validated it
//!    (`Snapshot::verify`), or when this process serialised the bytes itself.

use std::fs::File;
use std::io;
use std::path::Path;

use memmap2::{Advice, Mmap};
use rkyv::Portable;

/// Map a snapshot file read-only.
///
/// # Safety
/// The caller guarantees that no process modifies or truncates the file while
/// the map lives (invariant 1 above); a change would be undefined behaviour
/// for every reference into the map.
pub unsafe fn map_file(path: &Path) -> io::Result<Mmap> {
    let file = File::open(path)?;
    // SAFETY: forwarded to our caller's contract.
    let map = unsafe { Mmap::map(&file)? };
    // Lookups are random point reads: read-ahead would waste page cache.
    let _ = map.advise(Advice::Random);
    Ok(map)
}

/// Access the archived root of verified bytes.
///
/// # Safety
/// `bytes` must hold a valid archive of `T` at the default root position,
/// either checked once by `rkyv::access` (see `Snapshot::verify`) or produced
/// by `rkyv::to_bytes` in this process; and they must not change afterwards.
pub unsafe fn archived_unchecked<T: Portable>(bytes: &[u8]) -> &T {
    // SAFETY: forwarded to our caller's contract.
    unsafe { rkyv::access_unchecked::<T>(bytes) }
}
