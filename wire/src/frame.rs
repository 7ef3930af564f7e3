//! The wire protocol: length-prefixed frames on QUIC bidirectional streams.
//!
//! Plain code over bytes, no quinn or tokio types, so tests and the fuzzer
//! call it directly; [`crate::reader`] decodes frames as bytes arrive. The protocol version is negotiated through ALPN
//! ([`ALPN`]); a change that old peers cannot read gets a new ALPN id.
//!
//! ```text
//! offset  size  field
//! 0       4     payload length L (u32, little-endian), at most the peer's frame limit
//! 4       1     frame kind (see `Kind`)
//! 5       L     payload (UTF-8 JSON, or empty)
//! ```
//!
//! One request per stream: the client opens a bidirectional stream, sends a
//! request frame (a bulk inquiry: a `BulkBegin` frame then its `BulkItem`
//! frames), finishes its side, and reads the response frames until the
//! server finishes its side. Requests on different streams run concurrently.

use serde::Serialize;

use crate::codes;
use crate::request::ErrorBody;

/// ALPN protocol id of this version of the protocol.
pub const ALPN: &[u8] = b"elig/1";

/// Bytes of the frame header (length + kind).
pub const HEADER_LEN: usize = 5;

/// Default limit on a frame payload a server accepts (queries are small).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// Limit on a frame payload the client accepts (answers can be large).
pub const CLIENT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Frame kinds. Requests have the high bit clear, responses set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// One query document; answered by one `Answer` frame.
    Lookup = 0x01,
    /// Starts a bulk inquiry: `{"items": N}`; `N` `BulkItem` frames follow.
    BulkBegin = 0x02,
    /// One query document of a bulk inquiry.
    BulkItem = 0x03,
    /// A delegated-ticket query; answered by `Unit` frames then a `Summary`.
    Tickets = 0x04,
    /// Operator: server status; answered by a `Report` frame.
    Status = 0x10,
    /// Operator: usage counts; answered by a `Report` frame.
    Usage = 0x11,
    /// Operator: swap in a new snapshot, `{"snapshot_dir": "/abs/path"}`;
    /// answered by a `Report` frame ([`SwapResult`]).
    Swap = 0x12,
    /// Operator: one delta batch, the JSON Lines text as is (`contract.md`
    /// section 2); answered by a `Report` frame ([`DeltaAck`]).
    Delta = 0x13,
    /// Operator: a dry run of one delta batch against the node's state: it
    /// is validated as `Delta` would validate it, and nothing is applied or
    /// logged; answered by a `Report` frame ([`DeltaCheck`]) or refused as
    /// `Delta` would be. `eligd publish --node` asks it before publishing.
    ///
    /// [`DeltaCheck`]: crate::report::DeltaCheck
    DeltaCheck = 0x14,
    /// An answer document (`contract.md` section 3).
    Answer = 0x81,
    /// One `BulkConfirmUnit` of a delegated-ticket fetch.
    Unit = 0x82,
    /// End of a bulk inquiry or ticket fetch.
    Summary = 0x83,
    /// Operator report (status, usage, swap, delta acknowledgement).
    Report = 0x84,
    /// The request as a whole was refused: `{"code", "message"}`.
    Error = 0xFF,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Lookup,
        Kind::BulkBegin,
        Kind::BulkItem,
        Kind::Tickets,
        Kind::Status,
        Kind::Usage,
        Kind::Swap,
        Kind::Delta,
        Kind::DeltaCheck,
        Kind::Answer,
        Kind::Unit,
        Kind::Summary,
        Kind::Report,
        Kind::Error,
    ];

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Lookup,
            0x02 => Kind::BulkBegin,
            0x03 => Kind::BulkItem,
            0x04 => Kind::Tickets,
            0x10 => Kind::Status,
            0x11 => Kind::Usage,
            0x12 => Kind::Swap,
            0x13 => Kind::Delta,
            0x14 => Kind::DeltaCheck,
            0x81 => Kind::Answer,
            0x82 => Kind::Unit,
            0x83 => Kind::Summary,
            0x84 => Kind::Report,
            0xFF => Kind::Error,
            _ => return None,
        })
    }

    /// Short name (logs, metrics, errors).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lookup => "lookup",
            Kind::BulkBegin => "bulk_begin",
            Kind::BulkItem => "bulk_item",
            Kind::Tickets => "tickets",
            Kind::Status => "status",
            Kind::Usage => "usage",
            Kind::Swap => "swap",
            Kind::Delta => "delta",
            Kind::DeltaCheck => "delta_check",
            Kind::Answer => "answer",
            Kind::Unit => "unit",
            Kind::Summary => "summary",
            Kind::Report => "report",
            Kind::Error => "error",
        }
    }

    /// Whether a client may send this kind.
    pub fn is_request(self) -> bool {
        (self as u8) & 0x80 == 0
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("unknown frame kind 0x{kind:02x}")]
    UnknownKind { kind: u8 },
    #[error("truncated frame: {have} of {need} bytes")]
    Truncated { have: usize, need: usize },
}

impl FrameError {
    /// The protocol error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => codes::FRAME_TOO_LARGE,
            FrameError::UnknownKind { .. } => codes::UNKNOWN_KIND,
            FrameError::Truncated { .. } => codes::MALFORMED_FRAME,
        }
    }
}

impl Frame {
    pub fn new(kind: Kind, payload: impl Into<Vec<u8>>) -> Frame {
        Frame { kind, payload: payload.into() }
    }

    /// A frame whose payload is `value` as JSON.
    pub fn json<T: Serialize>(kind: Kind, value: &T) -> Frame {
        // Serialising our own plain structs to a Vec cannot fail.
        Frame { kind, payload: serde_json::to_vec(value).unwrap_or_default() }
    }

    pub fn error(code: &str, message: impl Into<String>) -> Frame {
        Frame::json(Kind::Error, &ErrorBody { code: code.to_string(), message: message.into() })
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self.kind, &self.payload)
    }
}

/// Encode one frame.
pub fn encode(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_into(&mut out, kind, payload);
    out
}

/// Append one encoded frame to `out`.
pub fn encode_into(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    // Payloads above u32::MAX never reach here: every sender caps them far lower.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// Append one frame whose payload `write` appends to `out` (no payload
/// copy): the answers eligd renders straight into its output buffer.
pub fn encode_with<R>(out: &mut Vec<u8>, kind: Kind, write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, kind as u8]);
    let r = write(out);
    let len = u32::try_from(out.len() - at - HEADER_LEN).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    r
}

/// Append one frame whose payload is `value` as JSON, serialised straight
/// into `out` (no payload copy). Bytes as [`Frame::json`] then [`encode_into`].
pub fn encode_json_into<T: Serialize>(out: &mut Vec<u8>, kind: Kind, value: &T) {
    encode_with(out, kind, |out| {
        let at = out.len();
        // Serialising our own plain structs cannot fail; as with `Frame::json`,
        // a failure would leave an empty payload. Summaries of bulk
        // inquiries are written by sonic-rs, with the same bytes as
        // serde_json (tests hold them equal for answers, units and
        // summaries); answers and ticket units are rendered by the engine
        // (`encode_with`). Operator reports keep serde_json
        // (`#[serde(flatten)]`, and no hot path).
        let written = match kind {
            Kind::Answer | Kind::Unit | Kind::Summary => sonic_rs::to_writer(&mut *out, value).is_ok(),
            _ => serde_json::to_writer(&mut *out, value).is_ok(),
        };
        if !written {
            out.truncate(at);
        }
    })
}

/// One frame whose payload is `value` as JSON, encoded.
pub fn encode_json<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    // An answer is about 1.1-1.2 KB: start above it, so it is not regrown.
    let mut out = Vec::with_capacity(2048);
    encode_json_into(&mut out, kind, value);
    out
}

/// Decode a frame header whose payload limit depends on its kind: the kind
/// is decoded first, then the length is checked against `max_for(kind)`
/// before any payload byte is read.
pub fn decode_header_for(header: &[u8; HEADER_LEN], max_for: impl Fn(Kind) -> usize) -> Result<(Kind, usize), FrameError> {
    let kind = Kind::from_u8(header[4]).ok_or(FrameError::UnknownKind { kind: header[4] })?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let max = max_for(kind);
    if len as u64 > max as u64 {
        return Err(FrameError::TooLarge { len: len.into(), max });
    }
    Ok((kind, len as usize))
}

/// Decode a frame header: the kind and the payload length, checked against
/// `max` before any payload byte is read.
pub fn decode_header(header: &[u8; HEADER_LEN], max: usize) -> Result<(Kind, usize), FrameError> {
    decode_header_for(header, |_| max)
}

/// Decode the first frame of `buf`. `Ok(None)` means more bytes are needed;
/// on success returns the frame and the bytes it took.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(header);
    let (kind, len) = decode_header(&h, max)?;
    let end = HEADER_LEN + len;
    match buf.get(HEADER_LEN..end) {
        Some(payload) => Ok(Some((Frame { kind, payload: payload.to_vec() }, end))),
        None => Ok(None),
    }
}

/// Decode a complete byte stream into frames; a partial frame at the end is
/// [`FrameError::Truncated`].
pub fn decode_all(mut buf: &[u8], max: usize) -> Result<Vec<Frame>, FrameError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        match decode(buf, max)? {
            Some((frame, used)) => {
                out.push(frame);
                buf = &buf[used..];
            }
            None => {
                let need = if buf.len() < HEADER_LEN {
                    HEADER_LEN
                } else {
                    HEADER_LEN + u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize
                };
                return Err(FrameError::Truncated { have: buf.len(), need });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::BulkSummary;

    /// Answer frames are serialised by sonic-rs; clients parse them as the
    /// JSON serde_json writes, byte for byte, escapes included.
    #[test]
    fn answer_frames_hold_the_bytes_serde_json_writes() {
        use crate::answer::{Answer, ResultOfQualificationConfirmation, SearchInfo, Str};
        let tricky = [
            "山田　太郎",
            "ﾔﾏﾀﾞ ﾀﾛｳ",
            "quote \" backslash \\ slash /",
            "ctl \u{1}\t\n\r\u{1f}\u{7f}",
            "\u{2028}\u{2029}●",
            "",
            "x".repeat(300).leak(),
        ];
        for (i, text) in tricky.iter().enumerate() {
            let mut a = Answer::default();
            a.message_header.medical_institution_code = Str::from(*text);
            a.message_header.arbitrary_file_identifier = (i % 2 == 0).then(|| Str::from(*text));
            a.message_body.processing_result_status = "1".into();
            a.message_body.qualification_confirm_search_info =
                Some(SearchInfo { insurer_number: Some(Str::from(*text)), ..Default::default() });
            let e =
                ResultOfQualificationConfirmation { name: Some(Str::from(*text)), address: Some(Str::from(*text)), ..Default::default() };
            a.message_body.result_list = vec![e.clone(), e];
            let mut out = Vec::new();
            encode_json_into(&mut out, Kind::Answer, &a);
            let want = serde_json::to_vec(&a).unwrap();
            assert_eq!(&out[HEADER_LEN..], &want[..], "{text:?}");
            assert_eq!(Frame::json(Kind::Answer, &a).payload, want);
            let unit = crate::answer::BulkConfirmUnit {
                qualification_confirm_search_info: a.message_body.qualification_confirm_search_info.clone(),
                processing_result_status: "1".into(),
                result_of_qualification_confirmation: a.message_body.result_list.first().cloned(),
                reference_number: Some(Str::from(*text)),
                ..Default::default()
            };
            let mut out = Vec::new();
            encode_json_into(&mut out, Kind::Unit, &unit);
            assert_eq!(&out[HEADER_LEN..], &serde_json::to_vec(&unit).unwrap()[..], "{text:?}");
        }
    }

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut stream = Vec::new();
        encode_into(&mut stream, Kind::BulkBegin, br#"{"items":2}"#);
        encode_into(&mut stream, Kind::BulkItem, b"{}");
        encode_into(&mut stream, Kind::Status, b"");
        let frames = decode_all(&stream, 1024).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::new(Kind::BulkBegin, br#"{"items":2}"#.to_vec()));
        assert_eq!(frames[2], Frame::new(Kind::Status, Vec::new()));
        for cut in 0..stream.len() {
            match decode(&stream[..cut], 1024).unwrap() {
                None => assert!(cut < 16, "first frame is 16 bytes, cut {cut}"),
                Some((f, used)) => assert_eq!((f.kind, used), (Kind::BulkBegin, 16)),
            }
        }
    }

    #[test]
    fn oversized_unknown_and_truncated_frames_are_typed_errors() {
        let big = encode(Kind::Lookup, &[b'x'; 100]);
        assert_eq!(decode(&big, 99), Err(FrameError::TooLarge { len: 100, max: 99 }));
        assert_eq!(FrameError::TooLarge { len: 100, max: 99 }.code(), codes::FRAME_TOO_LARGE);
        let mut unknown = encode(Kind::Lookup, b"{}");
        unknown[4] = 0x7a;
        assert_eq!(decode(&unknown, 99), Err(FrameError::UnknownKind { kind: 0x7a }));
        assert_eq!(decode_all(&big[..10], 1000), Err(FrameError::Truncated { have: 10, need: 105 }));
        assert_eq!(decode_all(&big[..3], 1000), Err(FrameError::Truncated { have: 3, need: 5 }));
        // A header claiming 4 GiB is refused before anything is allocated.
        assert!(matches!(decode(&[0xff, 0xff, 0xff, 0xff, 0x01], DEFAULT_MAX_FRAME), Err(FrameError::TooLarge { .. })));
        // Per-kind limits: a delta may be larger than a lookup.
        let limit = |k: Kind| if k == Kind::Delta { 1000 } else { 10 };
        let h = |kind: u8, len: u32| {
            let b = len.to_le_bytes();
            [b[0], b[1], b[2], b[3], kind]
        };
        assert_eq!(decode_header_for(&h(0x13, 500), limit), Ok((Kind::Delta, 500)));
        assert_eq!(decode_header_for(&h(0x01, 500), limit), Err(FrameError::TooLarge { len: 500, max: 10 }));
        assert_eq!(decode_header_for(&h(0x7a, 5), limit), Err(FrameError::UnknownKind { kind: 0x7a }));
    }

    #[test]
    fn json_frames_encode_in_place_as_by_way_of_a_payload() {
        let summary = BulkSummary { items: 3, normal: 2, errors: 1, generation: 7, delta_seq: 0 };
        let mut out = b"before".to_vec();
        encode_json_into(&mut out, Kind::Summary, &summary);
        encode_json_into(&mut out, Kind::Error, &ErrorBody { code: "EL02".into(), message: "ünïcode".into() });
        let mut want = b"before".to_vec();
        want.extend(Frame::json(Kind::Summary, &summary).encode());
        want.extend(Frame::error("EL02", "ünïcode").encode());
        assert_eq!(out, want);
        assert_eq!(encode_json(Kind::Summary, &summary), Frame::json(Kind::Summary, &summary).encode());
    }

    #[test]
    fn the_decoder_knows_exactly_the_listed_kinds() {
        // `from_u8` and `ALL` are written apart: each checks the other.
        let decoded: Vec<Kind> = (0..=255u8).filter_map(Kind::from_u8).collect();
        assert_eq!(decoded.len(), Kind::ALL.len());
        for k in decoded {
            assert!(Kind::ALL.contains(&k), "{} decodes but is not listed", k.name());
            assert_eq!(Kind::from_u8(k as u8), Some(k), "{}", k.name());
        }
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode_all(&bytes, 32);
            let _ = decode(&bytes, 32);
        }

        #[test]
        fn encode_then_decode_is_identity(kind in 0usize..13, payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let kind = Kind::ALL[kind];
            let frames = decode_all(&encode(kind, &payload), 300).unwrap();
            proptest::prop_assert_eq!(frames, vec![Frame::new(kind, payload)]);
        }
    }
}
