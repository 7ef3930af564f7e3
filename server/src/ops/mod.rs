//! Operations: what the server records and keeps beside answering.
//!
//! - [`audit`]: one JSON line per answered query; [`usage`]: counts per
//!   institution and lookup kind; [`metrics`]: Prometheus.
//! - [`state`]: the delta log and the live snapshot record across restarts.
//! - [`feed`], [`jetstream`]: following the NATS JetStream delta stream
//!   ([`applier`]: its batches applied below the answers' CPU priority
//!   while the node is caught up, at theirs when it is late);
//!   [`snapshots`]: joining from and following the snapshot store;
//!   [`publish`]: the publisher's dry run on a node and its `--wait`.

pub mod applier;
pub mod audit;
pub mod feed;
pub mod jetstream;
pub mod metrics;
pub mod publish;
pub mod snapshots;
pub mod state;
pub mod usage;
