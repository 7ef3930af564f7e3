//! Deltas applied on top of a snapshot (filled in by the delta feed).
//!
//! A person changed by a delta gets a new version of its whole record,
//! archived with rkyv so lookups read it exactly as they read the snapshot.

use std::sync::Arc;

use rkyv::util::AlignedVec;

use crate::manifest::IndexName;
use crate::model::ArchivedPersonRecord;

/// A person record found by a lookup: in the mapped snapshot, or a version
/// written by a delta.
#[derive(Debug, Clone)]
pub enum PersonRef<'a> {
    Snapshot(&'a ArchivedPersonRecord),
    Delta(Arc<AlignedVec>),
}

impl PersonRef<'_> {
    pub fn get(&self) -> &ArchivedPersonRecord {
        match self {
            PersonRef::Snapshot(p) => p,
            // SAFETY: delta versions are serialised by this process with
            // `rkyv::to_bytes` and never change afterwards (`mapped`, invariant 2).
            PersonRef::Delta(bytes) => unsafe { crate::mapped::archived_unchecked::<ArchivedPersonRecord>(bytes) },
        }
    }
}

/// The deltas visible to one request.
#[derive(Debug, Default)]
pub struct OverlayView {}

impl OverlayView {
    pub(crate) fn merge<'a>(
        &self,
        _name: IndexName,
        _key: &str,
        _holds: &dyn Fn(&ArchivedPersonRecord) -> bool,
        _out: &mut smallvec::SmallVec<[PersonRef<'a>; 2]>,
    ) {
    }

    pub(crate) fn revoked(&self, _serial: &str) -> u64 {
        0
    }
}
