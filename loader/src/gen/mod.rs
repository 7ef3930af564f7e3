//! The synthetic nightly export (`contract.md` section 1), for tests, demos and benchmarks.
//!
//! One seeded ChaCha8 stream drives everything, so the same options give byte-identical files.
//! Fixed pools (insurers, municipalities, welfare offices, institutions) are drawn first; then
//! households are generated one at a time and written straight to the per-file CSV writers, so
//! memory stays flat however many persons are asked for. Keys are unique by construction
//! (per-insurer and per-office counters run through bijections); with `defect_rate > 0` defective
//! persons are added on purpose.

use std::path::Path;

use chrono::Datelike;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use self::error::GenError;
pub use self::files::FILES;

use self::dates::date_of;
use self::output::Out;
use self::person::PROC_MOD;
use self::pools::Pools;
use self::state::{Gen, Seq};

mod assistance;
mod cat;
mod dates;
mod draw;
mod error;
mod files;
mod household;
mod insurance;
mod names;
mod output;
mod person;
mod pools;
mod state;
#[cfg(test)]
mod tests;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    pub persons: u64,
    pub seed: u64,
    /// The export date, `YYYYMMDD`: every date is placed relative to it.
    pub today: u32,
    /// Fraction of persons added as data defects (shared insurance keys, duplicated identities).
    pub defect_rate: f64,
}

impl GenOptions {
    pub fn new(persons: u64, seed: u64, today: u32) -> Self {
        GenOptions { persons, seed, today, defect_rate: 0.0 }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    pub persons: u64,
    /// Data rows per file (header excluded), in the order of [`FILES`].
    pub rows: Vec<(String, u64)>,
    pub households: u64,
    /// Defective persons injected (included in `persons`).
    pub defects: u64,
    pub insurers: usize,
    pub institutions: usize,
    pub welfare_offices: usize,
}

/// Write the whole export into `out_dir` (created if needed).
pub fn generate(opts: &GenOptions, out_dir: &Path) -> Result<GenSummary, GenError> {
    generate_with_progress(opts, out_dir, |_| {})
}

/// As [`generate`], calling `progress` with the number of persons written every 65,536 persons
/// and once at the end.
pub fn generate_with_progress(opts: &GenOptions, out_dir: &Path, mut progress: impl FnMut(u64)) -> Result<GenSummary, GenError> {
    let today = date_of(opts.today).filter(|d| (2018..=2099).contains(&d.year())).ok_or(GenError::InvalidToday(opts.today))?;
    if !(0.0..=1.0).contains(&opts.defect_rate) {
        return Err(GenError::InvalidDefectRate(opts.defect_rate));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let pools = Pools::build(&mut rng);
    let (serial_key, proc_off) = (rng.gen(), rng.gen_range(0..PROC_MOD));
    let mut g =
        Gen { rng, today, defect_rate: opts.defect_rate, pools, serial_key, proc_off, out: Out::create(out_dir)?, seq: Seq::default() };
    let mut reported = 0;
    while g.seq.person < opts.persons {
        g.household(opts.persons - g.seq.person)?;
        if g.seq.person - reported >= 1 << 16 {
            reported = g.seq.person;
            progress(reported);
        }
    }
    progress(g.seq.person);
    let seq = g.seq;
    let (insurers, institutions, welfare_offices) = (g.pools.insurers.len(), g.pools.insts.len(), g.pools.offices.len());
    let counts = g.out.finish()?;
    Ok(GenSummary {
        persons: seq.person,
        rows: FILES.iter().zip(counts).map(|((f, _), n)| (f.to_string(), n)).collect(),
        households: seq.household,
        defects: seq.defects,
        insurers,
        institutions,
        welfare_offices,
    })
}
