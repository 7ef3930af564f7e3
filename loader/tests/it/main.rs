//! Loader and engine end to end: exports compiled into snapshots and asked.

mod fixture;
mod golden;
mod deltas;
mod lookups;
mod oracle;
mod rules;
mod snapshot_files;
