//! A node following the delta stream (`contract.md` section 2b).
//!
//! With `[feed]` in `eligd.toml` the node reads the JetStream stream in
//! order through its own durable consumer and applies each batch through
//! the path `elig delta` takes ([`Engine::apply`]: validated, appended to the
//! delta log and fsynced, published to the overlay atomically), and
//! acknowledges the message only then. The node's delta log is the truth:
//! the consumer is positioned from it on every start, a redelivered batch is
//! acknowledged without effect, and nothing is skipped. A gap, or a batch the
//! engine refuses, stops the feed with an alarm (status, metrics, log) while
//! the node keeps answering at its last good seq; every node reaches the same
//! verdict on the same bytes, so the tier stops together. The operator
//! replaces the refused batch in the stream (`eligd publish --replace`), and
//! every node, which looks the batch it needs up by its subject, resumes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use elig_engine::engine::{DeltaError, Engine};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use elig_wire::report::{FeedState, FeedStatus};

use crate::ops::applier::Lane;
use crate::ops::jetstream::{find_batch, last_batch, StreamNames};

/// `[feed]` in `eligd.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    #[serde(flatten)]
    pub names: StreamNames,
    /// This node's durable consumer: one name per node.
    pub consumer: String,
    /// `GET /ready` answers 200 while the node is at most this many batches
    /// behind the stream.
    #[serde(default = "default_ready_max_lag")]
    pub ready_max_lag: u64,
    /// Follow the snapshot store: join from it with no local snapshot, and
    /// download each newer generation.
    #[serde(default = "yes")]
    pub follow_store: bool,
    /// The snapshot store bucket (`elig-loader publish --bucket`).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// Where downloaded generations go, one directory each (default:
    /// `store` beside the delta log).
    #[serde(default)]
    pub store_dir: Option<std::path::PathBuf>,
    /// Swap to a newer generation as soon as it is downloaded and verified;
    /// `false`: wait for `elig swap` (the status names the directory).
    #[serde(default = "yes")]
    pub auto_swap: bool,
    /// How often the bucket is listed for a newer generation.
    #[serde(default = "default_store_poll_ms")]
    pub store_poll_ms: u64,
    /// Downloaded generations older than the live one that `store_dir`
    /// keeps; older ones are deleted once a newer one is live (a national
    /// generation is tens of GB: unpruned, nightly downloads fill the disk).
    #[serde(default = "default_store_keep_older")]
    pub store_keep_older: usize,
}

fn default_ready_max_lag() -> u64 {
    2
}

fn yes() -> bool {
    true
}

fn default_bucket() -> String {
    elig_loader::store::BUCKET.to_string()
}

fn default_store_poll_ms() -> u64 {
    2000
}

fn default_store_keep_older() -> usize {
    1
}

impl FeedConfig {
    /// The defaults for the stream `names` and this node's `consumer`.
    pub fn new(names: StreamNames, consumer: &str) -> FeedConfig {
        FeedConfig {
            names,
            consumer: consumer.to_string(),
            ready_max_lag: default_ready_max_lag(),
            follow_store: true,
            bucket: default_bucket(),
            store_dir: None,
            auto_swap: true,
            store_poll_ms: default_store_poll_ms(),
            store_keep_older: default_store_keep_older(),
        }
    }

    /// Where downloaded generations go, for a node with this delta log.
    pub fn store_dir(&self, delta_log: &std::path::Path) -> std::path::PathBuf {
        match &self.store_dir {
            Some(d) => d.clone(),
            None => delta_log.parent().unwrap_or(std::path::Path::new(".")).join("store"),
        }
    }
}

/// A running feed; `status` is cheap (one lock, no I/O).
#[derive(Debug)]
pub struct Feed {
    config: FeedConfig,
    status: Mutex<FeedStatus>,
    /// `status.joined`, read on every request without the lock.
    joined: AtomicBool,
    applier: crate::ops::applier::Applier,
}

/// How long one pull waits for new batches before the feed looks around.
const POLL: Duration = Duration::from_millis(500);
/// Batches asked for per pull.
const PULL_BATCH: usize = 64;

impl Feed {
    /// Start following in the background until `stop` is cancelled; the
    /// live snapshot came from `source` (`local <dir>`, `store ...`).
    pub fn spawn(engine: Arc<Engine>, config: FeedConfig, source: String, stop: CancellationToken) -> Arc<Feed> {
        let status = FeedStatus {
            stream: config.names.stream.clone(),
            consumer: config.consumer.clone(),
            applied_seq: engine.pin().view().delta_seq,
            snapshot_source: source,
            store: elig_wire::report::StoreStatus {
                bucket: if config.follow_store { config.bucket.clone() } else { String::new() },
                auto_swap: config.auto_swap,
                ..Default::default()
            },
            ..FeedStatus::default()
        };
        let applier = crate::ops::applier::Applier::start(engine.clone());
        let feed = Arc::new(Feed { config, status: Mutex::new(status), joined: AtomicBool::new(false), applier });
        tokio::spawn(run(feed.clone(), engine, stop));
        feed
    }

    pub fn status(&self) -> FeedStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What keeps this node from answering lookups, if anything: it has not
    /// yet caught up with the stream since it started.
    pub fn not_ready(&self) -> Option<String> {
        if self.joined.load(Ordering::Acquire) {
            return None;
        }
        let s = self.status();
        let of = if s.stream_seq > 0 { s.stream_seq.to_string() } else { "?".into() };
        Some(format!("this node is joining: replaying the delta stream (applied batch {} of {of} so far)", s.applied_seq))
    }

    pub fn config(&self) -> &FeedConfig {
        &self.config
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut FeedStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let was = s.joined;
        f(&mut s);
        // Joined once the stream said it has nothing newer, or stopped at a
        // refused batch: then the node answers at its last good seq, as
        // every other node does.
        s.joined |= s.state == FeedState::Stopped;
        if s.joined && !was {
            self.joined.store(true, Ordering::Release);
            tracing::info!(applied_seq = s.applied_seq, "delta feed: caught up with the stream; the node answers lookups");
        }
        s.ready = s.joined && s.state == FeedState::Following && s.lag_batches <= self.config.ready_max_lag;
        crate::ops::metrics::feed(&s);
    }
}

async fn run(feed: Arc<Feed>, engine: Arc<Engine>, stop: CancellationToken) {
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = follow(&feed, &engine) => r,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, stream = %feed.config.names.stream, "delta feed: retrying in 1 s");
            feed.update(|s| {
                s.state = FeedState::Connecting;
                s.alarm = Some(e);
            });
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A batch this node will not apply: the feed stops there.
struct Refused {
    /// The stream sequence of the refused message.
    at: u64,
    reason: String,
}

/// Follow the stream until an error that needs a new connection.
async fn follow(feed: &Feed, engine: &Arc<Engine>) -> Result<(), String> {
    let names = &feed.config.names;
    let js = crate::ops::jetstream::connect(names).await.map_err(|e| e.to_string())?;
    let mut stream = match js.get_stream(&names.stream).await {
        Ok(s) => s,
        Err(e) => {
            use async_nats::jetstream::context::GetStreamErrorKind;
            use async_nats::jetstream::ErrorCode;
            // No stream yet (a new tier, before its first publish): nothing
            // to replay, so the node follows an empty stream, caught up and
            // ready, and looks again in a second.
            if let GetStreamErrorKind::JetStream(j) = e.kind() {
                if j.error_code() == ErrorCode::STREAM_NOT_FOUND {
                    let applied = applied(engine);
                    feed.update(|s| {
                        (s.state, s.alarm, s.joined) = (FeedState::Following, None, true);
                        (s.applied_seq, s.stream_seq, s.lag_batches, s.lag_secs) = (applied, applied, 0, 0);
                    });
                    return Ok(());
                }
            }
            return Err(format!("stream '{}': {e}", names.stream));
        }
    };
    feed.update(|s| {
        s.state = FeedState::Following;
        s.alarm = None;
    });
    loop {
        match consume(feed, engine, &js, &mut stream).await? {
            None => continue, // repositioned
            Some(refused) => {
                tracing::error!(reason = %refused.reason, "delta feed stopped: the node answers at its last good seq until the batch is replaced in the stream");
                feed.update(|s| {
                    s.state = FeedState::Stopped;
                    s.alarm = Some(refused.reason.clone());
                });
                wait_for_replacement(feed, engine, &stream, refused.at).await?;
                tracing::info!("delta feed: the refused batch was replaced; resuming");
                feed.update(|s| {
                    s.state = FeedState::Following;
                    s.alarm = None;
                });
            }
        }
    }
}

fn applied(engine: &Engine) -> u64 {
    engine.pin().view().delta_seq
}

/// Position this node's durable consumer at the next batch it needs and
/// apply what arrives. `None` when the consumer must be positioned again
/// (the next batch sits earlier in the stream, after a replacement).
async fn consume(
    feed: &Feed,
    engine: &Arc<Engine>,
    js: &jetstream::Context,
    stream: &mut stream::Stream,
) -> Result<Option<Refused>, String> {
    let names = &feed.config.names;
    let next = applied(engine) + 1;
    let start = match find_batch(stream, names, next).await? {
        Some(m) => m.sequence,
        None => last_batch(stream, names).await.map_err(|e| e.to_string())?.1 + 1,
    };
    // The durable is re-made on each positioning: the node's log, not the
    // consumer's memory, says where to start.
    let _ = stream.delete_consumer(&feed.config.consumer).await;
    let consumer: jetstream::consumer::Consumer<pull::Config> = js
        .create_consumer_on_stream(
            pull::Config {
                durable_name: Some(feed.config.consumer.clone()),
                filter_subject: format!("{}.>", names.subject_prefix),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: PULL_BATCH as i64,
                ..Default::default()
            },
            &names.stream,
        )
        .await
        .map_err(|e| format!("consumer '{}': {e}", feed.config.consumer))?;
    let mut position = start;
    // One continuous pull: batches are delivered as they enter the stream
    // (a fetch that returns at once when nothing is there would poll NATS
    // in a loop). Every POLL without a batch, the node looks around.
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(POLL * 10)
        .heartbeat(POLL * 4)
        .messages()
        .await
        .map_err(|e| format!("consumer '{}': {e}", feed.config.consumer))?;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut got = 0u64;
    loop {
        let msg = tokio::select! {
            next = messages.next() => next.ok_or_else(|| format!("consumer '{}': its message stream ended", feed.config.consumer))?,
            _ = tick.tick() => {
                if std::mem::take(&mut got) == 0 {
                    if let Some(reposition) = look_around(feed, engine, stream, position).await? {
                        return Ok(reposition);
                    }
                }
                continue;
            }
        };
        let msg = msg.map_err(|e| format!("consumer '{}': {e}", feed.config.consumer))?;
        got += 1;
        let (at, pending, published_ms) = match msg.info() {
            Ok(i) => (i.stream_sequence, i.pending, (i.published.unix_timestamp_nanos() / 1_000_000) as i64),
            Err(e) => return Err(format!("message info: {e}")),
        };
        position = at + 1;
        let expected = applied(engine) + 1;
        let Some(seq) = names.seq_of(&msg.subject) else {
            return Ok(Some(Refused { at, reason: format!("stream message {at} has subject '{}', not a batch", msg.subject) }));
        };
        if seq > expected {
            // The next batch may sit later in the stream (replaced): look it up first.
            if find_batch(stream, names, expected).await?.is_some_and(|m| m.sequence != at) {
                return Ok(None);
            }
            return Ok(Some(Refused {
                at,
                reason: format!(
                    "sequence gap: the stream holds batch {seq} at {at} but this node needs batch {expected}; nothing was skipped"
                ),
            }));
        }
        // Late (more behind it, or long in the stream): at the answers' priority.
        let age = chrono::Utc::now().timestamp_millis() - published_ms;
        let lane = Lane::of(pending, Duration::from_millis(age.max(0) as u64));
        let result = feed.applier.apply(msg.payload.clone(), lane).await?;
        match result {
            Ok(ack) => {
                // Counted before the ack: an ack lost with a NATS server is redelivered as a duplicate.
                let now = chrono::Utc::now().timestamp_millis();
                feed.update(|s| {
                    s.applied_seq = applied(engine);
                    s.stream_seq = s.applied_seq + pending;
                    s.lag_batches = pending;
                    s.joined |= pending == 0;
                    s.lag_secs = if pending == 0 { 0 } else { ((now - published_ms) / 1000).max(0) as u64 };
                    if !ack.duplicate {
                        s.applied_from_stream += 1;
                    }
                });
                // Not waiting for the server to confirm the ack: the node's
                // log is the truth, so an ack lost on the way is only a
                // redelivery, acknowledged as a duplicate without effect.
                // (Waiting for it cost a replicated fsync per batch.)
                msg.ack().await.map_err(|e| format!("ack of batch {seq}: {e}"))?;
            }
            Err(DeltaError::Log { seq, source }) => {
                // This node's disk, not the batch: never acknowledged, retried.
                return Err(format!("batch {seq} not applied: delta log: {source}"));
            }
            Err(e) => return Ok(Some(Refused { at, reason: e.to_string() })),
        }
    }
}

/// No batch for a while: caught up, unless the next batch was put earlier
/// in the stream (a replacement: `Some(None)`, position again). Refreshes
/// the lag from the stream's last batch.
async fn look_around(feed: &Feed, engine: &Engine, stream: &mut stream::Stream, position: u64) -> Result<Option<Option<Refused>>, String> {
    let names = &feed.config.names;
    let expected = applied(engine) + 1;
    if let Some(m) = find_batch(stream, names, expected).await? {
        if m.sequence < position {
            return Ok(Some(None));
        }
    }
    let last = last_batch(stream, names).await.map_err(|e| e.to_string())?.0;
    feed.update(|s| {
        s.applied_seq = expected - 1;
        s.stream_seq = last.max(expected - 1);
        s.lag_batches = s.stream_seq - s.applied_seq;
        s.joined |= s.lag_batches == 0;
        if s.lag_batches == 0 {
            s.lag_secs = 0;
        }
    });
    Ok(None)
}

/// Stopped: poll until the batch this node needs is in the stream anew
/// (another message than the refused one).
async fn wait_for_replacement(feed: &Feed, engine: &Engine, stream: &stream::Stream, refused: u64) -> Result<(), String> {
    loop {
        tokio::time::sleep(POLL).await;
        let expected = applied(engine) + 1;
        if let Some(m) = find_batch(stream, &feed.config.names, expected).await? {
            if m.sequence != refused {
                return Ok(());
            }
        }
    }
}
