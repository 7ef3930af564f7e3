//! The publisher's checks that need a node (`eligd publish --node`,
//! `--wait`): a dry run of a batch on a node that stands at the stream's
//! last batch, since the references and keys a batch needs can only be
//! checked against state; and waiting until nodes report a batch applied
//! (their durable consumers acknowledge a message only once their own delta
//! log holds it).

use std::time::{Duration, Instant};

use elig_client::{Client, ClientError};
use elig_wire::frame::{encode, Kind};
use elig_wire::report::DeltaCheck;
use futures::StreamExt;

use crate::ops::jetstream::{last_batch, StreamNames};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeCheckError {
    #[error(
        "the node checking the batch is at batch {node_seq} but the stream holds batch {stream_seq}; it did not catch up within {waited:?}: wait for it or name another node with --node"
    )]
    NodeBehind { node_seq: u64, stream_seq: u64, waited: Duration },
    #[error("refused by the node's dry run: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the node checking the batch: {0}")]
    Node(#[from] ClientError),
    #[error("{0}")]
    Stream(String),
    #[error("only {applied} of {wanted} nodes applied batch {seq} (stream message {at}) within {waited:?}")]
    NotApplied { seq: u64, at: u64, wanted: usize, applied: usize, waited: Duration },
}

/// How long the checking node may take to reach the stream's last batch.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Check `text` on `node` against its state at the stream's last batch;
/// nothing is applied anywhere.
pub async fn dry_run(
    node: &Client,
    stream: &mut crate::ops::jetstream::Stream,
    names: &StreamNames,
    text: &[u8],
) -> Result<DeltaCheck, NodeCheckError> {
    let (stream_seq, _) = last_batch(stream, names).await.map_err(|e| NodeCheckError::Stream(e.to_string()))?;
    let started = Instant::now();
    loop {
        let node_seq = node.status().await?.engine.delta_seq;
        if node_seq >= stream_seq {
            break;
        }
        if started.elapsed() >= CATCH_UP {
            return Err(NodeCheckError::NodeBehind { node_seq, stream_seq, waited: CATCH_UP });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frames = node.exchange_raw(&encode(Kind::DeltaCheck, text)).await?;
    let Some(first) = frames.first() else {
        return Err(NodeCheckError::Node(ClientError::Protocol("the node answered the dry run with nothing".into())));
    };
    match first.kind {
        Kind::Report => serde_json::from_slice(&first.payload)
            .map_err(|e| NodeCheckError::Node(ClientError::Protocol(format!("the node's dry-run report: {e}")))),
        Kind::Error => {
            let body: elig_wire::request::ErrorBody = serde_json::from_slice(&first.payload)
                .map_err(|e| NodeCheckError::Node(ClientError::Protocol(format!("the node's refusal: {e}"))))?;
            Err(NodeCheckError::Refused { code: body.code, message: body.message })
        }
        other => Err(NodeCheckError::Node(ClientError::Protocol(format!("a '{}' frame answered the dry run", other.name())))),
    }
}

/// Wait until `wanted` of the stream's durable consumers (one per node)
/// have acknowledged stream message `at` (batch `seq`), at most `bound`.
/// Returns how many have.
pub async fn wait_applied(
    stream: &mut crate::ops::jetstream::Stream,
    seq: u64,
    at: u64,
    wanted: usize,
    bound: Duration,
) -> Result<usize, NodeCheckError> {
    let started = Instant::now();
    loop {
        let mut applied = 0;
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|e| NodeCheckError::Stream(format!("listing the stream's consumers: {e}")))?;
            if info.ack_floor.stream_sequence >= at {
                applied += 1;
            }
        }
        if applied >= wanted {
            return Ok(applied);
        }
        if started.elapsed() >= bound {
            return Err(NodeCheckError::NotApplied { seq, at, wanted, applied, waited: bound });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
