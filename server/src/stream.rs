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
    match tokio::time::timeout(timeout, read_frame_inner(recv, max)).await {
        Ok(r) => r,
        Err(_) => Err(ReadError::Timeout(timeout)),
    }
}

async fn read_frame_inner(recv: &mut RecvStream, max: usize) -> Result<Option<Frame>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => return Err(FrameError::Truncated { have: n, need: HEADER_LEN }.into()),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let (kind, len) = protocol::decode_header(&header, max)?;
    let mut payload = vec![0u8; len];
    match recv.read_exact(&mut payload).await {
        Ok(()) => Ok(Some(Frame { kind, payload })),
        Err(ReadExactError::FinishedEarly(n)) => Err(FrameError::Truncated { have: HEADER_LEN + n, need: HEADER_LEN + len }.into()),
        Err(ReadExactError::ReadError(e)) => Err(e.into()),
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

/// Write one frame.
pub async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), quinn::WriteError> {
    send.write_chunk(bytes::Bytes::from(frame.encode())).await
}

/// Write one frame whose payload is `value` as JSON, serialised straight
/// into the frame (one buffer, one write).
pub async fn write_json<T: serde::Serialize>(send: &mut SendStream, kind: Kind, value: &T) -> Result<(), quinn::WriteError> {
    // Handed over whole: `write_all(&[u8])` would copy it once more.
    send.write_chunk(bytes::Bytes::from(protocol::encode_json(kind, value))).await
}

/// Frames read from a stream in whole chunks: one `read` takes every byte
/// quinn holds for the stream (one lock of the connection), where
/// [`read_frame`] took two `read_exact` per frame. A bulk inquiry's items
/// arrive many to a packet. Same limits, errors and timeout per frame as
/// [`read_frame`], with a payload limit per frame kind.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The payload of the frame last returned.
    payload: std::ops::Range<usize>,
    finished: bool,
    /// A read filled all the space it had: more is coming (a bulk inquiry).
    full_reads: bool,
    /// Payload bytes of a skipped oversized frame still to discard.
    skip: usize,
}

/// A frame [`FrameReader::next_skipping`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A whole frame: its payload is [`FrameReader::payload`].
    Frame(Kind),
    /// A frame over the limit whose payload is skipped unread (discarded
    /// as it arrives, never buffered whole).
    Oversized { kind: Kind, len: usize, max: usize },
}

/// The largest oversized frame [`FrameReader::next_skipping`] skips: past
/// this, the header alone ends the stream's request (`EF02`), as a frame
/// that size is no query line but a broken or hostile peer.
pub const SKIP_MAX: usize = 16 << 20;

/// Buffer of a stream's first reads, and once reads fill it, of later ones.
const FIRST_SPACE: usize = 1 << 10;
const READ_SPACE: usize = 64 << 10;

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Whether a whole frame is buffered: the next [`FrameReader::next`]
    /// returns without waiting for the peer.
    pub fn has_frame(&self) -> bool {
        if self.skip > 0 {
            return false;
        }
        let avail = &self.buf[self.start..self.end];
        avail.len() >= HEADER_LEN && avail.len() - HEADER_LEN >= u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize
    }

    /// The payload of the frame last returned by `next`.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload.clone()]
    }

    /// The next frame's kind (its payload is [`FrameReader::payload`]), or
    /// `None` when the peer finished the stream at a frame boundary.
    pub async fn next(&mut self, recv: &mut RecvStream, max: usize, timeout: Duration) -> Result<Option<Kind>, ReadError> {
        self.next_for(recv, |_| max, timeout).await
    }

    /// [`FrameReader::next`] with a payload limit that depends on the kind.
    pub async fn next_for(
        &mut self,
        recv: &mut RecvStream,
        max_for: impl Fn(Kind) -> usize,
        timeout: Duration,
    ) -> Result<Option<Kind>, ReadError> {
        match tokio::time::timeout(timeout, self.next_inner(recv, max_for)).await {
            Ok(r) => r,
            Err(_) => Err(ReadError::Timeout(timeout)),
        }
    }

    /// [`FrameReader::next`], except that a frame over `max` but not over
    /// [`SKIP_MAX`] is not an error: it comes back as [`Next::Oversized`]
    /// and its payload is discarded, so the frames after it can be read.
    pub async fn next_skipping(&mut self, recv: &mut RecvStream, max: usize, timeout: Duration) -> Result<Option<Next>, ReadError> {
        let skipping = async {
            self.discard(recv).await?;
            let have = self.end - self.start;
            if have < HEADER_LEN && !self.finished {
                // Only the header is needed to tell; `next` reads it.
                self.fill(recv, HEADER_LEN).await?;
            }
            if self.end - self.start >= HEADER_LEN {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
                if let Err(FrameError::TooLarge { len, max }) = protocol::decode_header(&header, max) {
                    let kind = Kind::from_u8(header[4]);
                    if let (Some(kind), true) = (kind, len as usize <= SKIP_MAX) {
                        self.start += HEADER_LEN;
                        self.skip = len as usize;
                        self.payload = self.start..self.start;
                        return Ok(Some(Next::Oversized { kind, len: len as usize, max }));
                    }
                }
            }
            Ok(self.next_inner(recv, |_| max).await?.map(Next::Frame))
        };
        match tokio::time::timeout(timeout, skipping).await {
            Ok(r) => r,
            Err(_) => Err(ReadError::Timeout(timeout)),
        }
    }

    /// Drop the rest of a skipped frame, from the buffer, then as it arrives.
    async fn discard(&mut self, recv: &mut RecvStream) -> Result<(), ReadError> {
        while self.skip > 0 {
            let buffered = (self.end - self.start).min(self.skip);
            self.start += buffered;
            self.skip -= buffered;
            if self.skip == 0 {
                break;
            }
            if self.finished {
                return Err(FrameError::Truncated { have: 0, need: self.skip }.into());
            }
            (self.start, self.end) = (0, 0);
            if self.buf.len() < READ_SPACE {
                self.buf.resize(READ_SPACE, 0);
            }
            match recv.read(&mut self.buf[..]).await? {
                Some(n) => self.end = n,
                None => self.finished = true,
            }
        }
        Ok(())
    }

    /// Read until at least `need` bytes are buffered or the stream ends.
    async fn fill(&mut self, recv: &mut RecvStream, need: usize) -> Result<(), ReadError> {
        while self.end - self.start < need && !self.finished {
            self.make_room(need);
            let space = self.buf.len() - self.end;
            match recv.read(&mut self.buf[self.end..]).await? {
                Some(n) => {
                    self.full_reads |= n == space;
                    self.end += n;
                }
                None => self.finished = true,
            }
        }
        Ok(())
    }

    async fn next_inner(&mut self, recv: &mut RecvStream, max_for: impl Fn(Kind) -> usize) -> Result<Option<Kind>, ReadError> {
        // The rest of a skipped frame is not the next frame.
        self.discard(recv).await?;
        loop {
            let have = self.end - self.start;
            // The header is checked as soon as it is here, before any payload is awaited.
            let mut need = HEADER_LEN;
            if have >= HEADER_LEN {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
                let (kind, len) = protocol::decode_header_for(&header, &max_for)?;
                need = HEADER_LEN + len;
                if have >= need {
                    self.payload = self.start + HEADER_LEN..self.start + need;
                    self.start += need;
                    return Ok(Some(kind));
                }
            }
            if self.finished {
                return match have {
                    0 => Ok(None),
                    _ => Err(FrameError::Truncated { have, need }.into()),
                };
            }
            self.fill(recv, need).await?;
        }
    }

    /// Unread bytes to the front when the tail runs short, and space for
    /// at least the rest of a frame of `need` bytes (a header's worth while
    /// the length is unknown). Small at first: most streams carry one query.
    fn make_room(&mut self, need: usize) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 && (self.buf.len() - self.end < READ_SPACE / 4 || self.start + need > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let floor = if self.full_reads { READ_SPACE } else { FIRST_SPACE };
        // Grow toward a declared frame a read's worth at a time: a header
        // alone does not get its whole (up to max_frame_bytes) allocated.
        let want = (self.start + need).min(self.end + READ_SPACE).max(self.end + 1).max(floor);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }
}
