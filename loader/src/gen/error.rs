//! What can go wrong while generating an export.

use std::io;
use std::path::PathBuf;

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
