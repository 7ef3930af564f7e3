//! The wire's frame reader ([`elig_wire::reader`]) driven from a quinn
//! `RecvStream`, and frames written to a `SendStream`: the async glue the
//! client, the server's stream task and the load generator share.

use std::time::Duration;

use elig_wire::codes;
use elig_wire::frame::{Frame, FrameError, Kind};
use elig_wire::reader::{FrameReader, Step};
use quinn::{RecvStream, SendStream};

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
            ReadError::Timeout(_) => Some(codes::TIMEOUT),
            ReadError::Stream(_) => None,
        }
    }
}

/// One read into `reader`: whatever the stream holds (one lock of the
/// connection for every byte buffered), or its end.
pub async fn fill(reader: &mut FrameReader, recv: &mut RecvStream) -> Result<(), quinn::ReadError> {
    match recv.read(reader.space()).await? {
        Some(n) => reader.filled(n),
        None => reader.finish(),
    }
    Ok(())
}

/// The frames of a response stream.
#[derive(Debug)]
pub struct FrameStream {
    recv: RecvStream,
    reader: FrameReader,
}

impl FrameStream {
    pub fn new(recv: RecvStream) -> FrameStream {
        FrameStream { recv, reader: FrameReader::new() }
    }

    /// The next frame's kind (its payload is [`FrameStream::payload`]), or
    /// `None` when the peer finished the stream at a frame boundary.
    pub async fn next(&mut self, max: usize, timeout: Duration) -> Result<Option<Kind>, ReadError> {
        let read = async {
            loop {
                match self.reader.decode(|_| max)? {
                    Step::Ready(kind) => return Ok(Some(kind)),
                    Step::End => return Ok(None),
                    Step::More => fill(&mut self.reader, &mut self.recv).await?,
                }
            }
        };
        tokio::time::timeout(timeout, read).await.unwrap_or(Err(ReadError::Timeout(timeout)))
    }

    /// The payload of the frame last returned.
    pub fn payload(&self) -> &[u8] {
        self.reader.payload()
    }

    /// [`FrameStream::next`] as an owned frame.
    pub async fn next_frame(&mut self, max: usize, timeout: Duration) -> Result<Option<Frame>, ReadError> {
        Ok(self.next(max, timeout).await?.map(|kind| Frame::new(kind, self.payload())))
    }

    /// Read on to the peer's end of the stream ([`finish_reading`]).
    pub async fn finish(&mut self, wait: Duration) {
        if !self.reader.is_finished() {
            finish_reading(&mut self.recv, wait).await;
        }
    }
}

/// How long a client waits for the server's end of a stream after the last
/// frame it wanted, before dropping the stream anyway.
pub const FINISH_WAIT: Duration = Duration::from_millis(100);

/// Read on to the peer's end of the stream (normally it came with the last
/// frame), discarding anything more, for at most `wait`. A stream dropped
/// before its end makes quinn send a STOP_SENDING frame, which the peer
/// then processes: one more frame each way per request. A server that
/// holds its end back adds up to `wait` to the request.
pub async fn finish_reading(recv: &mut RecvStream, wait: Duration) {
    let _ = tokio::time::timeout(wait, async { while let Ok(Some(_)) = recv.read_chunk(usize::MAX, true).await {} }).await;
}

/// Write one frame, handed over whole (`write_all(&[u8])` would copy it once more).
pub async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), quinn::WriteError> {
    send.write_chunk(bytes::Bytes::from(frame.encode())).await
}
