//! One request of the bench on a quinn connection, and what it came to.
//!
//! Frames are read a chunk at a time and decoded in place; of each answer
//! only `ProcessingResultStatus`, `ProcessingResultCode` and
//! `QualificationValidity` are read (the first fields of `MessageBody`,
//! found by a scan; a full JSON parse is the fallback), so the load
//! generator spends little CPU per answer.

use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quinn::{Connection, RecvStream};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::keys::{KeyKind, Sampler};
use super::BenchError;
use crate::protocol::{self, BulkSummary, ErrorBody, Kind, CLIENT_MAX_FRAME, HEADER_LEN};

/// Why a request failed (no answer, no refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    Timeout,
    Connection,
    Stream,
    Protocol,
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connection => "connection",
            Failure::Stream => "stream",
            Failure::Protocol => "protocol",
        }
    }
}

/// A protocol code (`EQ04`), stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code([u8; 8]);

impl Code {
    fn new(code: &[u8]) -> Code {
        let mut c = [0u8; 8];
        let n = code.len().min(8);
        c[..n].copy_from_slice(&code[..n]);
        Code(c)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(8);
        f.write_str(&String::from_utf8_lossy(&self.0[..end]))
    }
}

/// What a request or an answer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// A request answered (its answers are counted by kind).
    Ok,
    /// An answer with `QualificationValidity` 1..6.
    Validity(u8),
    /// A normal answer without a validity (a ticket fetch).
    Normal,
    /// An error answer (`ProcessingResultStatus` 2) and its code.
    Error(Code),
    /// An `Error` frame: the request refused as a whole.
    Refused(Code),
    Failed(Failure),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Ok => f.write_str("ok"),
            Label::Validity(v) => write!(f, "validity:{v}"),
            Label::Normal => f.write_str("normal"),
            Label::Error(c) => write!(f, "error:{c}"),
            Label::Refused(c) => write!(f, "refused:{c}"),
            Label::Failed(why) => write!(f, "failed:{}", why.name()),
        }
    }
}

/// Counts of labels (few distinct ones: a short vector).
#[derive(Debug, Clone, Default)]
pub struct Counts(Vec<(Label, u64)>);

impl Counts {
    fn add(&mut self, label: Label, n: u64) {
        match self.0.iter_mut().find(|(l, _)| *l == label) {
            Some((_, c)) => *c += n,
            None => self.0.push((label, n)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Label, u64)> + '_ {
        self.0.iter().copied()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

/// What one worker (or all, merged) measured.
#[derive(Debug)]
pub struct Tally {
    /// Microseconds from opening the stream to the last answer (refusals included, failures not).
    pub latency: Histogram<u64>,
    /// Bulk: microseconds to the first answer.
    pub first_item: Option<Histogram<u64>>,
    /// Request outcomes: ok, refused, failed.
    pub requests: Counts,
    /// Answers by key kind (single requests: their refusals and failures too).
    pub answers: [Counts; 5],
    /// Ticket units received by delegated-ticket fetches.
    pub units: u64,
    pub first_failure: Option<String>,
    pub first_refusal: Option<String>,
    /// Requests that failed during the warm-up.
    pub warmup_failures: u64,
    /// When the last measured request finished.
    pub last: Option<Instant>,
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    // One hour in microseconds, three significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| BenchError::Internal(format!("histogram: {e}")))
}

impl Tally {
    pub fn new(bulk: bool) -> Result<Tally, BenchError> {
        Ok(Tally {
            latency: histogram()?,
            first_item: if bulk { Some(histogram()?) } else { None },
            requests: Counts::default(),
            answers: Default::default(),
            units: 0,
            first_failure: None,
            first_refusal: None,
            warmup_failures: 0,
            last: None,
        })
    }

    pub fn merge(&mut self, other: Tally) -> Result<(), BenchError> {
        let add = |a: &mut Histogram<u64>, b: &Histogram<u64>| a.add(b).map_err(|e| BenchError::Internal(format!("histogram: {e}")));
        add(&mut self.latency, &other.latency)?;
        if let (Some(a), Some(b)) = (self.first_item.as_mut(), other.first_item.as_ref()) {
            add(a, b)?;
        }
        for (l, n) in other.requests.iter() {
            self.requests.add(l, n);
        }
        for (mine, theirs) in self.answers.iter_mut().zip(other.answers.iter()) {
            for (l, n) in theirs.iter() {
                mine.add(l, n);
            }
        }
        self.units += other.units;
        self.first_failure = self.first_failure.take().or(other.first_failure);
        self.first_refusal = self.first_refusal.take().or(other.first_refusal);
        self.warmup_failures += other.warmup_failures;
        self.last = self.last.max(other.last);
        Ok(())
    }

    /// Requests that failed.
    pub fn failures(&self) -> u64 {
        self.requests.iter().filter(|(l, _)| matches!(l, Label::Failed(_))).map(|(_, n)| n).sum()
    }

    /// Requests answered or refused (not failed).
    pub fn completed(&self) -> u64 {
        self.requests.total() - self.failures()
    }

    /// Answers (bulk items, lookups, fetches) of every kind.
    pub fn items(&self) -> u64 {
        self.answers.iter().flat_map(|c| c.iter()).filter(|(l, _)| matches!(l, Label::Validity(_) | Label::Normal | Label::Error(_))).map(|(_, n)| n).sum()
    }

    fn answer(&mut self, kind: KeyKind, label: Label) {
        self.answers[kind as usize].add(label, 1);
    }

    fn finished(&mut self, label: Label, started: Instant, first: Option<Duration>) {
        let now = Instant::now();
        self.requests.add(label, 1);
        self.latency.saturating_record(now.duration_since(started).as_micros() as u64);
        if let (Some(h), Some(f)) = (self.first_item.as_mut(), first) {
            h.saturating_record(f.as_micros() as u64);
        }
        self.last = Some(now);
    }

    fn failed(&mut self, fail: Fail) {
        self.requests.add(Label::Failed(fail.why), 1);
        self.last = Some(Instant::now());
        if self.first_failure.is_none() {
            self.first_failure = Some(format!("{}: {}", fail.why.name(), fail.message));
        }
    }
}

/// A failed request and what happened.
#[derive(Debug)]
struct Fail {
    why: Failure,
    message: String,
}

impl Fail {
    fn protocol(message: impl Into<String>) -> Fail {
        Fail { why: Failure::Protocol, message: message.into() }
    }

    fn connection(e: &quinn::ConnectionError) -> Fail {
        Fail { why: Failure::Connection, message: crate::client::explain(e) }
    }

    fn write(e: quinn::WriteError) -> Fail {
        match e {
            quinn::WriteError::ConnectionLost(c) => Fail::connection(&c),
            other => Fail { why: Failure::Stream, message: other.to_string() },
        }
    }

    fn read(e: quinn::ReadError) -> Fail {
        match e {
            quinn::ReadError::ConnectionLost(c) => Fail::connection(&c),
            other => Fail { why: Failure::Stream, message: other.to_string() },
        }
    }
}

/// How a request that did not fail ended.
enum Got {
    Answered { units: u64, first: Option<Duration> },
    Refused(Code),
}

/// Frames of a response, decoded from the chunks as they arrive.
struct FrameReader {
    recv: RecvStream,
    buf: Vec<u8>,
    start: usize,
    finished: bool,
}

impl FrameReader {
    fn new(recv: RecvStream) -> FrameReader {
        FrameReader { recv, buf: Vec::with_capacity(4096), start: 0, finished: false }
    }

    /// The next frame's kind and where its payload is (valid until the next call).
    async fn next(&mut self) -> Result<Option<(Kind, Range<usize>)>, Fail> {
        loop {
            let avail = &self.buf[self.start..];
            if let Some(h) = avail.get(..HEADER_LEN) {
                let mut header = [0u8; HEADER_LEN];
                header.copy_from_slice(h);
                let (kind, len) = protocol::decode_header(&header, CLIENT_MAX_FRAME).map_err(|e| Fail::protocol(e.to_string()))?;
                if avail.len() >= HEADER_LEN + len {
                    let from = self.start + HEADER_LEN;
                    self.start = from + len;
                    return Ok(Some((kind, from..from + len)));
                }
            }
            if self.finished {
                return if avail.is_empty() { Ok(None) } else { Err(Fail::protocol("the stream ended inside a frame")) };
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => self.finished = true,
                Err(e) => return Err(Fail::read(e)),
            }
        }
    }

    fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
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
    let (mut send, recv) = conn.open_bi().await.map_err(|e| Fail::connection(&e))?;
    send.write_all(&protocol::encode(request, doc)).await.map_err(Fail::write)?;
    let _ = send.finish();
    let mut reader = FrameReader::new(recv);
    let mut units = 0;
    loop {
        let Some((frame, range)) = reader.next().await? else {
            return Err(Fail::protocol("the server finished the stream without an answer"));
        };
        match (request, frame) {
            (Kind::Lookup, Kind::Answer) | (Kind::Tickets, Kind::Summary) => {
                tally.answer(kind, classify(reader.payload(range)));
                return Ok(Got::Answered { units, first: None });
            }
            (Kind::Tickets, Kind::Unit) => units += 1,
            (_, Kind::Error) => return Ok(Got::Refused(refusal(reader.payload(range), tally))),
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
    let (mut send, recv) = conn.open_bi().await.map_err(|e| Fail::connection(&e))?;
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
                Some((Kind::Answer, range)) => {
                    first = first.or_else(|| Some(started.elapsed()));
                    let kind = *kinds.get(i).ok_or_else(|| Fail::protocol(format!("more answers than the {} items sent", kinds.len())))?;
                    tally.answer(kind, classify(reader.payload(range)));
                    i += 1;
                }
                Some((Kind::Summary, range)) => {
                    let s: BulkSummary =
                        serde_json::from_slice(reader.payload(range)).map_err(|e| Fail::protocol(format!("bad bulk summary: {e}")))?;
                    if s.items != i as u64 || i != kinds.len() {
                        return Err(Fail::protocol(format!("{i} answers and a summary of {} for {} items sent", s.items, kinds.len())));
                    }
                    return Ok(Got::Answered { units: 0, first });
                }
                Some((Kind::Error, range)) => return Ok(Got::Refused(refusal(reader.payload(range), tally))),
                Some((other, _)) => return Err(Fail::protocol(format!("unexpected '{}' frame in a bulk response", other.name()))),
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
    use elig_engine::answer::Answer;

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
