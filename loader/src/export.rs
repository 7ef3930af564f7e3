//! Reading one export file: `.csv` or `.csv.gz`, UTF-8 or Shift_JIS, columns
//! matched by header name. The raw bytes are hashed as they stream by, for
//! the manifest's source checksums.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use elig_engine::rows::{Fields, Table};
use xxhash_rust::xxh3::Xxh3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Encoding {
    #[default]
    #[value(name = "utf-8", alias = "utf8")]
    Utf8,
    #[value(name = "shift_jis", alias = "sjis")]
    ShiftJis,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: line {line}: {source}")]
    Csv { path: PathBuf, line: u64, source: csv::Error },
    #[error("{path}: unknown column '{column}' (known: {known})")]
    UnknownColumn { path: PathBuf, column: String, known: String },
    #[error("{path}: required column '{column}' is missing from the header")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}: column '{column}' appears twice in the header")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{dir}: persons.csv (or persons.csv.gz) is required")]
    NoPersons { dir: PathBuf },
}

/// Counts the bytes and hashes them as the decoder reads.
struct Hashing<R> {
    inner: R,
    hash: std::rc::Rc<std::cell::RefCell<(Xxh3, u64)>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut h = self.hash.borrow_mut();
        h.0.update(&buf[..n]);
        h.1 += n as u64;
        Ok(n)
    }
}

/// An open export file.
pub struct ExportFile {
    pub path: PathBuf,
    pub table: &'static Table,
    reader: csv::Reader<Box<dyn Read>>,
    columns: HashMap<String, usize>,
    hash: std::rc::Rc<std::cell::RefCell<(Xxh3, u64)>>,
    /// Bytes of the file on disk (for progress).
    pub size: u64,
}

/// Find `<table>.csv` or `<table>.csv.gz` in `dir`.
pub fn locate(dir: &Path, table: &Table) -> Option<PathBuf> {
    let plain = dir.join(table.file_name());
    if plain.exists() {
        return Some(plain);
    }
    let gz = dir.join(format!("{}.gz", table.file_name()));
    gz.exists().then_some(gz)
}

impl ExportFile {
    pub fn open(path: &Path, table: &'static Table, encoding: Encoding) -> Result<ExportFile, ExportError> {
        let io_err = |source| ExportError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        let hash = std::rc::Rc::new(std::cell::RefCell::new((Xxh3::new(), 0u64)));
        let raw = Hashing { inner: BufReader::with_capacity(1 << 20, file), hash: hash.clone() };
        let decompressed: Box<dyn Read> =
            if path.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::MultiGzDecoder::new(raw)) } else { Box::new(raw) };
        let decoded: Box<dyn Read> = match encoding {
            Encoding::Utf8 => decompressed,
            Encoding::ShiftJis => {
                Box::new(encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(encoding_rs::SHIFT_JIS)).build(decompressed))
            }
        };
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(decoded);
        let headers = reader.headers().map_err(|source| ExportError::Csv { path: path.to_path_buf(), line: 1, source })?.clone();
        let mut columns = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let name = h.trim().trim_start_matches('\u{feff}').to_string();
            if !table.knows(&name) {
                let known = table.required.iter().chain(table.optional).copied().collect::<Vec<_>>().join(", ");
                return Err(ExportError::UnknownColumn { path: path.to_path_buf(), column: name, known });
            }
            if columns.insert(name.clone(), i).is_some() {
                return Err(ExportError::DuplicateColumn { path: path.to_path_buf(), column: name });
            }
        }
        if let Some(missing) = table.required.iter().find(|c| !columns.contains_key(**c)) {
            return Err(ExportError::MissingColumn { path: path.to_path_buf(), column: missing.to_string() });
        }
        Ok(ExportFile { path: path.to_path_buf(), table, reader, columns, hash, size })
    }

    /// The next record and its line number; `None` at the end.
    pub fn next_record(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>, ExportError> {
        match self.reader.read_record(record) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(Some(record.position().map(|p| p.line()).unwrap_or(0))),
            Err(source) => {
                let line = source.position().map(|p| p.line()).unwrap_or(0);
                Err(ExportError::Csv { path: self.path.clone(), line, source })
            }
        }
    }

    /// A view of `record` by column name.
    pub fn fields<'a>(&'a self, record: &'a csv::StringRecord) -> CsvFields<'a> {
        CsvFields { record, columns: &self.columns }
    }

    /// (bytes read from disk, xxh3 of them): complete once the file is read.
    pub fn checksum(&self) -> (u64, u64) {
        let h = self.hash.borrow();
        (h.1, h.0.digest())
    }
}

pub struct CsvFields<'a> {
    record: &'a csv::StringRecord,
    columns: &'a HashMap<String, usize>,
}

impl Fields for CsvFields<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        let v = self.record.get(*self.columns.get(column)?)?;
        (!v.is_empty()).then_some(v)
    }
}
