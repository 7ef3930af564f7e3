//! Frames over quinn streams: the async glue between [`crate::protocol`]
//! and a `RecvStream` / `SendStream`, shared by server and client.

use std::time::Duration;

use quinn::{ReadExactError, RecvStream, SendStream};

use crate::protocol::{self, Frame, FrameError, Kind, HEADER_LEN};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("stream: {0}")]
    Stream(#[from] quinn::ReadError),
}

impl ReadError {
    /// The protocol error code to answer with, if the peer can still be told.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ReadError::Frame(e) => Some(e.code()),
            ReadError::Timeout(_) => Some(protocol::codes::TIMEOUT),
            ReadError::Stream(_) => None,
        }
    }
}

/// Read the next frame. `Ok(None)` when the peer finished the stream at a
/// frame boundary; a stream that ends inside a frame is
/// [`FrameError::Truncated`]. The size limit is checked on the header,
/// before the payload is read.
pub async fn read_frame(recv: &mut RecvStream, max: usize, timeout: Duration) -> Result<Option<Frame>, ReadError> {
    read_frame_for(recv, |_| max, timeout).await
}

/// [`read_frame`] with a payload limit that depends on the frame kind
/// (delta batches may be larger than queries).
pub async fn read_frame_for(recv: &mut RecvStream, max_for: impl Fn(Kind) -> usize, timeout: Duration) -> Result<Option<Frame>, ReadError> {
    match tokio::time::timeout(timeout, read_frame_inner(recv, max_for)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Timeout(timeout)),
    }
}

async fn read_frame_inner(recv: &mut RecvStream, max_for: impl Fn(Kind) -> usize) -> Result<Option<Frame>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => return Err(FrameError::Truncated { have: n, need: HEADER_LEN }.into()),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let (kind, len) = protocol::decode_header_for(&header, max_for)?;
    let mut payload = vec![0u8; len];
    match recv.read_exact(&mut payload).await {
        Ok(()) => Ok(Some(Frame { kind, payload })),
        Err(ReadExactError::FinishedEarly(n)) => Err(FrameError::Truncated { have: HEADER_LEN + n, need: HEADER_LEN + len }.into()),
        Err(ReadExactError::ReadError(e)) => Err(e.into()),
    }
}

/// Write one frame.
pub async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), quinn::WriteError> {
    send.write_all(&frame.encode()).await
}
