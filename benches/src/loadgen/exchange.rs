//! One request of the bench on a quinn connection, and what it came to.
//!
//! Frames are read a chunk at a time and decoded in place; of each answer
//! only `ProcessingResultStatus`, `ProcessingResultCode` and
//! `QualificationValidity` are read (the first fields of `MessageBody`,
//! found by a scan; a full JSON parse is the fallback), so the load
//! generator spends little CPU per answer.

use std::time::{Duration, Instant};

use quinn::{Connection, RecvStream};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::mix::Sampler;
use super::tally::{Code, Fail, Failure, Label, Tally};
use crate::keys::KeyKind;
use elig_client::frames::{FrameStream, ReadError, FINISH_WAIT};
use elig_wire::frame::{self as protocol, Kind, CLIENT_MAX_FRAME};
use elig_wire::report::BulkSummary;
use elig_wire::request::ErrorBody;

/// How a request that did not fail ended.
enum Got {
    Answered { units: u64, first: Option<Duration> },
    Refused(Code),
}

/// Frames of a response through the one frame reader, decoded in place.
struct FrameReader(FrameStream);

/// No frame wait of its own: every request has the bench's `--timeout`.
const NO_WAIT_LIMIT: Duration = Duration::from_secs(24 * 3600);

impl FrameReader {
    fn new(recv: RecvStream) -> FrameReader {
        FrameReader(FrameStream::new(recv))
    }

    /// The next frame's kind (its payload is `payload()` until the next call).
    async fn next(&mut self) -> Result<Option<Kind>, Fail> {
        match self.0.next(CLIENT_MAX_FRAME, NO_WAIT_LIMIT).await {
            Ok(k) => Ok(k),
            Err(ReadError::Stream(e)) => Err(Fail::read(e)),
            Err(e) => Err(Fail::protocol(e.to_string())),
        }
    }

    /// Read on to the server's end of the stream ([`elig_client::frames::finish_reading`]).
    async fn finish(&mut self) {
        self.0.finish(FINISH_WAIT).await;
    }

    fn payload(&self) -> &[u8] {
        self.0.payload()
    }
}

fn refusal(payload: &[u8], tally: &mut Tally) -> Code {
    match serde_json::from_slice::<ErrorBody>(payload) {
        Ok(e) => {
            if tally.first_refusal.is_none() {
                tally.first_refusal = Some(format!("{}: {}", e.code, e.message));
            }
            Code::new(e.code.as_bytes())
        }
        Err(_) => Code::new(b"?"),
    }
}

/// A new stream; the wait (for stream credit) is added up.
async fn open(conn: &Connection, tally: &mut Tally) -> Result<(quinn::SendStream, RecvStream), Fail> {
    let asked = Instant::now();
    let streams = conn.open_bi().await.map_err(|e| Fail::connection(&e))?;
    tally.stream_wait += asked.elapsed();
    Ok(streams)
}

/// One lookup (or delegated-ticket fetch) of `doc`; returns whether the
/// connection is lost.
pub async fn single(conn: &Connection, kind: KeyKind, doc: &[u8], timeout: Duration, tally: &mut Tally) -> bool {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, single_inner(conn, kind, doc, tally)).await;
    let result = result.unwrap_or_else(|_| Err(Fail { why: Failure::Timeout, message: format!("no answer within {timeout:?}") }));
    match result {
        Ok(Got::Answered { units, first }) => {
            tally.units += units;
            tally.finished(Label::Ok, started, first);
            false
        }
        Ok(Got::Refused(code)) => {
            tally.answer(kind, Label::Refused(code));
            tally.finished(Label::Refused(code), started, None);
            false
        }
        Err(fail) => {
            let lost = fail.why == Failure::Connection;
            tally.answer(kind, Label::Failed(fail.why));
            tally.failed(fail);
            lost
        }
    }
}

async fn single_inner(conn: &Connection, kind: KeyKind, doc: &[u8], tally: &mut Tally) -> Result<Got, Fail> {
    let request = if kind == KeyKind::Delegated { Kind::Tickets } else { Kind::Lookup };
    let (mut send, recv) = open(conn, tally).await?;
    send.write_all(&protocol::encode(request, doc)).await.map_err(Fail::write)?;
    let _ = send.finish();
    let mut reader = FrameReader::new(recv);
    let mut units = 0;
    loop {
        let Some(frame) = reader.next().await? else {
            return Err(Fail::protocol("the server finished the stream without an answer"));
        };
        match (request, frame) {
            (Kind::Lookup, Kind::Answer) | (Kind::Tickets, Kind::Summary) => {
                let label = classify(reader.payload());
                // Counted after: a request the outer timeout ends while it
                // waits here is counted once, as a timeout.
                reader.finish().await;
                tally.answer(kind, label);
                return Ok(Got::Answered { units, first: None });
            }
            (Kind::Tickets, Kind::Unit) => units += 1,
            (_, Kind::Error) => return Ok(Got::Refused(refusal(reader.payload(), tally))),
            (_, other) => return Err(Fail::protocol(format!("unexpected '{}' frame", other.name()))),
        }
    }
}

/// The frames of a bulk inquiry of `n` sampled keys; their kinds in `kinds`.
pub fn bulk_frames(sampler: &Sampler, rng: &mut ChaCha8Rng, n: usize, kinds: &mut Vec<KeyKind>, frames: &mut Vec<u8>) {
    protocol::encode_into(frames, Kind::BulkBegin, format!("{{\"items\":{n}}}").as_bytes());
    for _ in 0..n {
        let (kind, doc) = sampler.pick(rng);
        kinds.push(kind);
        protocol::encode_into(frames, Kind::BulkItem, doc);
    }
}

/// One bulk inquiry; returns whether the connection is lost. Answers are
/// counted as they arrive, so a bulk that fails midway still counts them.
pub async fn bulk(conn: &Connection, kinds: &[KeyKind], frames: &[u8], timeout: Duration, tally: &mut Tally) -> bool {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, bulk_inner(conn, kinds, frames, started, tally)).await;
    let result = result.unwrap_or_else(|_| Err(Fail { why: Failure::Timeout, message: format!("no summary within {timeout:?}") }));
    match result {
        Ok(Got::Answered { first, .. }) => {
            tally.finished(Label::Ok, started, first);
            false
        }
        Ok(Got::Refused(code)) => {
            tally.finished(Label::Refused(code), started, None);
            false
        }
        Err(fail) => {
            let lost = fail.why == Failure::Connection;
            tally.failed(fail);
            lost
        }
    }
}

async fn bulk_inner(conn: &Connection, kinds: &[KeyKind], frames: &[u8], started: Instant, tally: &mut Tally) -> Result<Got, Fail> {
    let (mut send, recv) = open(conn, tally).await?;
    // Write while reading: the server answers items as they arrive.
    let write = async {
        let r = send.write_all(frames).await;
        let _ = send.finish();
        r
    };
    let read = async {
        let mut reader = FrameReader::new(recv);
        let mut first = None;
        let mut i = 0usize;
        loop {
            match reader.next().await? {
                None => return Err(Fail::protocol(format!("the bulk stream ended after {i} answers, before its summary"))),
                Some(Kind::Answer) => {
                    first = first.or_else(|| Some(started.elapsed()));
                    let kind = *kinds.get(i).ok_or_else(|| Fail::protocol(format!("more answers than the {} items sent", kinds.len())))?;
                    tally.answer(kind, classify(reader.payload()));
                    i += 1;
                }
                Some(Kind::Summary) => {
                    let s: BulkSummary =
                        serde_json::from_slice(reader.payload()).map_err(|e| Fail::protocol(format!("bad bulk summary: {e}")))?;
                    if s.items != i as u64 || i != kinds.len() {
                        return Err(Fail::protocol(format!("{i} answers and a summary of {} for {} items sent", s.items, kinds.len())));
                    }
                    return Ok(Got::Answered { units: 0, first });
                }
                Some(Kind::Error) => return Ok(Got::Refused(refusal(reader.payload(), tally))),
                Some(other) => return Err(Fail::protocol(format!("unexpected '{}' frame in a bulk response", other.name()))),
            }
        }
    };
    let (written, read) = tokio::join!(write, read);
    match (read, written) {
        // A refused bulk is not read to its end: the write may fail then.
        (Ok(got), _) => Ok(got),
        (Err(fail), Err(quinn::WriteError::ConnectionLost(c))) if fail.why != Failure::Connection => Err(Fail::connection(&c)),
        (Err(fail), _) => Err(fail),
    }
}

// ---- answers ----------------------------------------------------------------

/// The status of one answer document.
pub fn classify(doc: &[u8]) -> Label {
    scan(doc).or_else(|| parse(doc)).unwrap_or(Label::Failed(Failure::Protocol))
}

fn label(status: &[u8], code: Option<&[u8]>, validity: Option<&[u8]>) -> Label {
    if status != b"1" {
        return Label::Error(Code::new(code.unwrap_or(b"?")));
    }
    match validity {
        Some([d @ b'0'..=b'9']) => Label::Validity(d - b'0'),
        _ => Label::Normal,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The raw bytes of the JSON string at the start of `s` (which begins with
/// its opening quote), and what follows its closing quote.
fn string(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some((&s[1..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// The status fields by a scan of the leading string members of `MessageBody`.
fn scan(doc: &[u8]) -> Option<Label> {
    const BODY: &[u8] = b"\"MessageBody\":{";
    let mut rest = &doc[find(doc, BODY)? + BODY.len()..];
    let (mut status, mut code, mut validity) = (None, None, None);
    while rest.first() == Some(&b'"') {
        let (key, after) = string(rest)?;
        let after = after.strip_prefix(b":")?;
        if after.first() != Some(&b'"') {
            break;
        }
        let (value, after) = string(after)?;
        match key {
            b"ProcessingResultStatus" => status = Some(value),
            b"ProcessingResultCode" => code = Some(value),
            b"QualificationValidity" => validity = Some(value),
            _ => {}
        }
        rest = match after.strip_prefix(b",") {
            Some(r) => r,
            None => break,
        };
    }
    Some(label(status?, code, validity))
}

/// The status fields by a full parse (answers the scan does not read).
fn parse(doc: &[u8]) -> Option<Label> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(rename = "MessageBody")]
        body: Body,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "ProcessingResultStatus")]
        status: String,
        #[serde(rename = "ProcessingResultCode")]
        code: Option<String>,
        #[serde(rename = "QualificationValidity")]
        validity: Option<String>,
    }
    let d: Doc = serde_json::from_slice(doc).ok()?;
    let b = d.body;
    Some(label(b.status.as_bytes(), b.code.as_deref().map(str::as_bytes), b.validity.as_deref().map(str::as_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use elig_wire::answer::Answer;

    #[test]
    fn the_scan_reads_what_a_full_parse_reads() {
        let mut a = Answer::default();
        a.message_header.arbitrary_file_identifier = Some(r#"x","MessageBody":{"ProcessingResultStatus":"2"#.into());
        a.message_body.processing_result_status = "1".into();
        a.message_body.qualification_validity = Some("4".into());
        let mut e = a.clone();
        e.message_body.processing_result_status = "2".into();
        e.message_body.processing_result_code = Some("EQ04".into());
        e.message_body.processing_result_message = Some(r#"a "quoted" \ message"#.into());
        e.message_body.qualification_validity = None;
        let mut t = a.clone();
        t.message_body.qualification_validity = None;
        for (answer, want) in [(a, Label::Validity(4)), (e, Label::Error(Code::new(b"EQ04"))), (t, Label::Normal)] {
            let doc = serde_json::to_vec(&answer).unwrap();
            assert_eq!(scan(&doc), Some(want), "{}", String::from_utf8_lossy(&doc));
            assert_eq!(parse(&doc), Some(want));
            assert_eq!(classify(&doc), want);
        }
        // Another member order falls back to the parse.
        let doc = br#"{"MessageBody":{"ResultList":[],"QualificationValidity":"1","ProcessingResultStatus":"1"},"MessageHeader":{}}"#;
        assert_eq!(classify(doc), Label::Validity(1));
        assert_eq!(classify(b"{not json"), Label::Failed(Failure::Protocol));
        assert_eq!(Label::Error(Code::new(b"EQ04")).to_string(), "error:EQ04");
    }
}
