//! The request machine of one stream: what the client's frames come to.
//!
//! It is fed what was read from the stream ([`Input`]) and says what to do
//! next ([`Step`]): read on, run an operator job, or finish; the reply frames
//! are appended to an output buffer as they are computed, and every answered
//! query is handed to a [`Record`]. It holds every frame-order rule of the
//! protocol and every refusal; its drivers (the QUIC stream task, and
//! [`super::local`] for bytes in memory) move bytes and decide nothing.
//!
//! One request per stream: a request frame (a bulk inquiry: `BulkBegin`
//! then exactly the items it declared), then the end of the stream. Queries
//! pin the generation live when the request starts and answer from it to the
//! end (a bulk inquiry included), so a swap or a delta batch never mixes
//! states in one answer.

use elig_engine::engine::Engine;
use elig_engine::lookup::{Clock, Reply};
use elig_wire::codes;
use elig_wire::frame::{encode_json_into, encode_with, FrameError, Kind};
use elig_wire::reader::{FrameReader, Next, Step as Decoded};
use elig_wire::report::Limits;
use elig_wire::request::{BulkBegin, ErrorBody, SwapRequest};

use super::operator::{Job, Report};
use super::outcome::{Label, Outcome, Record, Refusal, Request, Verdict};
use super::query::{answer_parsed, behind_message, checked_query, Accept, Bulk, Rejected};
use super::role::Role;
use elig_engine::query::Query;

/// What was read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A whole frame; its payload is passed beside it.
    Frame(Kind),
    /// A frame over the limit whose payload was skipped unread (only while
    /// [`Machine::skipping`] says so).
    Oversized { kind: Kind, len: usize, max: usize },
    /// The client finished its side at a frame boundary.
    End,
    /// The stream could not be read as frames (truncated, too large,
    /// unknown kind, no frame in time): refused with this.
    Unreadable(Refusal),
}

impl From<FrameError> for Input {
    fn from(e: FrameError) -> Input {
        Input::Unreadable(frame_refusal(&e))
    }
}

/// The refusal of a stream that could not be read as frames.
pub fn frame_refusal(e: &FrameError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

/// What the driver does next.
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Send what the output holds (unless the next frame is already
    /// buffered), then read the next input.
    Read,
    /// Run this job, then hand its result to [`Machine::job_done`].
    Job(Job),
    /// The query asks for `MinimumDeltaSequence` newer than the live seq:
    /// wait until the engine shows this seq (at most `min_seq_wait_ms`),
    /// then call [`Machine::waited`].
    Wait(u64),
    /// Send what the output holds and finish the stream.
    Finish(Ending),
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Answered,
    /// Refused with an `Error` frame (the last frame of the output); the
    /// driver stops reading the client's side.
    Refused(Refusal),
}

#[derive(Debug)]
enum State {
    /// Waiting for the request frame.
    Start,
    /// A bulk inquiry with items still expected.
    Bulk(Box<Bulk>),
    /// Every declared item answered: the end of the stream must follow.
    BulkDone(Box<Bulk>),
    /// A job is running for this request.
    Job(Kind),
    /// A lookup or ticket fetch waiting for the delta seq its query asked for.
    Waiting {
        kind: Kind,
        payload: Vec<u8>,
        query: Box<Query>,
    },
    /// A one-frame request answered: the end of the stream must follow.
    Answered(Kind),
    Over,
}

/// The request machine of one stream.
#[derive(Debug)]
pub struct Machine<'a> {
    engine: &'a Engine,
    role: &'a Role,
    limits: &'a Limits,
    clock: Clock,
    state: State,
    label: Label,
    /// Why this node does not answer lookups yet (joining), if so.
    not_ready: Option<String>,
}

impl<'a> Machine<'a> {
    pub fn new(engine: &'a Engine, role: &'a Role, limits: &'a Limits, clock: Clock) -> Machine<'a> {
        Machine { engine, role, limits, clock, state: State::Start, label: Label::default(), not_ready: None }
    }

    /// A machine of a node that is not ready to answer lookups (it is
    /// joining: downloading its snapshot, replaying the stream): lookups,
    /// ticket fetches and bulk inquiries are refused `EN01`, retryable on
    /// another node; operator requests are served.
    pub fn not_ready(mut self, why: Option<String>) -> Machine<'a> {
        self.not_ready = why;
        self
    }

    /// The metric labels of the request so far.
    pub fn label(&self) -> Label {
        self.label
    }

    /// The payload limit of the next frame of `kind`: a delta batch may be
    /// larger than a query, and only an operator's.
    pub fn limit(&self, kind: Kind) -> usize {
        let l = self.limits;
        match self.state {
            State::Start | State::Answered(_) if matches!(kind, Kind::Delta | Kind::DeltaCheck) && self.role.is_operator() => {
                l.max_delta_bytes.max(l.max_frame_bytes)
            }
            _ => l.max_frame_bytes,
        }
    }

    /// `Some(max)` while bulk items are expected: an item over `max` is
    /// answered in its place and skipped unread, the items after it are
    /// answered.
    pub fn skipping(&self) -> Option<usize> {
        matches!(self.state, State::Bulk(_)).then_some(self.limits.max_frame_bytes)
    }

    /// The next input from `reader` as this machine reads it (its limits),
    /// or `None` when more bytes are needed.
    pub fn decode(&self, reader: &mut FrameReader) -> Option<Input> {
        let decoded = match self.skipping() {
            Some(max) => reader.decode_skipping(max),
            None => reader.decode(|k| self.limit(k)).map(|d| match d {
                Decoded::Ready(kind) => Decoded::Ready(Next::Frame(kind)),
                Decoded::End => Decoded::End,
                Decoded::More => Decoded::More,
            }),
        };
        match decoded {
            Err(e) => Some(e.into()),
            Ok(Decoded::More) => None,
            Ok(Decoded::End) => Some(Input::End),
            Ok(Decoded::Ready(Next::Frame(kind))) => Some(Input::Frame(kind)),
            Ok(Decoded::Ready(Next::Oversized { kind, len, max })) => Some(Input::Oversized { kind, len, max }),
        }
    }

    /// Feed one input (`payload` is a frame's payload); reply frames are
    /// appended to `out`, answered queries go to `record`.
    pub fn input(&mut self, input: Input, payload: &[u8], out: &mut Vec<u8>, record: &mut impl Record) -> Step {
        let state = std::mem::replace(&mut self.state, State::Over);
        match (state, input) {
            (_, Input::Unreadable(r)) => self.refuse(r, out),
            (State::Start, Input::Frame(kind)) => self.request(kind, payload, out, record),
            (State::Start, Input::End) => {
                self.refuse(Refusal::new(codes::MALFORMED_FRAME, "empty request stream: send one request frame"), out)
            }
            (State::Bulk(mut bulk), Input::Frame(Kind::BulkItem)) => {
                let o = bulk.item(self.role, payload, self.clock, |r| answer_frame(out, r));
                record.query(&o);
                self.after_item(bulk)
            }
            (State::Bulk(mut bulk), Input::Oversized { kind: Kind::BulkItem, len, max }) => {
                let o = bulk.oversized(self.role, len, max, self.clock, |r| answer_frame(out, r));
                record.query(&o);
                self.after_item(bulk)
            }
            (State::Bulk(_), Input::Frame(other) | Input::Oversized { kind: other, .. }) => self.refuse(
                Refusal::new(codes::UNEXPECTED_FRAME, format!("expected a bulk_item frame inside a bulk inquiry, got '{}'", other.name())),
                out,
            ),
            (State::Bulk(bulk), Input::End) => match bulk.finish() {
                Err(r) => self.refuse(r, out),
                Ok(_) => self.refuse(bulk.more_than_declared(), out),
            },
            (State::BulkDone(bulk), Input::End) => match bulk.finish() {
                Ok(summary) => {
                    encode_json_into(out, Kind::Summary, summary);
                    Step::Finish(Ending::Answered)
                }
                Err(r) => self.refuse(r, out),
            },
            (State::BulkDone(bulk), Input::Frame(next) | Input::Oversized { kind: next, .. }) => {
                let declared = bulk.declared();
                self.refuse(
                    Refusal::new(
                        codes::BULK_COUNT,
                        format!("more items than the {declared} declared (got a '{}' frame after the last)", next.name()),
                    ),
                    out,
                )
            }
            (State::Answered(_), Input::End) => Step::Finish(Ending::Answered),
            (State::Answered(request), Input::Frame(next) | Input::Oversized { kind: next, .. }) => {
                self.refuse(frame_after_request(request, next), out)
            }
            // Oversized frames are skipped only inside a bulk inquiry.
            (State::Start, Input::Oversized { len, max, .. }) => {
                self.refuse(frame_refusal(&FrameError::TooLarge { len: len as u64, max }), out)
            }
            (State::Job(_) | State::Waiting { .. } | State::Over, _) => {
                self.driver_bug("an input after the request ended or while its job runs", out)
            }
        }
    }

    /// The result of the job [`Step::Job`] asked for.
    pub fn job_done(&mut self, result: Result<Report, Refusal>, out: &mut Vec<u8>) -> Step {
        let State::Job(kind) = std::mem::replace(&mut self.state, State::Over) else {
            return self.driver_bug("a job result with no job running", out);
        };
        match result {
            Ok(report) => {
                match &report {
                    Report::Status(s) => encode_json_into(out, Kind::Report, &**s),
                    Report::Usage(u) => encode_json_into(out, Kind::Report, u),
                    Report::Delta(a) => encode_json_into(out, Kind::Report, a),
                    Report::Swap(s) => encode_json_into(out, Kind::Report, s),
                    Report::DeltaCheck(c) => encode_json_into(out, Kind::Report, c),
                }
                self.label.verdict = Verdict::Normal;
                self.state = State::Answered(kind);
                Step::Read
            }
            Err(r) => self.refuse(r, out),
        }
    }

    /// The wait [`Step::Wait`] asked for is over (the seq reached, or the
    /// bound): answer now, or refuse `EN02` if the seq is still not live.
    pub fn waited(&mut self, out: &mut Vec<u8>, record: &mut impl Record) -> Step {
        let State::Waiting { kind, payload, query } = std::mem::replace(&mut self.state, State::Over) else {
            return self.driver_bug("a wait ended with no query waiting", out);
        };
        let seq = self.engine.pin().view().delta_seq;
        if let Some(min) = query.min_delta_seq.filter(|min| *min > seq) {
            // Never an answer from before the seq the caller asked for.
            return self.refuse(Refusal::new(codes::BEHIND, behind_message(min, seq)), out);
        }
        self.answer(kind, &payload, Ok(*query), out, record)
    }

    /// The peer went away (a read or write failed with nothing to tell it).
    pub fn gone(&mut self) {
        self.state = State::Over;
        self.label.verdict = Verdict::Error;
    }

    fn request(&mut self, kind: Kind, payload: &[u8], out: &mut Vec<u8>, record: &mut impl Record) -> Step {
        self.label.request = Request::of(kind);
        if let (Some(why), Kind::Lookup | Kind::Tickets | Kind::BulkBegin) = (&self.not_ready, kind) {
            let message = format!("{why}; ask another node");
            return self.refuse(Refusal::new(codes::NOT_READY, message), out);
        }
        match kind {
            Kind::Lookup | Kind::Tickets => {
                let accept = if kind == Kind::Lookup { Accept::Any } else { Accept::Delegated };
                let parsed = checked_query(self.role, payload, self.clock, accept);
                let ahead = parsed.as_ref().ok().and_then(|q| q.min_delta_seq).filter(|min| *min > self.engine.pin().view().delta_seq);
                match (ahead, parsed) {
                    (Some(min), Ok(query)) => {
                        self.state = State::Waiting { kind, payload: payload.to_vec(), query: Box::new(query) };
                        Step::Wait(min)
                    }
                    (_, parsed) => self.answer(kind, payload, parsed, out, record),
                }
            }
            Kind::BulkBegin => self.bulk_begin(payload, out),
            Kind::Status | Kind::Usage | Kind::Delta | Kind::DeltaCheck | Kind::Swap => self.job(kind, payload, out),
            Kind::BulkItem => self.refuse(Refusal::new(codes::UNEXPECTED_FRAME, "a bulk_item frame must follow a bulk_begin frame"), out),
            Kind::Answer | Kind::Unit | Kind::Summary | Kind::Report | Kind::Error => self.refuse(
                Refusal::new(
                    codes::UNEXPECTED_FRAME,
                    format!("frame kind '{}' (0x{:02x}) is sent by servers, not clients", kind.name(), kind as u8),
                ),
                out,
            ),
        }
    }

    /// Answer a lookup or a ticket fetch, `parsed` from `payload`, from the
    /// live generation (the seq only grows: at or past the one it waited for).
    fn answer(
        &mut self,
        kind: Kind,
        payload: &[u8],
        parsed: Result<Query, Box<Rejected>>,
        out: &mut Vec<u8>,
        record: &mut impl Record,
    ) -> Step {
        let gen = self.engine.pin();
        let view = gen.view();
        if kind == Kind::Lookup {
            let o = answer_parsed(&view, gen.id(), payload, self.clock, Request::Lookup, parsed, |r| answer_frame(out, r));
            self.answered(&o, record);
        } else {
            let o = answer_parsed(&view, gen.id(), payload, self.clock, Request::Tickets, parsed, |r| {
                // The units, then the summary: the answer without its units,
                // with the counts in its header.
                for at in 0..r.units() {
                    encode_with(out, Kind::Unit, |out| r.render_unit(at, out));
                }
                encode_with(out, Kind::Summary, |out| r.render_summary(out));
            });
            self.answered(&o, record);
        }
        self.state = State::Answered(kind);
        Step::Read
    }

    fn answered(&mut self, o: &Outcome, record: &mut impl Record) {
        record.query(o);
        self.label.asked = Some(o.asked);
        self.label.verdict = o.verdict();
    }

    fn bulk_begin(&mut self, header: &[u8], out: &mut Vec<u8>) -> Step {
        if self.role.is_operator() {
            return self.refuse(Refusal::new(codes::PERMISSION, "an operator certificate may not query eligibility"), out);
        }
        let begin: BulkBegin = match serde_json::from_slice(header) {
            Ok(b) => b,
            Err(e) => return self.refuse(Refusal::new(codes::BAD_PAYLOAD, format!("bulk header must be {{\"items\": N}}: {e}")), out),
        };
        if begin.items > self.limits.max_bulk_items {
            let message =
                format!("bulk inquiry of {} items exceeds the limit of {} items; split it", begin.items, self.limits.max_bulk_items);
            return self.refuse(Refusal::new(codes::BULK_LIMIT, message), out);
        }
        let bulk = Box::new(Bulk::new(self.engine.pin(), begin.items));
        self.label.verdict = Verdict::Normal;
        self.state = if bulk.remaining() == 0 { State::BulkDone(bulk) } else { State::Bulk(bulk) };
        Step::Read
    }

    fn after_item(&mut self, bulk: Box<Bulk>) -> Step {
        self.state = if bulk.remaining() == 0 { State::BulkDone(bulk) } else { State::Bulk(bulk) };
        Step::Read
    }

    /// An operator request: the role and the payload are checked here, the
    /// job is run by the driver.
    fn job(&mut self, kind: Kind, payload: &[u8], out: &mut Vec<u8>) -> Step {
        if !self.role.is_operator() {
            let message = format!("{} needs an operator certificate; this one is {}", kind.name(), self.role);
            return self.refuse(Refusal::new(codes::PERMISSION, message), out);
        }
        let job = match kind {
            Kind::Status => Job::Status,
            Kind::Usage => Job::Usage,
            Kind::Delta => Job::Delta(payload.to_vec()),
            Kind::DeltaCheck => Job::CheckDelta(payload.to_vec()),
            _ => match swap_dir(payload) {
                Ok(dir) => Job::Swap(dir),
                Err(r) => return self.refuse(r, out),
            },
        };
        self.state = State::Job(kind);
        Step::Job(job)
    }

    fn refuse(&mut self, r: Refusal, out: &mut Vec<u8>) -> Step {
        self.state = State::Over;
        self.label.verdict = Verdict::Refused;
        encode_json_into(out, Kind::Error, &ErrorBody { code: r.code.to_string(), message: r.message.clone() });
        Step::Finish(Ending::Refused(r))
    }

    fn driver_bug(&mut self, what: &str, out: &mut Vec<u8>) -> Step {
        self.refuse(Refusal::new(codes::INTERNAL, format!("the server failed while serving the request: {what}")), out)
    }
}

/// The directory of a `Swap` payload (`{"snapshot_dir": "/absolute/path"}`).
fn swap_dir(payload: &[u8]) -> Result<String, Refusal> {
    let req: SwapRequest = serde_json::from_slice(payload)
        .map_err(|e| Refusal::new(codes::BAD_PAYLOAD, format!("swap request must be {{\"snapshot_dir\": \"/absolute/path\"}}: {e}")))?;
    if !std::path::Path::new(&req.snapshot_dir).is_absolute() {
        return Err(Refusal::new(
            codes::BAD_PAYLOAD,
            format!("snapshot_dir '{}' must be an absolute path (the server reads it); nothing was swapped", req.snapshot_dir),
        ));
    }
    Ok(req.snapshot_dir)
}

/// An `Answer` frame of a reply, rendered straight into `out`.
fn answer_frame(out: &mut Vec<u8>, reply: &Reply<'_>) {
    encode_with(out, Kind::Answer, |out| reply.render(out));
}

/// The frame-order rule after a one-frame request (`lookup`, `tickets`,
/// `status`, `usage`, `swap`, `delta`): one request per stream, so a frame
/// after it is refused (`EF04`), never silently ignored. Its answer has
/// been sent; this error frame follows it.
fn frame_after_request(request: Kind, next: Kind) -> Refusal {
    Refusal::new(
        codes::UNEXPECTED_FRAME,
        format!(
            "one request per stream: a '{}' frame followed the '{}' request and was not answered; open a new stream for each request",
            next.name(),
            request.name()
        ),
    )
}
