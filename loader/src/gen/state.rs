//! The generator's state and its counters.

use chrono::NaiveDate;
use rand_chacha::ChaCha8Rng;

use super::output::Out;
use super::pools::Pools;

/// Counters of everything written so far: the ids of each kind, and the summary's totals.
#[derive(Default, Clone, Copy)]
pub(super) struct Seq {
    pub(super) person: u64,
    pub(super) household: u64,
    pub(super) qual: u64,
    pub(super) assist: u64,
    pub(super) ticket: u64,
    pub(super) cert: u64,
    pub(super) defects: u64,
}

/// The generator's state: one random stream, the pools, the writers and the counters.
/// Its methods live in the submodules, one per kind of row.
pub(super) struct Gen {
    pub(super) rng: ChaCha8Rng,
    pub(super) today: NaiveDate,
    pub(super) defect_rate: f64,
    pub(super) pools: Pools,
    pub(super) serial_key: u64,
    pub(super) proc_off: u64,
    pub(super) out: Out,
    pub(super) seq: Seq,
}
