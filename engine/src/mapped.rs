//! The one place with `unsafe`: mapping snapshot files and reading verified
//! rkyv archives without re-validating them on every request.
//!
//! Invariants that make this sound, upheld by the whole project:
//! 1. A published snapshot file is never modified, truncated or rewritten:
//!    the loader writes a temporary directory, fsyncs it and renames it into
//!    place once (`loader::publish`), and nothing writes into it afterwards.
//!    A snapshot held in memory (`source::Bytes::Owned`) is owned by it and
//!    never written after it was opened.
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
    // 2 MiB pages (see `collapse_huge`): one TLB entry then covers 512
    // times more of a multi-gigabyte snapshot.
    #[cfg(target_os = "linux")]
    let _ = map.advise(Advice::HugePage);
    Ok(map)
}

/// Back a mapping with 2 MiB pages now, copying its pages into huge pages
/// where they are not already (`MADV_COLLAPSE`, Linux 6.1+). The loader's
/// buffered writes leave small page-cache folios, which can only be mapped
/// with 4 KiB pages, and `khugepaged` would take hours to merge them. With
/// the whole 10-million snapshot on 2 MiB pages a lookup was about a tenth
/// faster (README.md, Measured). Off the request path (`prefault`); errors
/// (an older kernel, no memory to spare) leave the small pages.
pub fn collapse_huge(map: &Mmap) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: MADV_COLLAPSE changes how the mapping's pages are backed, never
    // their contents; the range is exactly the live mapping.
    unsafe {
        libc::madvise(map.as_ptr() as *mut libc::c_void, map.len(), libc::MADV_COLLAPSE);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = map;
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
