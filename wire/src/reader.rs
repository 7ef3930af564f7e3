//! The one incremental frame reader: bytes in as they arrive, frames out,
//! with no I/O of its own. The server, the client and the load generator
//! each drive it from their stream with a loop of a few lines:
//!
//! ```
//! # use elig_wire::frame::{encode, Kind};
//! # use elig_wire::reader::{FrameReader, Step};
//! # let mut incoming: &[u8] = &encode(Kind::Lookup, b"{}");
//! let mut reader = FrameReader::new();
//! let kind = loop {
//!     match reader.decode(|_| 1024)? {
//!         Step::Ready(kind) => break Some(kind),
//!         Step::End => break None,
//!         // From a socket: `recv.read(reader.space())`, then `filled(n)` or `finish()`.
//!         Step::More => reader.read_from(&mut incoming, usize::MAX),
//!     }
//! };
//! assert_eq!((kind, reader.payload()), (Some(Kind::Lookup), &b"{}"[..]));
//! # Ok::<(), elig_wire::frame::FrameError>(())
//! ```
//!
//! A stream's reads take every byte buffered for it at once (one lock of the
//! connection), and a bulk inquiry's items arrive many to a packet, so a
//! frame is decoded in place from a buffer that holds several. Size limits
//! are checked on the header, before any payload byte is awaited.

use std::ops::Range;

use crate::frame::{decode_header, decode_header_for, FrameError, Kind, HEADER_LEN};

/// What [`FrameReader::decode`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<T> {
    /// A frame (its payload is [`FrameReader::payload`]).
    Ready(T),
    /// The peer finished the stream at a frame boundary.
    End,
    /// More bytes are needed: read into [`FrameReader::space`], then
    /// [`FrameReader::filled`] (or [`FrameReader::finish`] at the end).
    More,
}

/// A frame [`FrameReader::decode_skipping`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A whole frame: its payload is [`FrameReader::payload`].
    Frame(Kind),
    /// A frame over the limit whose payload is skipped unread (discarded
    /// as it arrives, never buffered whole).
    Oversized { kind: Kind, len: usize, max: usize },
}

/// The largest oversized frame [`FrameReader::decode_skipping`] skips: past
/// this, the header alone is an error (`EF02`), as a frame that size is no
/// query line but a broken or hostile peer.
pub const SKIP_MAX: usize = 16 << 20;

/// Buffer of a stream's first reads: a query or an answer (about 1.2 KB)
/// fits in one read. Once reads fill the buffer it doubles, up to
/// `READ_SPACE` (a bulk inquiry's items, a ticket fetch's units): a jump to
/// 64 KiB at once cost the client a 64 KiB zeroed buffer per answer.
const FIRST_SPACE: usize = 2 << 10;
const READ_SPACE: usize = 64 << 10;

#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// The payload of the frame last returned.
    payload: Range<usize>,
    finished: bool,
    /// A read filled all the space it had: more is coming (a bulk inquiry).
    full_reads: bool,
    /// Payload bytes of a skipped oversized frame still to discard.
    skip: usize,
    /// Bytes the frame being decoded needs buffered (a header's worth while
    /// its length is unknown).
    need: usize,
    /// Length of the space last handed out.
    space: usize,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Whether a whole frame is buffered: the next [`FrameReader::decode`]
    /// returns it without waiting for the peer.
    pub fn has_frame(&self) -> bool {
        if self.skip > 0 {
            return false;
        }
        let avail = &self.buf[self.start..self.end];
        avail.len() >= HEADER_LEN && avail.len() - HEADER_LEN >= u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize
    }

    /// Whether the peer finished its side (all its bytes are buffered).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The payload of the frame last returned.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload.clone()]
    }

    /// The next frame, with a payload limit that depends on its kind.
    pub fn decode(&mut self, max_for: impl Fn(Kind) -> usize) -> Result<Step<Kind>, FrameError> {
        // The rest of a skipped frame is not the next frame.
        if !self.discard()? {
            return Ok(Step::More);
        }
        let have = self.end - self.start;
        self.need = HEADER_LEN;
        if have >= HEADER_LEN {
            let (kind, len) = decode_header_for(&self.header(), &max_for)?;
            self.need = HEADER_LEN + len;
            if have >= self.need {
                self.payload = self.start + HEADER_LEN..self.start + self.need;
                self.start += self.need;
                return Ok(Step::Ready(kind));
            }
        }
        match (self.finished, have) {
            (false, _) => Ok(Step::More),
            (true, 0) => Ok(Step::End),
            (true, _) => Err(FrameError::Truncated { have, need: self.need }),
        }
    }

    /// [`FrameReader::decode`] with one limit, except that a frame over
    /// `max` but not over [`SKIP_MAX`] is no error: it comes back as
    /// [`Next::Oversized`] and its payload is discarded, so the frames after
    /// it can be read (a bulk inquiry answers such an item in its place).
    pub fn decode_skipping(&mut self, max: usize) -> Result<Step<Next>, FrameError> {
        if !self.discard()? {
            return Ok(Step::More);
        }
        if self.end - self.start >= HEADER_LEN {
            let header = self.header();
            if let Err(FrameError::TooLarge { len, max }) = decode_header(&header, max) {
                if let (Some(kind), true) = (Kind::from_u8(header[4]), len as usize <= SKIP_MAX) {
                    self.start += HEADER_LEN;
                    self.skip = len as usize;
                    self.payload = self.start..self.start;
                    return Ok(Step::Ready(Next::Oversized { kind, len: len as usize, max }));
                }
            }
        }
        Ok(match self.decode(|_| max)? {
            Step::Ready(kind) => Step::Ready(Next::Frame(kind)),
            Step::End => Step::End,
            Step::More => Step::More,
        })
    }

    /// Where the next read goes; report what it brought with
    /// [`FrameReader::filled`]. Small at first (most streams carry one
    /// query), a read's worth once reads fill it, and grown toward a
    /// declared frame a read's worth at a time (a header alone does not get
    /// its whole, up to the frame limit, allocated).
    pub fn space(&mut self) -> &mut [u8] {
        if self.skip > 0 {
            // Everything buffered was discarded: read over it.
            (self.start, self.end) = (0, 0);
            if self.buf.len() < READ_SPACE {
                self.buf.resize(READ_SPACE, 0);
            }
        } else {
            self.make_room(self.need.max(HEADER_LEN));
        }
        self.space = self.buf.len() - self.end;
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`FrameReader::space`].
    pub fn filled(&mut self, n: usize) {
        let n = n.min(self.buf.len() - self.end);
        self.full_reads |= n == self.space;
        self.end += n;
    }

    /// The peer finished its side of the stream.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// One read from bytes in memory: up to `most` bytes of `src` into the
    /// space (taken off `src`), or the end of the stream once `src` is empty.
    pub fn read_from(&mut self, src: &mut &[u8], most: usize) {
        let space = self.space();
        let n = space.len().min(most).min(src.len());
        space[..n].copy_from_slice(&src[..n]);
        *src = &src[n..];
        if n == 0 {
            self.finish();
        } else {
            self.filled(n);
        }
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
        header
    }

    /// Drop what is buffered of a skipped frame; whether it is all gone.
    fn discard(&mut self) -> Result<bool, FrameError> {
        if self.skip == 0 {
            return Ok(true);
        }
        let buffered = (self.end - self.start).min(self.skip);
        self.start += buffered;
        self.skip -= buffered;
        if self.skip == 0 {
            return Ok(true);
        }
        if self.finished {
            return Err(FrameError::Truncated { have: 0, need: self.skip });
        }
        Ok(false)
    }

    /// Unread bytes to the front when the tail runs short, and space for at
    /// least the rest of a frame of `need` bytes.
    fn make_room(&mut self, need: usize) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 && (self.buf.len() - self.end < READ_SPACE / 4 || self.start + need > self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let floor = if self.full_reads { (self.buf.len() * 2).clamp(FIRST_SPACE, READ_SPACE) } else { FIRST_SPACE };
        let want = (self.start + need).min(self.end + READ_SPACE).max(self.end + 1).max(floor);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;

    /// Feed `bytes` `chunk` at a time, collecting `(kind, payload)` or the error.
    fn run(bytes: &[u8], chunk: usize, skipping: Option<usize>) -> Result<Vec<(Next, Vec<u8>)>, FrameError> {
        let mut r = FrameReader::new();
        let mut rest = bytes;
        let mut out = Vec::new();
        loop {
            let step = match skipping {
                Some(max) => r.decode_skipping(max)?,
                None => match r.decode(|_| 1 << 20)? {
                    Step::Ready(k) => Step::Ready(Next::Frame(k)),
                    Step::End => Step::End,
                    Step::More => Step::More,
                },
            };
            match step {
                Step::Ready(next) => out.push((next, r.payload().to_vec())),
                Step::End => return Ok(out),
                Step::More => {
                    assert!(!r.space().is_empty(), "the reader always has room");
                    r.read_from(&mut rest, chunk);
                }
            }
        }
    }

    fn stream(frames: &[(Kind, Vec<u8>)]) -> Vec<u8> {
        frames.iter().flat_map(|(k, p)| encode(*k, p)).collect()
    }

    #[test]
    fn frames_come_out_whole_whatever_the_chunks() {
        let frames = vec![
            (Kind::BulkBegin, br#"{"items":3}"#.to_vec()),
            (Kind::BulkItem, vec![b'a'; 3000]),
            (Kind::BulkItem, Vec::new()),
            (Kind::BulkItem, vec![b'z'; 70_000]),
        ];
        let bytes = stream(&frames);
        for chunk in [1, 2, 5, 7, 1000, 65_536, usize::MAX] {
            let got = run(&bytes, chunk, None).unwrap();
            let want: Vec<_> = frames.iter().map(|(k, p)| (Next::Frame(*k), p.clone())).collect();
            assert_eq!(got, want, "chunk {chunk}");
        }
    }

    #[test]
    fn an_end_inside_a_frame_is_truncated() {
        let bytes = encode(Kind::Lookup, b"0123456789");
        for cut in 1..bytes.len() {
            let need = if cut < HEADER_LEN { HEADER_LEN } else { bytes.len() };
            assert_eq!(run(&bytes[..cut], 3, None), Err(FrameError::Truncated { have: cut, need }), "cut {cut}");
        }
        assert_eq!(run(&[], 3, None), Ok(Vec::new()), "an empty stream ends at a boundary");
    }

    #[test]
    fn limits_are_checked_on_the_header() {
        let mut r = FrameReader::new();
        let header = &encode(Kind::Delta, &[0; 100])[..HEADER_LEN];
        r.space()[..HEADER_LEN].copy_from_slice(header);
        r.filled(HEADER_LEN);
        let limit = |k: Kind| if k == Kind::Delta { 99 } else { 1000 };
        assert_eq!(r.decode(limit), Err(FrameError::TooLarge { len: 100, max: 99 }));
    }

    #[test]
    fn oversized_frames_are_skipped_and_the_rest_read() {
        let frames = vec![(Kind::BulkItem, vec![b'a'; 10]), (Kind::BulkItem, vec![b'b'; 200_000]), (Kind::BulkItem, vec![b'c'; 20])];
        let bytes = stream(&frames);
        for chunk in [1, 9, 4096, usize::MAX] {
            let got = run(&bytes, chunk, Some(100)).unwrap();
            assert_eq!(
                got,
                vec![
                    (Next::Frame(Kind::BulkItem), vec![b'a'; 10]),
                    (Next::Oversized { kind: Kind::BulkItem, len: 200_000, max: 100 }, Vec::new()),
                    (Next::Frame(Kind::BulkItem), vec![b'c'; 20]),
                ],
                "chunk {chunk}"
            );
        }
        // A stream that ends inside the skipped payload is truncated.
        assert!(matches!(run(&bytes[..5000], 512, Some(100)), Err(FrameError::Truncated { .. })));
        // Past SKIP_MAX the header alone is refused.
        let huge = [0xff, 0xff, 0xff, 0x7f, Kind::BulkItem as u8];
        assert!(matches!(run(&huge, 5, Some(100)), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn has_frame_tells_whether_decode_waits() {
        let bytes = stream(&[(Kind::Status, Vec::new()), (Kind::Usage, b"xy".to_vec())]);
        let mut r = FrameReader::new();
        assert!(!r.has_frame());
        r.space()[..bytes.len() - 1].copy_from_slice(&bytes[..bytes.len() - 1]);
        r.filled(bytes.len() - 1);
        assert!(r.has_frame());
        assert_eq!(r.decode(|_| 10), Ok(Step::Ready(Kind::Status)));
        assert!(!r.has_frame(), "the second frame lacks a byte");
        assert_eq!(r.decode(|_| 10), Ok(Step::More));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), chunk in 1usize..50) {
            let _ = run(&bytes, chunk, None);
            let _ = run(&bytes, chunk, Some(16));
        }
    }
}
