//! Staging files: validated rows partitioned by person shard, so the
//! compiler assembles one shard at a time and its memory does not grow with
//! the nation. Each entry is a little-endian `u32` length and an rkyv
//! archive of [`Staged`]; the files live only in the temporary directory.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use elig_engine::model::*;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

/// One validated row, addressed to its person record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Staged {
    pub person: u32,
    pub row: StagedRow,
}

// Staged rows are serialised one at a time; the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum StagedRow {
    Person(PersonRecord),
    Certificate(Certificate),
    Insurance(Insurance),
    Elderly(String, Elderly),
    Limit(String, Limit),
    SpecificDisease(String, SpecificDisease),
    Assistance(Assistance),
    Ticket(String, Ticket),
    Reference(ReferenceNumber),
    Consent(Consent),
}

/// One writer per shard.
#[derive(Debug)]
pub struct Buckets {
    dir: PathBuf,
    writers: Vec<BufWriter<File>>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> (PathBuf, io::Error) + '_ {
    move |e| (path.to_path_buf(), e)
}

impl Buckets {
    pub fn new(dir: &Path) -> Result<Buckets, (PathBuf, io::Error)> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        Ok(Buckets { dir: dir.to_path_buf(), writers: Vec::new() })
    }

    fn path(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("stage-{shard:05}.bin"))
    }

    pub fn push(&mut self, staged: &Staged) -> Result<(), (PathBuf, io::Error)> {
        let shard = (staged.person / SHARD_PERSONS) as usize;
        while self.writers.len() <= shard {
            let path = self.path(self.writers.len());
            let f = File::create(&path).map_err(io_at(&path))?;
            // Half a MiB per shard: with shards of 2^19 persons the buffers
            // of the nation take what 1 MiB ones took with 2^20.
            self.writers.push(BufWriter::with_capacity(1 << 19, f));
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(staged).map_err(|e| (self.dir.clone(), io::Error::other(e.to_string())))?;
        let w = &mut self.writers[shard];
        w.write_all(&(bytes.len() as u32).to_le_bytes()).and_then(|_| w.write_all(&bytes)).map_err(|e| (self.dir.clone(), e))
    }

    /// Flush and hand back the shard files in order.
    pub fn finish(self) -> Result<Vec<PathBuf>, (PathBuf, io::Error)> {
        let paths: Vec<PathBuf> = (0..self.writers.len()).map(|s| self.path(s)).collect();
        for (mut w, p) in self.writers.into_iter().zip(&paths) {
            w.flush().map_err(io_at(p))?;
        }
        Ok(paths)
    }
}

/// Read every entry of one staging file.
pub fn read_all(path: &Path, mut f: impl FnMut(Staged)) -> Result<(), (PathBuf, io::Error)> {
    let file = File::open(path).map_err(io_at(path))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut len = [0u8; 4];
    let mut buf = AlignedVec::<16>::new();
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err((path.to_path_buf(), e)),
        }
        let n = u32::from_le_bytes(len) as usize;
        buf.clear();
        buf.resize(n, 0);
        r.read_exact(&mut buf).map_err(io_at(path))?;
        let staged = rkyv::from_bytes::<Staged, rkyv::rancor::Error>(&buf)
            .map_err(|e| (path.to_path_buf(), io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
        f(staged);
    }
}
