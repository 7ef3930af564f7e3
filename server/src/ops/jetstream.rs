//! The delta stream on NATS JetStream (`contract.md` section 2b): names,
//! the stream's settings, and the publisher's rules. One stream message per
//! batch, its body the batch file byte for byte, on the subject
//! `<prefix>.<seq>`, with `Nats-Msg-Id` the seq (JetStream drops a repeat
//! within its duplicate window) and `Nats-Expected-Last-Sequence` the
//! stream's last sequence as the publisher read it, so a second publisher
//! cannot interleave. `eligd publish` and the nodes' feed (`feed.rs`) both
//! use this module.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use elig_engine::delta::{parse_batch, Batch, Digest};

/// A JetStream connection and the delta stream, for callers without async-nats of their own.
pub type Context = jetstream::Context;
pub type Stream = stream::Stream;

/// The stream's name, its subject prefix and its replicas, as an operator
/// configures them (eligd's `[feed]`, `eligd publish`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamNames {
    /// NATS server URLs, e.g. `nats://127.0.0.1:4222`; any of a cluster's.
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
}

pub const DEFAULT_STREAM: &str = "ELIG_DELTAS";
pub const DEFAULT_PREFIX: &str = "elig.deltas";
/// Replicas of a stream `eligd publish` creates: a three-server cluster.
pub const DEFAULT_REPLICAS: usize = 3;

fn default_stream() -> String {
    DEFAULT_STREAM.into()
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.into()
}

impl StreamNames {
    pub fn new(servers: Vec<String>) -> StreamNames {
        StreamNames { servers, stream: default_stream(), subject_prefix: default_prefix() }
    }

    /// The subject of batch `seq`.
    pub fn subject(&self, seq: u64) -> String {
        format!("{}.{seq}", self.subject_prefix)
    }

    /// The batch seq a subject names, if it is one of ours.
    pub fn seq_of(&self, subject: &str) -> Option<u64> {
        subject.strip_prefix(&self.subject_prefix)?.strip_prefix('.')?.parse().ok()
    }

    /// An error of this stream.
    fn error(&self, e: impl std::fmt::Display) -> PublishError {
        PublishError::Stream { stream: self.stream.clone(), message: e.to_string() }
    }

    /// The stream's settings: file storage, `replicas` copies, every batch
    /// kept (a node that joins replays from its snapshot's seq).
    pub fn config(&self, replicas: usize) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("cannot reach NATS at {servers}: {message}")]
    Connect { servers: String, message: String },
    #[error("stream '{stream}': {message}")]
    Stream { stream: String, message: String },
    #[error("{0}; nothing was published")]
    Batch(#[from] elig_engine::delta::BatchError),
    #[error("batch {seq} refused: the stream's last batch is {last}, so the next one must be {}; nothing was published", last + 1)]
    Gap { seq: u64, last: u64 },
    #[error(
        "batch {seq} refused: the stream already holds a different batch {seq} (digest {stream_digest}, this one {digest}); nothing was published"
    )]
    Different { seq: u64, digest: String, stream_digest: String },
    #[error("batch {seq}: publish failed: {message}")]
    Publish { seq: u64, message: String },
}

/// What publishing one batch did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub seq: u64,
    /// The stream sequence that holds the batch.
    pub stream_sequence: u64,
    /// The stream already held this very batch: nothing was added.
    pub duplicate: bool,
    pub digest: String,
}

pub async fn connect(names: &StreamNames) -> Result<jetstream::Context, PublishError> {
    let opts = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    let client = opts
        .connect(names.servers.clone())
        .await
        .map_err(|e| PublishError::Connect { servers: names.servers.join(","), message: e.to_string() })?;
    Ok(jetstream::new(client))
}

/// The stream, created with `replicas` copies if it does not exist.
pub async fn ensure_stream(js: &jetstream::Context, names: &StreamNames, replicas: usize) -> Result<stream::Stream, PublishError> {
    js.get_or_create_stream(names.config(replicas)).await.map_err(|e| names.error(e))
}

/// The highest batch seq in the stream, and the stream's last sequence (what
/// the next publish expects); `(0, 0)` when empty.
///
/// A replacement (`replace`) appends a batch at or under the highest, so
/// the newest message may be one: walking back over deleted messages and
/// replacements (their message id is `<seq>-<digest>`) to the newest plain
/// publish finds the highest batch, which a plain publish always is.
pub async fn last_batch(stream: &mut stream::Stream, names: &StreamNames) -> Result<(u64, u64), PublishError> {
    let last = stream.info().await.map_err(|e| names.error(e))?.state.last_sequence;
    let mut highest = 0;
    let mut at = last;
    while at > 0 {
        if let Ok(m) = stream.get_raw_message(at).await {
            let seq = names.seq_of(&m.subject).unwrap_or(0);
            highest = highest.max(seq);
            let replacement = m.headers.get("Nats-Msg-Id").is_some_and(|id| id.as_str().contains('-'));
            if !replacement {
                break;
            }
        }
        at -= 1;
    }
    Ok((highest, last))
}

/// The stream message holding batch `seq` (the newest, if it was replaced).
pub async fn find_batch(
    stream: &stream::Stream,
    names: &StreamNames,
    seq: u64,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>, String> {
    match stream.get_last_raw_message_by_subject(&names.subject(seq)).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Publish one batch file: its lines checked as rows first (one bad line
/// refuses it before any node sees it), then in seq order after the
/// stream's last batch. The same batch again is reported as a duplicate; a
/// different batch under a seq the stream holds is refused.
pub async fn publish(
    js: &jetstream::Context,
    stream: &mut stream::Stream,
    names: &StreamNames,
    text: &[u8],
) -> Result<Published, PublishError> {
    Publisher::new(stream, names).await?.publish(js, stream, names, text).await
}

/// Publishes batches in seq order, reading the stream's last batch once and
/// then keeping it from each acknowledgement: one round trip per batch
/// instead of three. Each batch is checked as rows, sent with the stream's
/// last sequence as the expected one (another publisher in between makes
/// JetStream refuse it), and the stream is read again whenever what this
/// publisher knows may be stale (a gap, a batch dropped by its id, an error).
#[derive(Debug, Clone, Copy)]
pub struct Publisher {
    /// The stream's highest batch and its last sequence ([`last_batch`]).
    last: (u64, u64),
}

impl Publisher {
    pub async fn new(stream: &mut stream::Stream, names: &StreamNames) -> Result<Publisher, PublishError> {
        Ok(Publisher { last: last_batch(stream, names).await? })
    }

    pub async fn publish(
        &mut self,
        js: &jetstream::Context,
        stream: &mut stream::Stream,
        names: &StreamNames,
        text: &[u8],
    ) -> Result<Published, PublishError> {
        let batch = parse_batch(text)?;
        if batch.seq > self.last.0 + 1 {
            // Another publisher may have gone on: read the stream before calling it a gap.
            self.last = last_batch(stream, names).await?;
        }
        let (last, after) = self.last;
        if batch.seq <= last {
            return held(stream, names, &batch, last).await;
        }
        if batch.seq != last + 1 {
            return Err(PublishError::Gap { seq: batch.seq, last });
        }
        match send(js, names, batch.seq, &batch.seq.to_string(), after, text, batch.digest.to_string()).await {
            Ok(p) if p.duplicate => {
                // JetStream dropped it by its id: another publisher put batch
                // `seq` in since. The same bytes, or refused as different.
                self.last = last_batch(stream, names).await?;
                held(stream, names, &batch, self.last.0).await
            }
            Ok(p) => {
                self.last = (p.seq, p.stream_sequence);
                Ok(p)
            }
            Err(e) => {
                // Another publisher, or a lost acknowledgement: read the stream again.
                self.last = last_batch(stream, names).await?;
                Err(e)
            }
        }
    }
}

/// `batch`, whose seq the stream already holds (its highest is `last`): a
/// duplicate when the stream holds the same bytes, else refused.
async fn held(stream: &stream::Stream, names: &StreamNames, batch: &Batch, last: u64) -> Result<Published, PublishError> {
    let (seq, digest) = (batch.seq, batch.digest.to_string());
    let Some(held) = find_batch(stream, names, seq).await.map_err(|m| names.error(m))? else {
        return Err(PublishError::Gap { seq, last });
    };
    let stream_digest = Digest::of_batch(&held.payload).map(|d| d.to_string()).unwrap_or_else(|| "not UTF-8".into());
    if stream_digest != digest {
        return Err(PublishError::Different { seq, digest, stream_digest });
    }
    Ok(Published { seq, stream_sequence: held.sequence, duplicate: true, digest })
}

/// The operator's way past a batch every node refused: delete the stream
/// message(s) holding batch `seq` and publish `text` (batch `seq` again,
/// corrected) in their place. Nodes stopped at `seq` find it by its subject
/// and resume; nodes never skip a batch.
pub async fn replace(
    js: &jetstream::Context,
    stream: &mut stream::Stream,
    names: &StreamNames,
    text: &[u8],
) -> Result<Published, PublishError> {
    let batch = parse_batch(text)?;
    let seq = batch.seq;
    let digest = batch.digest.to_string();
    let (last, last_stream_seq) = last_batch(stream, names).await?;
    if seq > last {
        return Err(PublishError::Gap { seq, last });
    }
    while let Some(old) = find_batch(stream, names, seq).await.map_err(|m| names.error(m))? {
        stream.delete_message(old.sequence).await.map_err(|e| names.error(e))?;
    }
    // A new id: the original's is still inside the duplicate window.
    let id = format!("{seq}-{}", &digest[..16]);
    send(js, names, seq, &id, last_stream_seq, text, digest).await
}

/// Put batch `seq` on its subject as message `id`, accepted only while the
/// stream's last sequence is still `after` (no other publisher in between).
async fn send(
    js: &jetstream::Context,
    names: &StreamNames,
    seq: u64,
    id: &str,
    after: u64,
    text: &[u8],
    digest: String,
) -> Result<Published, PublishError> {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    headers.insert("Nats-Expected-Last-Sequence", after.to_string().as_str());
    let failed = |e: &dyn std::fmt::Display| PublishError::Publish { seq, message: e.to_string() };
    let ack = js.publish_with_headers(names.subject(seq), headers, Bytes::copy_from_slice(text)).await.map_err(|e| failed(&e))?;
    let ack = ack.await.map_err(|e| failed(&e))?;
    Ok(Published { seq, stream_sequence: ack.sequence, duplicate: ack.duplicate, digest })
}
