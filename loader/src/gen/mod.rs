//! The synthetic nightly export (`contract.md` section 1), for tests, demos and benchmarks.
//!
//! One seeded ChaCha8 stream drives everything, so the same options give byte-identical files.
//! Fixed pools (insurers, municipalities, welfare offices, institutions) are drawn first; then
//! households are generated one at a time and written straight to the per-file CSV writers, so
//! memory stays flat however many persons are asked for. Keys are unique by construction
//! (per-insurer and per-office counters run through bijections); with `defect_rate > 0` defective
//! persons are added on purpose.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::dates::date_of;
use self::output::Out;
use self::pools::Pools;

mod assistance;
mod dates;
mod draw;
mod household;
mod insurance;
mod names;
mod output;
mod person;
mod pools;
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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    #[error("export date {0} is not a date YYYYMMDD between 2018 and 2099")]
    InvalidToday(u32),
    #[error("defect rate {0} is not between 0 and 1")]
    InvalidDefectRate(f64),
    #[error("cannot write {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
}

/// The files of the export and their columns, in the order written.
#[rustfmt::skip]
pub const FILES: [(&str, &[&str]); 11] = [
    ("persons.csv", &["person_id", "name", "name_kana", "other_name", "other_name_kana", "sex", "birth_date", "address", "post_number"]),
    ("certificates.csv", &["serial_number", "processing_number", "person_id", "valid_from", "valid_to"]),
    ("revoked_certificates.csv", &["serial_number", "revoked_at"]),
    ("insurance.csv", &[
        "qualification_id", "person_id", "insurer_number", "card_symbol", "card_number", "branch_number",
        "card_classification", "personal_family", "insured_name", "insurer_name", "qualification_date",
        "disqualification_date", "reason_of_loss", "card_issue_date", "card_valid_from", "card_valid_to",
        "contribution_ratio", "preschool",
    ]),
    ("elderly_certificates.csv", &["qualification_id", "issue_date", "valid_from", "valid_to", "contribution_ratio"]),
    ("limit_certificates.csv", &["qualification_id", "classification", "category", "issue_date", "valid_from", "valid_to", "long_term_date"]),
    ("specific_disease_certificates.csv", &["qualification_id", "category", "issue_date", "valid_from", "valid_to", "self_pay"]),
    ("assistance.csv", &["assistance_id", "person_id", "payer_number", "recipient_number", "welfare_office", "start_date", "end_date"]),
    ("tickets.csv", &[
        "ticket_id", "assistance_id", "ticket_type", "treatment_month", "valid_from", "valid_to", "issue_number",
        "institution_code", "institution_name", "treatment_type", "self_pay", "injury_name_1", "injury_name_2",
        "injury_name_3", "single_or_combined", "social_insurance", "consistency_flag", "infectious_disease",
        "elderly_medical_care", "prefectural_expenses", "prescriber_code", "prescriber_name", "district_contact",
        "handling_contact", "remarks_1", "remarks_2", "remarks_3",
    ]),
    ("reference_numbers.csv", &["institution_code", "person_id", "reference_number"]),
    ("consents.csv", &["institution_code", "person_id", "kind", "consented_at", "expires_at"]),
];
const PERSONS: usize = 0;
const CERTS: usize = 1;
const REVOKED: usize = 2;
const INSURANCE: usize = 3;
const ELDERLY: usize = 4;
const LIMIT: usize = 5;
const DISEASE: usize = 6;
const ASSISTANCE: usize = 7;
const TICKETS: usize = 8;
const REFERENCES: usize = 9;
const CONSENTS: usize = 10;

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

/// Certificate processing numbers have 16 digits.
const PROC_MOD: u64 = 10_000_000_000_000_000;

/// Counters of everything written so far: the ids of each kind, and the summary's totals.
#[derive(Default, Clone, Copy)]
struct Seq {
    person: u64,
    household: u64,
    qual: u64,
    assist: u64,
    ticket: u64,
    cert: u64,
    defects: u64,
}

/// The generator's state: one random stream, the pools, the writers and the counters.
/// Its methods live in the submodules, one per kind of row.
struct Gen {
    rng: ChaCha8Rng,
    today: NaiveDate,
    defect_rate: f64,
    pools: Pools,
    serial_key: u64,
    proc_off: u64,
    out: Out,
    seq: Seq,
}
