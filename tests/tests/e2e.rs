//! End-to-end tests: a server on 127.0.0.1:0 with a generated PKI, serving
//! a snapshot compiled once per run from the synthetic generator, and the
//! client library talking real QUIC to it. The harness is `elig_tests`.

#[path = "e2e/bench.rs"]
mod bench;
#[path = "e2e/bulk.rs"]
mod bulk;
#[path = "e2e/bulk_io.rs"]
mod bulk_io;
#[path = "e2e/deltas.rs"]
mod deltas;
#[path = "e2e/failover.rs"]
mod failover;
#[path = "e2e/feed.rs"]
mod feed;
#[path = "e2e/flood.rs"]
mod flood;
#[path = "e2e/frames.rs"]
mod frames;
#[path = "e2e/lookups.rs"]
mod lookups;
#[path = "e2e/machine.rs"]
mod machine;
#[path = "e2e/machine_rules.rs"]
mod machine_rules;
#[path = "e2e/operations.rs"]
mod operations;
#[path = "e2e/roles.rs"]
mod roles;
#[path = "e2e/store.rs"]
mod store;
#[path = "e2e/swaps.rs"]
mod swaps;
#[path = "e2e/tier.rs"]
mod tier;
#[path = "e2e/tier_process.rs"]
mod tier_process;
#[path = "e2e/workers.rs"]
mod workers;
#[path = "e2e/xml.rs"]
mod xml;
