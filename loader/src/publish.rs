//! Writing a snapshot directory so that a crash never leaves a half snapshot
//! under the final name: every file goes into a temporary sibling directory,
//! is fsynced, and the directory is renamed into place once. A published
//! directory is never written again (the engine maps its files).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use elig_engine::envelope::{footer_bytes, FileKind};
use elig_engine::manifest::{FileEntry, Manifest, MANIFEST_FILE};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} already exists: a published snapshot is never overwritten; choose a new directory")]
    Exists { path: PathBuf },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io { path: path.to_path_buf(), source }
}

/// A snapshot being written.
#[derive(Debug, Clone)]
pub struct Staging {
    pub tmp: PathBuf,
    out: PathBuf,
    generation: u64,
}

impl Staging {
    /// Create the temporary directory beside `out`.
    pub fn begin(out: &Path, generation: u64) -> Result<Staging, PublishError> {
        if out.exists() {
            return Err(PublishError::Exists { path: out.to_path_buf() });
        }
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_at(parent))?;
        let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot".into());
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_at(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
        Ok(Staging { tmp, out: out.to_path_buf(), generation })
    }

    /// Write one enveloped file (payload + footer) and fsync it.
    pub fn write_sealed(&self, file: &str, payload: &[u8], kind: FileKind, count: u64) -> Result<FileEntry, PublishError> {
        let path = self.tmp.join(file);
        let footer = footer_bytes(payload, kind, self.generation);
        let mut f = File::create(&path).map_err(io_at(&path))?;
        f.write_all(payload).map_err(io_at(&path))?;
        f.write_all(&footer).map_err(io_at(&path))?;
        f.sync_all().map_err(io_at(&path))?;
        let checksum = u64::from_le_bytes(footer[32..40].try_into().unwrap_or([0; 8]));
        Ok(FileEntry { file: file.to_string(), bytes: (payload.len() + footer.len()) as u64, checksum: format!("{checksum:016x}"), count })
    }

    /// Write a plain file that the snapshot checks (the anomaly report):
    /// its entry holds the xxh3-64 of the whole file.
    pub fn write_checked(&self, file: &str, bytes: &[u8], count: u64) -> Result<FileEntry, PublishError> {
        self.write_plain(file, bytes)?;
        let checksum = xxhash_rust::xxh3::xxh3_64(bytes);
        Ok(FileEntry { file: file.to_string(), bytes: bytes.len() as u64, checksum: format!("{checksum:016x}"), count })
    }

    /// Write a plain file (reports) and fsync it.
    pub fn write_plain(&self, file: &str, bytes: &[u8]) -> Result<PathBuf, PublishError> {
        let path = self.tmp.join(file);
        let mut f = File::create(&path).map_err(io_at(&path))?;
        f.write_all(bytes).map_err(io_at(&path))?;
        f.sync_all().map_err(io_at(&path))?;
        Ok(self.out.join(file))
    }

    /// Write the manifest last (with its checksum, `Manifest::encode`),
    /// fsync the directory, rename it into place.
    pub fn publish(self, manifest: &Manifest) -> Result<PathBuf, PublishError> {
        self.write_plain(MANIFEST_FILE, &manifest.encode())?;
        File::open(&self.tmp).and_then(|d| d.sync_all()).map_err(io_at(&self.tmp))?;
        if self.out.exists() {
            return Err(PublishError::Exists { path: self.out.clone() });
        }
        fs::rename(&self.tmp, &self.out).map_err(io_at(&self.out))?;
        if let Some(parent) = self.out.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent).and_then(|d| d.sync_all()).map_err(io_at(parent))?;
        }
        Ok(self.out)
    }

    /// Remove the temporary directory after a failure.
    pub fn abandon(self) {
        let _ = fs::remove_dir_all(&self.tmp);
    }
}
