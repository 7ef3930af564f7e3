//! The snapshot store (`contract.md` section 2b): compiled snapshots in a
//! NATS JetStream object store bucket that every node reads.
//!
//! A snapshot is stored as one object per file, named
//! `<generation>/<file>` (`100/persons-00000.rkyv`, `100/manifest.json`),
//! each with its xxh3 and length from the manifest in the object's
//! metadata. The manifest goes last, so a generation whose manifest is in
//! the bucket is complete. A generation is immutable: publishing the same
//! snapshot again is a no-op, another snapshot under a published generation
//! is refused. A download is verified like any snapshot before it is
//! renamed into place, so a corrupt object is refused, never served.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, object_store};
use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::manifest::{Manifest, ANOMALIES_FILE, MANIFEST_FILE};
use elig_engine::snapshot::{Snapshot, SnapshotError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The default bucket name.
pub const BUCKET: &str = "ELIG_SNAPSHOTS";
const XXH3: &str = "xxh3";
const BYTES: &str = "bytes";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("NATS {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("snapshot store bucket {bucket}: {message}")]
    Bucket { bucket: String, message: String },
    #[error("not published: {0}")]
    Invalid(#[from] SnapshotError),
    #[error(
        "generation {generation} is already in bucket {bucket} with another manifest (checksum {stored}, this one {offered}); a generation is never replaced: compile with a new --generation"
    )]
    Conflict { bucket: String, generation: u64, stored: String, offered: String },
    #[error("object {object} in bucket {bucket}: {message}")]
    Object { bucket: String, object: String, message: String },
    #[error("bucket {bucket} holds no snapshot{which}")]
    NotFound { bucket: String, which: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("downloaded generation {generation} refused: {source}")]
    Corrupt { generation: u64, source: SnapshotError },
}

/// What `publish` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub generation: u64,
    pub files: usize,
    pub bytes: u64,
    /// The generation was already there, the same snapshot: nothing sent.
    pub already: bool,
}

/// A bucket of the snapshot store.
#[derive(Clone)]
pub struct Store {
    bucket: String,
    objects: object_store::ObjectStore,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("bucket", &self.bucket).finish()
    }
}

/// Verify a snapshot directory off the async threads.
async fn verified(dir: &Path) -> Result<Manifest, SnapshotError> {
    let dir = dir.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&dir).map(|s| s.manifest().clone())).await;
    loaded.unwrap_or_else(|e| Err(SnapshotError::Io { path: PathBuf::from("verify"), source: std::io::Error::other(e) }))
}

/// Connect and open the bucket, creating it (file-backed, `replicas`
/// copies) when `create` says so and it does not exist.
pub async fn open(servers: &str, bucket: &str, create: Option<usize>) -> Result<Store, StoreError> {
    let objects = open_objects(servers, bucket, create).await?;
    Ok(Store { bucket: bucket.to_string(), objects })
}

async fn open_objects(servers: &str, bucket: &str, create: Option<usize>) -> Result<object_store::ObjectStore, StoreError> {
    let addrs: Vec<String> = servers.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(addrs)
        .await
        .map_err(|e| StoreError::Connect { servers: servers.to_string(), message: e.to_string() })?;
    let js = jetstream::new(client);
    // JetStream answers 503 while its servers elect a leader (just after a
    // cluster starts or loses a server): retried for a bounded time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let attempt = get_or_create(&js, bucket, create).await;
        match attempt {
            Err(e) if e.to_string().contains("temporarily unavailable") && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

async fn get_or_create(js: &jetstream::Context, bucket: &str, create: Option<usize>) -> Result<object_store::ObjectStore, StoreError> {
    let found = js.get_object_store(bucket).await;
    let Some(replicas) = create else {
        return found.map_err(|e| StoreError::Bucket { bucket: bucket.to_string(), message: e.to_string() });
    };
    if let Ok(store) = found {
        return Ok(store);
    }
    let config = object_store::Config {
        bucket: bucket.to_string(),
        description: Some("elig snapshots, one object per file: <generation>/<file>".into()),
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    js.create_object_store(config).await.map_err(|e| StoreError::Bucket { bucket: bucket.to_string(), message: e.to_string() })
}

fn object_error(store: &Store, object: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Object { bucket: store.bucket.clone(), object: object.to_string(), message: e.to_string() }
}

/// Every file of a snapshot with its manifest entry: (file, bytes, xxh3).
fn files(m: &Manifest) -> Vec<(String, u64, String)> {
    let mut all: Vec<(String, u64, String)> = m.shards.iter().map(|e| (e.file.clone(), e.bytes, e.checksum.clone())).collect();
    all.extend(m.indexes.iter().map(|(_, e)| (e.file.clone(), e.bytes, e.checksum.clone())));
    all.push((ANOMALIES_FILE.to_string(), m.anomalies.bytes, m.anomalies.checksum.clone()));
    all
}

/// Upload a verified snapshot directory, manifest last.
pub async fn publish(store: &Store, dir: &Path) -> Result<Published, StoreError> {
    let m = verified(dir).await?;
    let manifest_name = format!("{}/{MANIFEST_FILE}", m.generation);
    if let Ok(info) = store.objects.info(&manifest_name).await {
        let stored = info.metadata.get(XXH3).cloned().unwrap_or_default();
        if stored == m.checksum {
            return Ok(Published { generation: m.generation, files: files(&m).len() + 1, bytes: 0, already: true });
        }
        return Err(StoreError::Conflict { bucket: store.bucket.clone(), generation: m.generation, stored, offered: m.checksum.clone() });
    }
    let mut bytes = 0;
    let mut all = files(&m);
    let manifest_len = std::fs::metadata(dir.join(MANIFEST_FILE)).map(|md| md.len()).unwrap_or(0);
    all.push((MANIFEST_FILE.to_string(), manifest_len, m.checksum.clone()));
    for (file, len, checksum) in &all {
        let path = dir.join(file);
        let mut f = tokio::fs::File::open(&path).await.map_err(|source| StoreError::Io { path: path.clone(), source })?;
        let name = format!("{}/{file}", m.generation);
        let meta = object_store::ObjectMetadata {
            name: name.clone(),
            metadata: HashMap::from([(XXH3.to_string(), checksum.clone()), (BYTES.to_string(), len.to_string())]),
            chunk_size: Some(1 << 20),
            ..Default::default()
        };
        store.objects.put(meta, &mut f).await.map_err(|e| object_error(store, &name, e))?;
        bytes += len;
    }
    Ok(Published { generation: m.generation, files: all.len(), bytes, already: false })
}

/// The generations whose manifest is in the bucket (complete ones), sorted.
pub async fn generations(store: &Store) -> Result<Vec<u64>, StoreError> {
    use futures::StreamExt;
    let bucket_error = |e: &dyn std::fmt::Display| StoreError::Bucket { bucket: store.bucket.clone(), message: e.to_string() };
    let mut list = store.objects.list().await.map_err(|e| bucket_error(&e))?;
    let mut found = Vec::new();
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| bucket_error(&e))?;
        if let Some((generation, file)) = info.name.split_once('/') {
            if file == MANIFEST_FILE && !info.deleted {
                found.extend(generation.parse::<u64>().ok());
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

async fn get(store: &Store, name: &str) -> Result<Vec<u8>, StoreError> {
    let mut object = store.objects.get(name).await.map_err(|e| object_error(store, name, e))?;
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.map_err(|e| object_error(store, name, e))?;
    Ok(bytes)
}

/// Download a generation (the newest when `None`) into `<parent>/<generation>`
/// and verify it; a directory already there is verified and reused. The
/// files land in a temporary directory first, so a failed download leaves
/// nothing that looks like a snapshot.
pub async fn download(store: &Store, generation: Option<u64>, parent: &Path) -> Result<PathBuf, StoreError> {
    let newest = || StoreError::NotFound { bucket: store.bucket.clone(), which: String::new() };
    let generation = match generation {
        Some(g) => g,
        None => *generations(store).await?.last().ok_or_else(newest)?,
    };
    let out = parent.join(generation.to_string());
    if out.exists() {
        verified(&out).await.map_err(|source| StoreError::Corrupt { generation, source })?;
        return Ok(out);
    }
    let manifest_name = format!("{generation}/{MANIFEST_FILE}");
    if store.objects.info(&manifest_name).await.is_err() {
        return Err(StoreError::NotFound { bucket: store.bucket.clone(), which: format!(" of generation {generation}") });
    }
    let manifest_bytes = get(store, &manifest_name).await?;
    let m = Manifest::decode(&manifest_bytes, FORMAT_VERSION).map_err(|e| object_error(store, &manifest_name, e))?;
    let tmp = parent.join(format!(".{generation}.download-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    tokio::fs::create_dir_all(&tmp).await.map_err(io(&tmp))?;
    let mut all = files(&m);
    all.push((MANIFEST_FILE.to_string(), manifest_bytes.len() as u64, m.checksum.clone()));
    for (file, _, _) in &all {
        let bytes = if file == MANIFEST_FILE { manifest_bytes.clone() } else { get(store, &format!("{generation}/{file}")).await? };
        let path = tmp.join(file);
        let mut f = tokio::fs::File::create(&path).await.map_err(io(&path))?;
        f.write_all(&bytes).await.map_err(io(&path))?;
        f.sync_all().await.map_err(io(&path))?;
    }
    if let Err(source) = verified(&tmp).await {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        return Err(StoreError::Corrupt { generation, source });
    }
    tokio::fs::rename(&tmp, &out).await.map_err(io(&out))?;
    Ok(out)
}
