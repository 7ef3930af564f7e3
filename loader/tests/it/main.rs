//! Loader and engine end to end: exports compiled into snapshots and asked.

mod deltas;
mod fixture;
mod lookups;
mod offline;
mod oracle;
mod residency;
mod rules;
mod semantics;
mod snapshot_files;
