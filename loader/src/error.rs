//! The loader's errors: a compile's and a fold's (a fold ends in a
//! compile's writer and publish, so they share one type).

use std::path::PathBuf;

use elig_engine::engine::DeltaError;

use crate::export::ExportError;
use crate::publish::PublishError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    #[error(transparent)]
    Fold(#[from] FoldDeltaError),
    #[error(transparent)]
    Snapshot(#[from] elig_engine::snapshot::SnapshotError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{rejected} of {rows} rows rejected ({ratio:.5}), over --max-reject-ratio {max}; nothing was published; see {rejects}")]
    TooManyRejects { rejected: u64, rows: u64, ratio: f64, max: f64, rejects: PathBuf },
}

impl From<(PathBuf, std::io::Error)> for CompileError {
    fn from((path, source): (PathBuf, std::io::Error)) -> Self {
        CompileError::Io { path, source }
    }
}

/// A logged batch that does not apply onto the base snapshot.
#[derive(Debug, thiserror::Error)]
#[error("{path}: batch {seq} does not apply: {source}")]
pub struct FoldDeltaError {
    pub path: PathBuf,
    pub seq: u64,
    // Boxed: a delta error is large and compile results are passed around.
    pub source: Box<DeltaError>,
}
