//! What a request came to, as types: the refusal of a whole request, the
//! outcome of one query (what usage, the audit log and metrics record), and
//! the label of a finished request. Strings only at the edge (`name`).

use elig_engine::query::KeyKind;
use elig_wire::answer::{Status, Str, Validity};
use elig_wire::frame::{Frame, Kind};

/// A request refused as a whole: the payload of an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }

    pub fn frame(&self) -> Frame {
        Frame::error(self.code, self.message.clone())
    }
}

/// The requests of the protocol, by their request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request {
    Lookup,
    Bulk,
    Tickets,
    Status,
    Usage,
    Swap,
    Delta,
    DeltaCheck,
}

impl Request {
    /// The request a client frame starts; `None` for frames that start none.
    pub fn of(kind: Kind) -> Option<Request> {
        Some(match kind {
            Kind::Lookup => Request::Lookup,
            Kind::BulkBegin => Request::Bulk,
            Kind::Tickets => Request::Tickets,
            Kind::Status => Request::Status,
            Kind::Usage => Request::Usage,
            Kind::Swap => Request::Swap,
            Kind::Delta => Request::Delta,
            Kind::DeltaCheck => Request::DeltaCheck,
            Kind::BulkItem | Kind::Answer | Kind::Unit | Kind::Summary | Kind::Report | Kind::Error => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Request::Lookup => "lookup",
            Request::Bulk => "bulk",
            Request::Tickets => "tickets",
            Request::Status => "status",
            Request::Usage => "usage",
            Request::Swap => "swap",
            Request::Delta => "delta",
            Request::DeltaCheck => "delta_check",
        }
    }
}

/// What a query asked, as far as it could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asked {
    /// A well-formed query by this key.
    Key(KeyKind),
    /// A query that does not parse or validate.
    Malformed,
    /// A query the caller's role may not make.
    Refused,
}

impl Asked {
    pub fn name(self) -> &'static str {
        match self {
            Asked::Key(k) => k.name(),
            Asked::Malformed => "malformed",
            Asked::Refused => "refused",
        }
    }
}

/// What one query (a lookup, a bulk item, a ticket fetch) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Lookup, bulk or tickets.
    pub request: Request,
    pub asked: Asked,
    /// The institution the query was made for ("" if unknown).
    pub institution: String,
    /// The key asked (hashed before it is logged; never logged as is).
    pub key: Option<String>,
    pub generation: u64,
    pub delta_seq: u64,
    pub status: Status,
    pub validity: Option<Validity>,
    /// `ProcessingResultCode` of a refused query.
    pub code: Option<Str>,
    /// Position in a bulk inquiry, from 0.
    pub item: Option<u64>,
    /// A My Number certificate check was made (J-LIS bills these).
    pub certificate_check: bool,
}

impl Outcome {
    pub fn is_normal(&self) -> bool {
        self.status == Status::Normal
    }

    /// The outcome label of this query.
    pub fn verdict(&self) -> Verdict {
        match (self.asked, self.status) {
            (Asked::Refused, _) => Verdict::Refused,
            (_, Status::Normal) => Verdict::Normal,
            (_, Status::Error) => Verdict::Error,
        }
    }
}

/// How a request or query ended, for metrics: answered normally, answered
/// with an error (or the peer went away), or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Normal,
    Error,
    Refused,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Normal => "normal",
            Verdict::Error => "error",
            Verdict::Refused => "refused",
        }
    }
}

/// The metric labels of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// `None` until a frame that starts a request arrived.
    pub request: Option<Request>,
    /// What the query asked (lookups and ticket fetches).
    pub asked: Option<Asked>,
    pub verdict: Verdict,
}

impl Default for Label {
    fn default() -> Label {
        Label { request: None, asked: None, verdict: Verdict::Refused }
    }
}

impl Label {
    pub fn request_name(&self) -> &'static str {
        self.request.map_or("unknown", Request::name)
    }

    /// The `kind` label: the query's key kind, `bulk`, or `-`.
    pub fn kind_name(&self) -> &'static str {
        match (self.asked, self.request) {
            (Some(a), _) => a.name(),
            (None, Some(Request::Bulk)) => "bulk",
            _ => "-",
        }
    }
}

/// Where the machine sends the outcome of every query it answers.
pub trait Record {
    fn query(&mut self, outcome: &Outcome);
}

/// Collects outcomes (tests, tools).
impl Record for Vec<Outcome> {
    fn query(&mut self, outcome: &Outcome) {
        self.push(outcome.clone());
    }
}
