//! The request handler: a plain function of one snapshot generation, the
//! caller's role and the request. No quinn or tokio types: tests call it
//! directly, and `server` is thin glue that moves frames in and out.
//!
//! Queries always get an answer document, even when refused (malformed, or
//! the role may not ask it: `ProcessingResultStatus` 2 with a code that names
//! why). A request that cannot be served as a whole (an operator command
//! without the operator role, a bulk inquiry over the limit) is a
//! [`Refusal`], sent as an `Error` frame.
//!
//! The operator's writes ([`delta`], [`swap`]) and [`status`] take the
//! [`Engine`]: they block (fsync, verifying and pre-faulting a snapshot,
//! the engine's writer lock), so the server runs them off the async
//! runtime's worker threads.

use std::collections::BTreeMap;
use std::path::Path;

use elig_engine::answer::{Answer, BulkConfirmUnit};
use elig_engine::engine::{DeltaError, Engine, Generation, SwapError};
use elig_engine::lookup::{hints, Clock, Hints, View};
use elig_engine::query::{parse_query, parse_query_for, Query, QueryError, QueryKey};
use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::protocol::{codes, BulkBegin, BulkSummary, DeltaAck, Kind, SwapRequest, SwapResult};
use crate::roles::Role;
use crate::usage::{Usage, UsageReport};

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

    fn operator_only(what: &str, role: &Role) -> Refusal {
        Refusal::new(codes::PERMISSION, format!("{what} needs an operator certificate; this one is {role}"))
    }
}

/// What one query (a lookup, a bulk item, a ticket fetch) came to: what
/// usage accounting, the audit log and metrics record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `lookup`, `bulk` or `tickets`.
    pub request: &'static str,
    /// The lookup kind (`QueryKey::kind`), `malformed` or `refused`.
    pub kind: &'static str,
    /// The institution the query was made for ("" if unknown).
    pub institution: String,
    /// The key asked (hashed before it is logged; never logged as is).
    pub key: Option<String>,
    pub generation: u64,
    pub delta_seq: u64,
    /// `1` normal, `2` error (`ProcessingResultStatus`).
    pub status: String,
    pub validity: Option<String>,
    pub code: Option<String>,
    /// Position in a bulk inquiry, from 0.
    pub item: Option<u64>,
    /// A My Number certificate check was made (J-LIS bills these).
    pub certificate_check: bool,
}

impl Outcome {
    pub fn is_normal(&self) -> bool {
        self.status == "1"
    }
}

/// Which query kinds a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    Any,
    /// Bulk inquiries: insurance card and medical ticket queries.
    CardData,
    Delegated,
}

/// Answer one query document.
pub fn lookup(gen: &Generation, role: &Role, query: &[u8], clock: Clock) -> (Answer, Outcome) {
    answer_one(&gen.view(), gen.id(), role, query, clock, "lookup", Accept::Any)
}

/// A delegated-ticket fetch: the units, then the summary (the answer
/// without its units, with the counts in its header).
pub fn tickets(gen: &Generation, role: &Role, query: &[u8], clock: Clock) -> (Vec<BulkConfirmUnit>, Answer, Outcome) {
    let (mut answer, outcome) = answer_one(&gen.view(), gen.id(), role, query, clock, "tickets", Accept::Delegated);
    if answer.is_error() {
        return (Vec::new(), answer, outcome);
    }
    let units = std::mem::take(&mut answer.message_body.bulk_confirm_unit_list);
    (units, answer, outcome)
}

/// A bulk inquiry in progress: items are answered one at a time, in order,
/// all from the generation and delta sequence it began with.
pub struct Bulk<'g> {
    view: View<'g>,
    generation: u64,
    role: Role,
    clock: Clock,
    declared: u64,
    summary: BulkSummary,
}

impl std::fmt::Debug for Bulk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulk").field("role", &self.role).field("declared", &self.declared).field("summary", &self.summary).finish()
    }
}

impl<'g> Bulk<'g> {
    /// Start a bulk inquiry from its `BulkBegin` payload.
    pub fn begin(gen: &'g Generation, role: &Role, header: &[u8], limits: &Limits, clock: Clock) -> Result<Bulk<'g>, Refusal> {
        if role.is_operator() {
            return Err(Refusal::new(codes::PERMISSION, "an operator certificate may not query eligibility"));
        }
        let begin: BulkBegin = serde_json::from_slice(header)
            .map_err(|e| Refusal::new(codes::BAD_PAYLOAD, format!("bulk header must be {{\"items\": N}}: {e}")))?;
        if begin.items > limits.max_bulk_items {
            return Err(Refusal::new(
                codes::BULK_LIMIT,
                format!("bulk inquiry of {} items exceeds the limit of {} items; split it", begin.items, limits.max_bulk_items),
            ));
        }
        let view = gen.view();
        let summary = BulkSummary { generation: gen.id(), delta_seq: view.delta_seq, ..Default::default() };
        Ok(Bulk { view, generation: gen.id(), role: role.clone(), clock, declared: begin.items, summary })
    }

    /// Items the caller declared.
    pub fn declared(&self) -> u64 {
        self.declared
    }

    /// Items still expected.
    pub fn remaining(&self) -> u64 {
        self.declared - self.summary.items
    }

    /// Answer the next item.
    pub fn item(&mut self, query: &[u8]) -> Result<(Answer, Outcome), Refusal> {
        if self.remaining() == 0 {
            return Err(Refusal::new(codes::BULK_COUNT, format!("more items than the {} declared", self.declared)));
        }
        let (answer, mut outcome) = answer_one(&self.view, self.generation, &self.role, query, self.clock, "bulk", Accept::CardData);
        outcome.item = Some(self.summary.items);
        self.summary.items += 1;
        if answer.is_error() {
            self.summary.errors += 1;
        } else {
            self.summary.normal += 1;
        }
        Ok((answer, outcome))
    }

    /// Answer, in its place, an item whose frame of `len` bytes was over
    /// the `max` a frame may have: its payload was skipped unread, so the
    /// answer is an error naming the sizes and the bulk goes on.
    pub fn oversized(&mut self, len: usize, max: usize) -> Result<(Answer, Outcome), Refusal> {
        if self.remaining() == 0 {
            return Err(Refusal::new(codes::BULK_COUNT, format!("more items than the {} declared", self.declared)));
        }
        let error = QueryError::new(
            codes::FRAME_TOO_LARGE,
            "",
            format!(
                "bulk item {} of {len} bytes exceeds the limit of {max} bytes (max_frame_bytes) and was not read; the other items are answered",
                self.summary.items + 1
            ),
        );
        let institution = self.role.institution().unwrap_or_default().to_string();
        // Nothing of the item was read: no echo.
        let hints = Hints { institution: institution.clone(), ..Hints::default() };
        let answer = self.view.refuse(&error, &hints, self.clock);
        let outcome = Outcome {
            request: "bulk",
            kind: "malformed",
            institution,
            key: None,
            generation: self.generation,
            delta_seq: self.view.delta_seq,
            status: "2".into(),
            validity: None,
            code: Some(codes::FRAME_TOO_LARGE.to_string()),
            item: Some(self.summary.items),
            certificate_check: false,
        };
        self.summary.items += 1;
        self.summary.errors += 1;
        Ok((answer, outcome))
    }

    /// The summary, once every declared item was answered.
    pub fn finish(self) -> Result<BulkSummary, Refusal> {
        if self.remaining() != 0 {
            return Err(Refusal::new(
                codes::BULK_COUNT,
                format!("bulk inquiry ended after {} of {} declared items", self.summary.items, self.declared),
            ));
        }
        Ok(self.summary)
    }
}

/// What the server knows about itself, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `YYYYMMDDHHmmss`, Japan time.
    pub started: u64,
    pub uptime_secs: u64,
    pub connections_active: u64,
    pub connections_total: u64,
    pub requests_total: u64,
    pub limits: Option<Limits>,
    /// Resident set size of the process (`VmRSS` of `/proc/self/status`), where available.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// Connection attempts and what came of them (`admission`).
    #[serde(default)]
    pub handshakes: HandshakeCounts,
    /// The delta feed, when this node follows the stream (`[feed]`).
    #[serde(default)]
    pub feed: Option<crate::feed::FeedStatus>,
}

/// Connection attempts since start, by what the server did with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeCounts {
    /// Admitted: a handshake was started.
    pub accepted: u64,
    /// Answered with a stateless Retry (address validation).
    pub retried: u64,
    /// Dropped unanswered: Initials from a socket that ignored its Retries
    /// (most of them dropped on receive, before quinn).
    #[serde(default)]
    pub ignored: u64,
    /// Refused (connection or per-address limit).
    pub refused: u64,
    /// Admitted, but not done within `handshake_timeout_secs`.
    pub timed_out: u64,
}

/// Size of the deltas applied over the live snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayInfo {
    /// Change lines applied (upserts and deletes).
    pub changed_rows: u64,
    /// Persons with a record version written by deltas.
    pub persons: u64,
    /// Bytes of those versions.
    pub bytes: u64,
}

/// The `status` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub server_version: String,
    pub protocol: String,
    /// The live snapshot generation.
    pub generation: u64,
    /// The last delta batch visible to lookups.
    pub delta_seq: u64,
    pub persons: u64,
    /// When the snapshot was compiled, `YYYYMMDDHHmmss`.
    pub snapshot_created: u64,
    pub snapshot_dir: String,
    /// The last delta batch the snapshot itself includes (its manifest).
    #[serde(default)]
    pub snapshot_delta_seq: u64,
    /// Rows per table in the snapshot (its manifest).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    /// Deltas applied over the snapshot.
    #[serde(default)]
    pub overlay: OverlayInfo,
    #[serde(default)]
    pub delta_log: Option<String>,
    /// Bytes of the snapshot files mapped into memory.
    pub mapped_bytes: u64,
    /// Whether those pages are locked in memory (the kernel cannot page
    /// them out); false when eligd lacks `CAP_IPC_LOCK` or `RLIMIT_MEMLOCK`.
    #[serde(default)]
    pub memory_locked: bool,
    #[serde(flatten)]
    pub runtime: RuntimeInfo,
}

fn operator(what: &str, role: &Role) -> Result<(), Refusal> {
    if role.is_operator() {
        Ok(())
    } else {
        Err(Refusal::operator_only(what, role))
    }
}

/// Operator: the server's status. Takes the engine's writer lock briefly
/// (it waits for a swap in progress): call off the async runtime.
pub fn status(engine: &Engine, role: &Role, runtime: RuntimeInfo) -> Result<StatusReport, Refusal> {
    operator("status", role)?;
    let s = engine.status();
    Ok(StatusReport {
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: String::from_utf8_lossy(crate::protocol::ALPN).into_owned(),
        generation: s.generation,
        delta_seq: s.delta_seq,
        persons: s.persons,
        snapshot_created: s.created,
        snapshot_dir: s.snapshot_dir,
        snapshot_delta_seq: s.snapshot_delta_seq,
        counts: s.counts.into_iter().collect(),
        overlay: OverlayInfo { changed_rows: s.overlay.changed_rows, persons: s.overlay.persons, bytes: s.overlay.bytes },
        delta_log: s.delta_log,
        mapped_bytes: s.mapped_bytes,
        memory_locked: s.memory_locked,
        runtime,
    })
}

/// Operator: apply one delta batch (the JSON Lines text as received).
/// Acknowledged only once the engine logged it durably and published it.
/// Blocks (fsync): call off the async runtime.
pub fn delta(engine: &Engine, role: &Role, batch: &[u8]) -> Result<DeltaAck, Refusal> {
    operator("delta", role)?;
    if !engine.has_delta_log() {
        return Err(Refusal::new(
            codes::DELTA_NOT_DURABLE,
            "this server runs without a delta log, so a batch could not survive a restart; nothing was applied",
        ));
    }
    engine.apply(batch).map(DeltaAck::from).map_err(|e| delta_refusal(&e))
}

/// The refusal for a batch the engine did not take.
pub fn delta_refusal(e: &DeltaError) -> Refusal {
    let code = match e {
        DeltaError::Gap { .. } => codes::DELTA_GAP,
        DeltaError::Conflict { .. } => codes::DELTA_CONFLICT,
        DeltaError::Log { .. } => codes::DELTA_NOT_DURABLE,
        _ => codes::DELTA_INVALID,
    };
    let message = match e {
        DeltaError::Log { .. } => format!("{e}; nothing was applied"),
        _ => format!("{e}; nothing of it was applied"),
    };
    Refusal::new(code, message)
}

/// The frame-order rule after a one-frame request (`lookup`, `tickets`,
/// `status`, `usage`, `swap`, `delta`): one request per stream, so a frame
/// after it is refused (`EF04`), never silently ignored. Its answer has
/// been sent; this error frame follows it.
pub fn frame_after_request(request: Kind, next: Kind) -> Refusal {
    Refusal::new(
        codes::UNEXPECTED_FRAME,
        format!(
            "one request per stream: a '{}' frame followed the '{}' request and was not answered; open a new stream for each request",
            next.name(),
            request.name()
        ),
    )
}

/// Operator: swap in the snapshot named by a `Swap` payload
/// (`{"snapshot_dir": "/absolute/path"}`). Verifies and pre-faults the
/// whole snapshot before it goes live: blocks for as long as that takes,
/// so call it off the async runtime. A refused swap leaves the live
/// snapshot serving.
pub fn swap(engine: &Engine, role: &Role, payload: &[u8]) -> Result<SwapResult, Refusal> {
    operator("swap", role)?;
    let req: SwapRequest = serde_json::from_slice(payload)
        .map_err(|e| Refusal::new(codes::BAD_PAYLOAD, format!("swap request must be {{\"snapshot_dir\": \"/absolute/path\"}}: {e}")))?;
    let dir = Path::new(&req.snapshot_dir);
    if !dir.is_absolute() {
        return Err(Refusal::new(
            codes::BAD_PAYLOAD,
            format!("snapshot_dir '{}' must be an absolute path (the server reads it); nothing was swapped", req.snapshot_dir),
        ));
    }
    let r = engine.swap(dir).map_err(|e| swap_refusal(&e))?;
    Ok(SwapResult {
        previous_generation: r.previous_generation,
        generation: r.generation,
        snapshot_dir: req.snapshot_dir,
        snapshot_delta_seq: r.snapshot_delta_seq,
        replayed: r.replayed as u64,
        // The carried-over batches follow the snapshot's own without a gap.
        delta_seq: r.snapshot_delta_seq + r.replayed as u64,
        verify_ms: r.verify_ms,
        prefault_ms: r.prefault_ms,
        total_ms: r.total_ms,
        compact_error: r.compact_error,
    })
}

/// The refusal for a swap the engine did not make.
pub fn swap_refusal(e: &SwapError) -> Refusal {
    use elig_engine::envelope::EnvelopeError;
    use elig_engine::snapshot::SnapshotError;
    let code = match e {
        SwapError::Snapshot(SnapshotError::Version { .. })
        | SwapError::Snapshot(SnapshotError::Envelope { source: EnvelopeError::Version { .. }, .. }) => codes::SWAP_VERSION,
        SwapError::NotNewer { .. } => codes::SWAP_NOT_NEWER,
        SwapError::DeltasMissing { .. } | SwapError::Replay { .. } => codes::SWAP_DELTAS,
        _ => codes::SWAP_INVALID,
    };
    Refusal::new(code, e.to_string())
}

/// Operator: usage counts since the server started.
pub fn usage(role: &Role, usage: &Usage, clock: Clock) -> Result<UsageReport, Refusal> {
    if !role.is_operator() {
        return Err(Refusal::operator_only("usage", role));
    }
    Ok(usage.report(clock.now))
}

/// A whole request, for callers without a network (tests, tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Lookup(Vec<u8>),
    Bulk(Vec<Vec<u8>>),
    Tickets(Vec<u8>),
    Status,
    Usage,
    Swap(Vec<u8>),
    Delta(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Answer(Answer),
    Bulk { answers: Vec<Answer>, summary: BulkSummary },
    Tickets { units: Vec<BulkConfirmUnit>, summary: Answer },
    Status(Box<StatusReport>),
    Usage(UsageReport),
    Delta(DeltaAck),
    Swap(SwapResult),
    Refused(Refusal),
}

/// What the operator requests read besides the generation.
#[derive(Debug)]
pub struct Env<'a> {
    pub limits: Limits,
    pub usage: &'a Usage,
    pub runtime: RuntimeInfo,
}

/// Serve one whole request; returns the response and the outcome of every
/// query it answered (in order). Queries are answered from the generation
/// live when the request starts; swaps and deltas run synchronously.
pub fn handle(engine: &Engine, role: &Role, req: Request, clock: Clock, env: &Env<'_>) -> (Response, Vec<Outcome>) {
    let pinned = engine.pin();
    let gen: &Generation = &pinned;
    match req {
        Request::Lookup(q) => {
            let (a, o) = lookup(gen, role, &q, clock);
            (Response::Answer(a), vec![o])
        }
        Request::Tickets(q) => {
            let (units, summary, o) = tickets(gen, role, &q, clock);
            (Response::Tickets { units, summary }, vec![o])
        }
        Request::Bulk(items) => {
            let header = serde_json::to_vec(&BulkBegin { items: items.len() as u64 }).unwrap_or_default();
            let mut bulk = match Bulk::begin(gen, role, &header, &env.limits, clock) {
                Ok(b) => b,
                Err(r) => return (Response::Refused(r), Vec::new()),
            };
            let mut answers = Vec::with_capacity(items.len());
            let mut outcomes = Vec::with_capacity(items.len());
            for q in &items {
                match bulk.item(q) {
                    Ok((a, o)) => {
                        answers.push(a);
                        outcomes.push(o);
                    }
                    Err(r) => return (Response::Refused(r), outcomes),
                }
            }
            match bulk.finish() {
                Ok(summary) => (Response::Bulk { answers, summary }, outcomes),
                Err(r) => (Response::Refused(r), outcomes),
            }
        }
        Request::Status => match status(engine, role, env.runtime.clone()) {
            Ok(s) => (Response::Status(Box::new(s)), Vec::new()),
            Err(r) => (Response::Refused(r), Vec::new()),
        },
        Request::Usage => match usage(role, env.usage, clock) {
            Ok(u) => (Response::Usage(u), Vec::new()),
            Err(r) => (Response::Refused(r), Vec::new()),
        },
        Request::Swap(payload) => match swap(engine, role, &payload) {
            Ok(r) => (Response::Swap(r), Vec::new()),
            Err(r) => (Response::Refused(r), Vec::new()),
        },
        Request::Delta(batch) => match delta(engine, role, &batch) {
            Ok(a) => (Response::Delta(a), Vec::new()),
            Err(r) => (Response::Refused(r), Vec::new()),
        },
    }
}

// ---- one query ------------------------------------------------------------

fn answer_one(
    view: &View<'_>,
    generation: u64,
    role: &Role,
    raw: &[u8],
    clock: Clock,
    request: &'static str,
    accept: Accept,
) -> (Answer, Outcome) {
    let mut outcome = Outcome {
        request,
        kind: "malformed",
        institution: String::new(),
        key: None,
        generation,
        delta_seq: view.delta_seq,
        status: "2".into(),
        validity: None,
        code: None,
        item: None,
        certificate_check: false,
    };
    let query = match checked_query(role, raw, clock, accept) {
        Ok(q) => q,
        Err(rejected) => {
            let Rejected { error, hints, kind } = *rejected;
            let answer = view.refuse(&error, &hints, clock);
            outcome.kind = kind;
            outcome.institution = hints.institution;
            outcome.code = Some(error.code.to_string());
            return (answer, outcome);
        }
    };
    let answer = view.answer(&query, clock);
    outcome.kind = query.key.kind();
    outcome.institution = query.institution.clone();
    outcome.key = Some(query.key.key_text());
    outcome.status = answer.message_body.processing_result_status.to_string();
    outcome.validity = answer.validity().map(str::to_string);
    outcome.code = answer.message_body.processing_result_code.as_deref().map(str::to_string);
    outcome.certificate_check = matches!(query.key, QueryKey::CertificateSerial(_) | QueryKey::ProcessingNumber(_));
    (answer, outcome)
}

struct Rejected {
    error: QueryError,
    /// What the refusal's answer says of the query (requester, echo), read
    /// from its bytes; the requester is the certificate's for an institution.
    hints: Hints,
    kind: &'static str,
}

/// Parse a query as the role may ask it.
fn checked_query(role: &Role, raw: &[u8], clock: Clock, accept: Accept) -> Result<Query, Box<Rejected>> {
    let rejected = |error: QueryError, kind: &'static str, institution: Option<&str>| {
        let mut hints = hints(raw);
        if let Some(code) = institution {
            hints.institution = code.to_string();
        }
        Box::new(Rejected { error, hints, kind })
    };
    let permission = |message: String| QueryError { code: codes::PERMISSION, field: "MedicalInstitutionCode".into(), message };
    let query = match role {
        Role::Operator => {
            return Err(rejected(
                permission("an operator certificate may not query eligibility; use a central or institution certificate".into()),
                "refused",
                Some(""),
            ))
        }
        Role::Central => parse_query(raw, clock.today).map_err(|error| rejected(error, "malformed", None))?,
        Role::Institution(code) => {
            let q = parse_query_for(raw, clock.today, Some(code)).map_err(|error| rejected(error, "malformed", Some(code)))?;
            if q.institution != *code {
                return Err(rejected(
                    permission(format!(
                        "MedicalInstitutionCode '{}': this certificate may query only as institution {code}",
                        q.institution
                    )),
                    "refused",
                    Some(code),
                ));
            }
            q
        }
    };
    let wrong_kind = |message: &str| {
        let error = QueryError { code: codes::NOT_IN_BULK, field: "MessageBody".into(), message: message.into() };
        rejected(error, query.key.kind(), Some(&query.institution))
    };
    match (accept, &query.key) {
        (Accept::CardData, QueryKey::InsuranceCard(_) | QueryKey::MedicalTicket(_)) | (Accept::Any, _) => Ok(query),
        (Accept::CardData, _) => Err(wrong_kind(
            "a bulk inquiry takes InsuranceCard and MedicalTicket queries only; send MyNumberCard queries as single lookups and DelegatedTickets as a ticket fetch",
        )),
        (Accept::Delegated, QueryKey::DelegatedTickets { .. }) => Ok(query),
        (Accept::Delegated, _) => Err(wrong_kind("a ticket fetch takes a DelegatedTickets query only")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn institution_is_filled_only_when_absent() {
        let code = "3410712362";
        let role = Role::Institution(code.into());
        let clock = Clock::at(20261122093000);
        let ask = |q: &[u8]| checked_query(&role, q, clock, Accept::Any);
        let filled = ask(br#"{"DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#).ok().unwrap();
        assert_eq!(filled.institution, code);
        let blank = ask(br#"{"MedicalInstitutionCode":" ","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#).ok().unwrap();
        assert_eq!(blank.institution, code);
        let other = ask(br#"{"MedicalInstitutionCode":"1311111114","DelegatedTickets":{"MedicalTreatmentMonth":"202611"}}"#).err().unwrap();
        assert_eq!(other.error.code, codes::PERMISSION, "another code is kept, and refused");
        let e = ask(b"not json").err().unwrap();
        assert_eq!((e.kind, e.hints.institution.as_str()), ("malformed", code));
    }

    #[test]
    fn operators_and_kinds_are_checked_before_lookup() {
        let clock = Clock::at(20261122093000);
        let q = br#"{"MedicalInstitutionCode":"3410712362","MyNumberCard":{"CertificateSerialNumber":"AB12"}}"#;
        let e = checked_query(&Role::Operator, q, clock, Accept::Any).err().unwrap();
        assert_eq!((e.error.code, e.kind), (codes::PERMISSION, "refused"));
        let e = checked_query(&Role::Central, q, clock, Accept::CardData).err().unwrap();
        assert_eq!((e.error.code, e.kind), (codes::NOT_IN_BULK, "certificate_serial"));
        assert!(checked_query(&Role::Central, q, clock, Accept::Any).is_ok());
        let e = checked_query(&Role::Institution("1311111114".into()), q, clock, Accept::Any).err().unwrap();
        assert_eq!(e.error.code, codes::PERMISSION);
        assert_eq!(e.hints.institution, "1311111114");
        assert!(e.error.message.contains("'3410712362'"), "{}", e.error.message);
        let e = checked_query(&Role::Central, b"{", clock, Accept::Any).err().unwrap();
        assert_eq!((e.error.code, e.kind), ("EQ01", "malformed"));
    }
}
