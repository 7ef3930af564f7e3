//! What requests came to: outcome labels, their counts, and the tally of
//! one worker (latency histograms, counts by key kind), merged at the end.

use std::fmt;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::BenchError;
use crate::keys::KeyKind;

/// Why a request failed (no answer, no refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    Timeout,
    Connection,
    Stream,
    Protocol,
}

impl Failure {
    pub fn name(self) -> &'static str {
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
    pub fn new(code: &[u8]) -> Code {
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
    /// Time spent waiting to open a stream (stream credit from the server), summed.
    pub stream_wait: Duration,
    pub quic: QuicStats,
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
            stream_wait: Duration::ZERO,
            quic: QuicStats::default(),
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
        self.stream_wait += other.stream_wait;
        self.quic.add(&other.quic);
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
        self.answers
            .iter()
            .flat_map(|c| c.iter())
            .filter(|(l, _)| matches!(l, Label::Validity(_) | Label::Normal | Label::Error(_)))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn answer(&mut self, kind: KeyKind, label: Label) {
        self.answers[kind as usize].add(label, 1);
    }

    pub fn finished(&mut self, label: Label, started: Instant, first: Option<Duration>) {
        let now = Instant::now();
        self.requests.add(label, 1);
        self.latency.saturating_record(now.duration_since(started).as_micros() as u64);
        if let (Some(h), Some(f)) = (self.first_item.as_mut(), first) {
            h.saturating_record(f.as_micros() as u64);
        }
        self.last = Some(now);
    }

    pub fn failed(&mut self, fail: Fail) {
        self.requests.add(Label::Failed(fail.why), 1);
        self.last = Some(Instant::now());
        if self.first_failure.is_none() {
            self.first_failure = Some(format!("{}: {}", fail.why.name(), fail.message));
        }
    }
}

/// A failed request and what happened.
#[derive(Debug)]
pub struct Fail {
    pub why: Failure,
    pub message: String,
}

impl Fail {
    pub fn protocol(message: impl Into<String>) -> Fail {
        Fail { why: Failure::Protocol, message: message.into() }
    }

    pub fn connection(e: &quinn::ConnectionError) -> Fail {
        Fail { why: Failure::Connection, message: elig_client::connection::explain(e) }
    }

    pub fn write(e: quinn::WriteError) -> Fail {
        match e {
            quinn::WriteError::ConnectionLost(c) => Fail::connection(&c),
            other => Fail { why: Failure::Stream, message: other.to_string() },
        }
    }

    pub fn read(e: quinn::ReadError) -> Fail {
        match e {
            quinn::ReadError::ConnectionLost(c) => Fail::connection(&c),
            other => Fail { why: Failure::Stream, message: other.to_string() },
        }
    }
}

/// QUIC counters of the bench's connections (summed; the whole life of
/// each connection, warm-up included), from quinn's connection stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QuicStats {
    pub tx_datagrams: u64,
    /// Send system calls (fewer than datagrams with GSO).
    pub tx_ios: u64,
    pub tx_bytes: u64,
    pub rx_datagrams: u64,
    pub rx_bytes: u64,
    pub tx_acks: u64,
    pub rx_acks: u64,
    /// `MAX_STREAMS` updates from the server (stream credit).
    pub rx_max_streams: u64,
    pub tx_stop_sending: u64,
    pub lost_packets: u64,
    /// Smoothed round-trip time at the end, microseconds (mean over connections).
    pub rtt_us: u64,
    /// Largest UDP payload the path reached (MTU discovery), the most of any connection.
    pub path_mtu: u16,
    pub connections: u64,
}

impl QuicStats {
    pub(super) fn of(s: &quinn::ConnectionStats) -> QuicStats {
        QuicStats {
            tx_datagrams: s.udp_tx.datagrams,
            tx_ios: s.udp_tx.ios,
            tx_bytes: s.udp_tx.bytes,
            rx_datagrams: s.udp_rx.datagrams,
            rx_bytes: s.udp_rx.bytes,
            tx_acks: s.frame_tx.acks,
            rx_acks: s.frame_rx.acks,
            rx_max_streams: s.frame_rx.max_streams_bidi,
            tx_stop_sending: s.frame_tx.stop_sending,
            lost_packets: s.path.lost_packets,
            rtt_us: s.path.rtt.as_micros() as u64,
            path_mtu: s.path.current_mtu,
            connections: 1,
        }
    }

    pub(super) fn add(&mut self, o: &QuicStats) {
        let rtt_sum = self.rtt_us * self.connections + o.rtt_us * o.connections;
        self.tx_datagrams += o.tx_datagrams;
        self.tx_ios += o.tx_ios;
        self.tx_bytes += o.tx_bytes;
        self.rx_datagrams += o.rx_datagrams;
        self.rx_bytes += o.rx_bytes;
        self.tx_acks += o.tx_acks;
        self.rx_acks += o.rx_acks;
        self.rx_max_streams += o.rx_max_streams;
        self.tx_stop_sending += o.tx_stop_sending;
        self.lost_packets += o.lost_packets;
        self.path_mtu = self.path_mtu.max(o.path_mtu);
        self.connections += o.connections;
        self.rtt_us = rtt_sum.checked_div(self.connections).unwrap_or(0);
    }
}
