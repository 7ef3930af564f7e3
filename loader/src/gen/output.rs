//! The CSV writers: one reusable row buffer and one writer per file of the export.

use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::dates::ymd;
use super::error::GenError;
use super::files::FILES;

/// The fields of one row, kept in one reusable buffer.
#[derive(Default)]
pub(super) struct Row {
    buf: String,
    ends: Vec<usize>,
}

impl Row {
    pub(super) fn f(&mut self, v: impl fmt::Display) -> &mut Self {
        let _ = write!(self.buf, "{v}"); // writing to a String cannot fail
        self.ends.push(self.buf.len());
        self
    }
    pub(super) fn d(&mut self, d: NaiveDate) -> &mut Self {
        self.f(ymd(d))
    }
    pub(super) fn opt(&mut self, d: Option<NaiveDate>) -> &mut Self {
        match d {
            Some(d) => self.d(d),
            None => self.f(""),
        }
    }
    fn fields(&self) -> impl Iterator<Item = &str> {
        let mut s = 0;
        self.ends.iter().map(move |&e| {
            let f = &self.buf[s..e];
            s = e;
            f
        })
    }
}

pub(super) struct Out {
    files: Vec<(PathBuf, csv::Writer<BufWriter<File>>)>,
    rows: [u64; 11],
    pub(super) row: Row,
}

impl Out {
    pub(super) fn create(dir: &Path) -> Result<Out, GenError> {
        fs::create_dir_all(dir).map_err(|source| GenError::Io { path: dir.to_path_buf(), source })?;
        let mut files = Vec::new();
        for (name, header) in FILES {
            let path = dir.join(name);
            let file = File::create(&path).map_err(|source| GenError::Io { path: path.clone(), source })?;
            let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 16, file));
            w.write_record(header).map_err(|source| GenError::Csv { path: path.clone(), source })?;
            files.push((path, w));
        }
        Ok(Out { files, rows: [0; 11], row: Row::default() })
    }

    /// Write the row built so far to `file`, and clear it.
    pub(super) fn emit(&mut self, file: usize) -> Result<(), GenError> {
        debug_assert_eq!(self.row.ends.len(), FILES[file].1.len(), "{}", FILES[file].0);
        let (path, w) = &mut self.files[file];
        w.write_record(self.row.fields()).map_err(|source| GenError::Csv { path: path.clone(), source })?;
        self.rows[file] += 1;
        self.row.buf.clear();
        self.row.ends.clear();
        Ok(())
    }

    pub(super) fn finish(self) -> Result<[u64; 11], GenError> {
        for (path, mut w) in self.files {
            w.flush().map_err(|source| GenError::Io { path, source })?;
        }
        Ok(self.rows)
    }
}
