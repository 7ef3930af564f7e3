//! Reading one export file: `.csv` or `.csv.gz`, UTF-8 or Shift_JIS, columns
//! matched by header name. The raw bytes are hashed as they stream by, for
//! the manifest's source checksums.
//!
//! Decoding is strict, row by row: a row with bytes that do not decode in
//! the export's encoding is rejected (file, line, column, reason) like a row
//! that breaks a rule, never compiled with U+FFFD in a name nor failing the
//! whole export. Before any row, the first 64 KiB are sniffed: a file whose
//! lines mostly do not decode, or a UTF-8 file given as Shift_JIS (which
//! would decode, garbled), fails at once naming the likely encoding. A UTF-8
//! byte-order mark is skipped; an empty file is reported as empty.

use std::collections::HashMap;

/// Column name to position: looked up for every field of every row, so
/// with ahash (in memory only, never persisted).
type Columns = HashMap<String, usize, ahash::RandomState>;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use elig_engine::rows::{Fields, RowError, Table};
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
    #[error("{path}: the file is empty (0 bytes); an export file starts with a header row naming its columns")]
    Empty { path: PathBuf },
    #[error("{path}: {bad} of the first {lines} lines are not {given}; the file looks like {likely}: compile with --encoding {likely}")]
    Encoding { path: PathBuf, given: &'static str, likely: &'static str, bad: usize, lines: usize },
    #[error("{path}: the header row is not valid {given}: check --encoding")]
    HeaderEncoding { path: PathBuf, given: &'static str },
    #[error(
        "{path}: the file is UTF-8 (its non-ASCII text decodes as UTF-8), but --encoding shift_jis would garble every name: compile with --encoding utf-8"
    )]
    Utf8AsShiftJis { path: PathBuf },
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::ShiftJis => "shift_jis",
        }
    }

    /// `text` decoded strictly; `Err(offset)` of the first byte that does not decode.
    fn decode(self, text: &[u8]) -> Result<std::borrow::Cow<'_, str>, usize> {
        match self {
            Encoding::Utf8 => std::str::from_utf8(text).map(Into::into).map_err(|e| e.valid_up_to()),
            Encoding::ShiftJis => {
                encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(text).ok_or_else(|| sjis_error_at(text))
            }
        }
    }
}

/// Where Shift_JIS decoding of `text` first fails.
fn sjis_error_at(text: &[u8]) -> usize {
    let mut decoder = encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(text.len() * 3);
    match decoder.decode_to_string_without_replacement(text, &mut out, true) {
        (encoding_rs::DecoderResult::Malformed(bad, unread), read) => read - bad as usize - unread as usize,
        _ => text.len(),
    }
}

/// Bytes sniffed at the start of a file for its encoding.
const SNIFF_BYTES: usize = 64 << 10;

/// Check the start of a file against the encoding it was given. `short`:
/// the sample is less than a full buffer, likely the whole file.
fn sniff(path: &Path, sample: &[u8], encoding: Encoding, short: bool) -> Result<(), ExportError> {
    // A sample may be cut inside a character: judge whole lines only.
    let sample = match sample.iter().rposition(|b| *b == b'\n') {
        Some(end) => &sample[..end],
        None if short => sample,
        None => return Ok(()),
    };
    if encoding == Encoding::ShiftJis && !sample.is_ascii() && std::str::from_utf8(sample).is_ok() {
        return Err(ExportError::Utf8AsShiftJis { path: path.to_path_buf() });
    }
    let lines: Vec<&[u8]> = sample.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let bad = lines.iter().filter(|l| encoding.decode(l).is_err()).count();
    if lines.len() >= 2 && bad * 2 > lines.len() {
        let other = if encoding == Encoding::Utf8 { Encoding::ShiftJis } else { Encoding::Utf8 };
        if lines.iter().all(|l| other.decode(l).is_ok()) {
            return Err(ExportError::Encoding {
                path: path.to_path_buf(),
                given: encoding.name(),
                likely: other.name(),
                bad,
                lines: lines.len(),
            });
        }
    }
    Ok(())
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
    pub table: Table,
    reader: csv::Reader<Box<dyn Read>>,
    encoding: Encoding,
    /// The raw fields of the last record (Shift_JIS is decoded from them).
    raw: csv::ByteRecord,
    /// Why the last record could not be decoded, if it could not.
    unreadable: Option<RowError>,
    columns: Columns,
    hash: std::rc::Rc<std::cell::RefCell<(Xxh3, u64)>>,
    /// Bytes of the file on disk (for progress).
    pub size: u64,
}

/// Find `<table>.csv` or `<table>.csv.gz` in `dir`.
pub fn locate(dir: &Path, table: Table) -> Option<PathBuf> {
    let plain = dir.join(table.file_name());
    if plain.exists() {
        return Some(plain);
    }
    let gz = dir.join(format!("{}.gz", table.file_name()));
    gz.exists().then_some(gz)
}

impl ExportFile {
    pub fn open(path: &Path, table: Table, encoding: Encoding) -> Result<ExportFile, ExportError> {
        let io_err = |source| ExportError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        ExportFile::from_reader(path, table, encoding, size, Box::new(BufReader::with_capacity(1 << 20, file)))
    }

    /// [`ExportFile::open`] on the bytes of `reader` (named `path`, which
    /// also says whether it is gzip): for tests and the fuzz target.
    pub fn from_reader(path: &Path, table: Table, encoding: Encoding, size: u64, reader: Box<dyn Read>) -> Result<ExportFile, ExportError> {
        let io_err = |source| ExportError::Io { path: path.to_path_buf(), source };
        let hash = std::rc::Rc::new(std::cell::RefCell::new((Xxh3::new(), 0u64)));
        let raw = Hashing { inner: reader, hash: hash.clone() };
        let decompressed: Box<dyn Read> =
            if path.extension().is_some_and(|e| e == "gz") { Box::new(flate2::read::MultiGzDecoder::new(raw)) } else { Box::new(raw) };
        // Rows are split as bytes and decoded field by field: in Shift_JIS
        // no trail byte is a comma, quote or line end (all below 0x40).
        let mut peek = BufReader::with_capacity(SNIFF_BYTES, decompressed);
        let start = peek.fill_buf().map_err(io_err)?;
        if start.is_empty() {
            return Err(ExportError::Empty { path: path.to_path_buf() });
        }
        let bom = start.starts_with(b"\xef\xbb\xbf");
        sniff(path, &start[if bom { 3 } else { 0 }..], encoding, start.len() < SNIFF_BYTES)?;
        if bom {
            peek.consume(3);
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(Box::new(peek) as Box<dyn Read>);
        let raw_headers = reader.byte_headers().map_err(|source| ExportError::Csv { path: path.to_path_buf(), line: 1, source })?.clone();
        let mut columns = Columns::default();
        for (i, h) in raw_headers.iter().enumerate() {
            let h = encoding.decode(h).map_err(|_| ExportError::HeaderEncoding { path: path.to_path_buf(), given: encoding.name() })?;
            let name = h.trim().trim_start_matches('\u{feff}').to_string();
            if !table.knows(&name) {
                let known = table.required().iter().chain(table.optional()).copied().collect::<Vec<_>>().join(", ");
                return Err(ExportError::UnknownColumn { path: path.to_path_buf(), column: name, known });
            }
            if columns.insert(name.clone(), i).is_some() {
                return Err(ExportError::DuplicateColumn { path: path.to_path_buf(), column: name });
            }
        }
        if let Some(missing) = table.required().iter().find(|c| !columns.contains_key(**c)) {
            return Err(ExportError::MissingColumn { path: path.to_path_buf(), column: missing.to_string() });
        }
        Ok(ExportFile {
            path: path.to_path_buf(),
            table,
            reader,
            encoding,
            raw: csv::ByteRecord::new(),
            unreadable: None,
            columns,
            hash,
            size,
        })
    }

    /// The next record and its line number; `None` at the end. A record
    /// whose bytes do not decode is returned too, empty, and its
    /// [`ExportFile::fields`] say why (the row is rejected, the file goes on).
    pub fn next_record(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>, ExportError> {
        self.unreadable = None;
        let csv_error = |path: &Path, source: csv::Error| {
            let line = source.position().map(|p| p.line()).unwrap_or(0);
            ExportError::Csv { path: path.to_path_buf(), line, source }
        };
        if self.encoding == Encoding::Utf8 {
            return match self.reader.read_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => Ok(Some(record.position().map(|p| p.line()).unwrap_or(0))),
                // The record was read (the reader goes on after it); only its text is bad.
                Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    if let csv::ErrorKind::Utf8 { err, .. } = e.kind() {
                        self.unreadable = Some(self.undecodable(err.field(), err.valid_up_to(), String::new()));
                    }
                    record.clear();
                    Ok(Some(line))
                }
                Err(source) => Err(csv_error(&self.path, source)),
            };
        }
        if !self.reader.read_byte_record(&mut self.raw).map_err(|e| csv_error(&self.path, e))? {
            return Ok(None);
        }
        let line = self.raw.position().map(|p| p.line()).unwrap_or(0);
        record.clear();
        for (i, field) in self.raw.iter().enumerate() {
            match self.encoding.decode(field) {
                Ok(text) => record.push_field(&text),
                Err(at) => {
                    if self.unreadable.is_none() {
                        let lossy = encoding_rs::SHIFT_JIS.decode_without_bom_handling(field).0.into_owned();
                        self.unreadable = Some(self.undecodable(i, at, lossy));
                    }
                    record.push_field("");
                }
            }
        }
        Ok(Some(line))
    }

    /// The reject of a row whose field `index` does not decode at byte `at`.
    fn undecodable(&self, index: usize, at: usize, value: String) -> RowError {
        let column = self.columns.iter().find(|(_, i)| **i == index).map(|(c, _)| c.as_str()).unwrap_or("");
        RowError::new(
            column,
            &value,
            format!("bytes that are not valid {} (at byte {at} of the value); nothing of the row was read", self.encoding.name()),
        )
    }

    /// A view of `record` by column name.
    pub fn fields<'a>(&'a self, record: &'a csv::StringRecord) -> CsvFields<'a> {
        CsvFields { record, columns: &self.columns, unreadable: self.unreadable.as_ref() }
    }

    /// (bytes read from disk, xxh3 of them): complete once the file is read.
    pub fn checksum(&self) -> (u64, u64) {
        let h = self.hash.borrow();
        (h.1, h.0.digest())
    }
}

pub struct CsvFields<'a> {
    record: &'a csv::StringRecord,
    columns: &'a Columns,
    unreadable: Option<&'a RowError>,
}

impl Fields for CsvFields<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        let v = self.record.get(*self.columns.get(column)?)?;
        (!v.is_empty()).then_some(v)
    }

    fn unreadable(&self) -> Option<RowError> {
        self.unreadable.cloned()
    }
}
