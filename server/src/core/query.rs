//! One query answered as the caller's role may ask it, and the accounting
//! of a bulk inquiry. Queries always get an answer document, even when
//! refused (malformed, or the role may not ask it: `ProcessingResultStatus`
//! 2 with a code that names why), through the engine's one refusal path
//! ([`View::refuse`]), which `elig-loader lookup` takes too.

use std::sync::Arc;

use elig_engine::answer::{Status, Str};
use elig_engine::engine::Generation;
use elig_engine::lookup::{hints, Clock, Hints, Reply, View};
use elig_engine::query::{parse_query, parse_query_for, Query, QueryError, QueryKey};
use elig_wire::codes;
use elig_wire::report::BulkSummary;

use super::outcome::{Asked, Outcome, Refusal, Request};
use super::role::Role;

/// Which query kinds a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    Any,
    /// Bulk inquiries: insurance card and medical ticket queries.
    CardData,
    Delegated,
}

/// The view of a pinned generation at the delta sequence a request began
/// with (a generation's overlay may publish newer batches meanwhile).
pub(crate) fn view(gen: &Generation, delta_seq: u64) -> View<'_> {
    View { snapshot: &gen.snapshot, overlay: Some(&gen.overlay), delta_seq }
}

/// Answer a query document `raw` as [`checked_query`] read it: the reply
/// (answer or refusal) goes to `emit`, which renders it (the machine frames
/// it; no answer struct is built), and its outcome is returned.
pub(crate) fn answer_parsed(
    view: &View<'_>,
    generation: u64,
    raw: &[u8],
    clock: Clock,
    request: Request,
    parsed: Result<Query, Box<Rejected>>,
    emit: impl FnOnce(&Reply<'_>),
) -> Outcome {
    let mut outcome = Outcome {
        request,
        asked: Asked::Malformed,
        institution: String::new(),
        key: None,
        generation,
        delta_seq: view.delta_seq,
        status: Status::Error,
        validity: None,
        code: None,
        item: None,
        certificate_check: false,
    };
    let query = match parsed {
        Ok(q) => q,
        Err(rejected) => {
            let Rejected { error, hints, asked } = *rejected;
            emit(&view.refusal(&error, &hints, clock));
            outcome.asked = asked;
            outcome.institution = hints.institution;
            outcome.code = Some(Str::const_new(error.code));
            return outcome;
        }
    };
    if let Some(min) = query.min_delta_seq.filter(|min| *min > view.delta_seq) {
        // Never an answer from before the seq the caller asked for.
        let error = QueryError { code: codes::BEHIND, field: "MinimumDeltaSequence".into(), message: behind_message(min, view.delta_seq) };
        emit(&view.refusal(&error, &hints(raw), clock));
        outcome.asked = Asked::Key(query.key.key_kind());
        outcome.institution = query.institution;
        outcome.code = Some(Str::const_new(error.code));
        return outcome;
    }
    let reply = view.reply(&query, clock);
    emit(&reply);
    let facts = reply.facts();
    let kind = query.key.key_kind();
    outcome.asked = Asked::Key(kind);
    outcome.key = Some(query.key.key_text());
    outcome.status = facts.status;
    outcome.validity = facts.validity;
    outcome.code = facts.code.map(Str::const_new);
    outcome.certificate_check = kind.checks_certificate();
    // The reply borrows the query.
    drop(reply);
    outcome.institution = query.institution;
    outcome
}

/// Why a node answers `EN02` (retryable): the seq asked for and its own.
pub(crate) fn behind_message(min: u64, own: u64) -> String {
    format!("MinimumDeltaSequence '{min}': this node has applied delta batches up to {own} only; retry (on another node, or later)")
}

pub(crate) struct Rejected {
    pub(crate) error: QueryError,
    /// What the refusal's answer says of the query (requester, echo), read
    /// from its bytes; the requester is the certificate's for an institution.
    pub(crate) hints: Hints,
    pub(crate) asked: Asked,
}

/// Parse a query as the role may ask it.
pub(crate) fn checked_query(role: &Role, raw: &[u8], clock: Clock, accept: Accept) -> Result<Query, Box<Rejected>> {
    let rejected = |error: QueryError, asked: Asked, institution: Option<&str>| {
        let mut hints = hints(raw);
        if let Some(code) = institution {
            hints.institution = code.to_string();
        }
        Box::new(Rejected { error, hints, asked })
    };
    let permission = |message: String| QueryError { code: codes::PERMISSION, field: "MedicalInstitutionCode".into(), message };
    let query = match role {
        Role::Operator => {
            return Err(rejected(
                permission("an operator certificate may not query eligibility; use a central or institution certificate".into()),
                Asked::Refused,
                Some(""),
            ))
        }
        Role::Central => parse_query(raw, clock.today).map_err(|error| rejected(error, Asked::Malformed, None))?,
        Role::Institution(code) => {
            let q = parse_query_for(raw, clock.today, Some(code)).map_err(|error| rejected(error, Asked::Malformed, Some(code)))?;
            if q.institution != *code {
                return Err(rejected(
                    permission(format!(
                        "MedicalInstitutionCode '{}': this certificate may query only as institution {code}",
                        q.institution
                    )),
                    Asked::Refused,
                    Some(code),
                ));
            }
            q
        }
    };
    let wrong_kind = |message: &str| {
        let error = QueryError { code: codes::NOT_IN_BULK, field: "MessageBody".into(), message: message.into() };
        rejected(error, Asked::Key(query.key.key_kind()), Some(&query.institution))
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

/// A bulk inquiry in progress: items are answered one at a time, in order,
/// all from the generation and delta sequence it began with.
pub(crate) struct Bulk {
    gen: Arc<Generation>,
    delta_seq: u64,
    declared: u64,
    summary: BulkSummary,
}

impl std::fmt::Debug for Bulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulk").field("declared", &self.declared).field("summary", &self.summary).finish()
    }
}

impl Bulk {
    pub(crate) fn new(gen: Arc<Generation>, declared: u64) -> Bulk {
        let delta_seq = gen.overlay.visible();
        let summary = BulkSummary { generation: gen.id(), delta_seq, ..Default::default() };
        Bulk { gen, delta_seq, declared, summary }
    }

    pub(crate) fn declared(&self) -> u64 {
        self.declared
    }

    /// Items still expected.
    pub(crate) fn remaining(&self) -> u64 {
        self.declared - self.summary.items
    }

    pub(crate) fn more_than_declared(&self) -> Refusal {
        Refusal::new(codes::BULK_COUNT, format!("more items than the {} declared", self.declared))
    }

    /// Answer the next item (the caller checked that one is expected): its
    /// reply to `emit`.
    pub(crate) fn item(&mut self, role: &Role, query: &[u8], clock: Clock, emit: impl FnOnce(&Reply<'_>)) -> Outcome {
        let view = view(&self.gen, self.delta_seq);
        let parsed = checked_query(role, query, clock, Accept::CardData);
        let mut outcome = answer_parsed(&view, self.summary.generation, query, clock, Request::Bulk, parsed, emit);
        outcome.item = Some(self.count(outcome.status == Status::Error));
        outcome
    }

    /// Answer, in its place, an item whose frame of `len` bytes was over
    /// the `max` a frame may have: its payload was skipped unread, so the
    /// answer is an error naming the sizes and the bulk goes on.
    pub(crate) fn oversized(&mut self, role: &Role, len: usize, max: usize, clock: Clock, emit: impl FnOnce(&Reply<'_>)) -> Outcome {
        let error = QueryError::new(
            codes::FRAME_TOO_LARGE,
            "",
            format!(
                "bulk item {} of {len} bytes exceeds the limit of {max} bytes (max_frame_bytes) and was not read; the other items are answered",
                self.summary.items + 1
            ),
        );
        let institution = role.institution().unwrap_or_default().to_string();
        // Nothing of the item was read: no echo.
        let hints = Hints { institution: institution.clone(), ..Hints::default() };
        emit(&view(&self.gen, self.delta_seq).refusal(&error, &hints, clock));
        Outcome {
            request: Request::Bulk,
            asked: Asked::Malformed,
            institution,
            key: None,
            generation: self.summary.generation,
            delta_seq: self.delta_seq,
            status: Status::Error,
            validity: None,
            code: Some(Str::from(codes::FRAME_TOO_LARGE)),
            item: Some(self.count(true)),
            certificate_check: false,
        }
    }

    /// Count one answered item; its position.
    fn count(&mut self, error: bool) -> u64 {
        let at = self.summary.items;
        self.summary.items += 1;
        if error {
            self.summary.errors += 1;
        } else {
            self.summary.normal += 1;
        }
        at
    }

    /// The summary, once every declared item was answered.
    pub(crate) fn finish(&self) -> Result<&BulkSummary, Refusal> {
        if self.remaining() != 0 {
            return Err(Refusal::new(
                codes::BULK_COUNT,
                format!("bulk inquiry ended after {} of {} declared items", self.summary.items, self.declared),
            ));
        }
        Ok(&self.summary)
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
        assert_eq!((e.asked, e.hints.institution.as_str()), (Asked::Malformed, code));
    }

    #[test]
    fn operators_and_kinds_are_checked_before_lookup() {
        use elig_engine::query::KeyKind;
        let clock = Clock::at(20261122093000);
        let q = br#"{"MedicalInstitutionCode":"3410712362","MyNumberCard":{"CertificateSerialNumber":"AB12"}}"#;
        let e = checked_query(&Role::Operator, q, clock, Accept::Any).err().unwrap();
        assert_eq!((e.error.code, e.asked), (codes::PERMISSION, Asked::Refused));
        let e = checked_query(&Role::Central, q, clock, Accept::CardData).err().unwrap();
        assert_eq!((e.error.code, e.asked), (codes::NOT_IN_BULK, Asked::Key(KeyKind::CertificateSerial)));
        assert!(checked_query(&Role::Central, q, clock, Accept::Any).is_ok());
        let e = checked_query(&Role::Institution("1311111114".into()), q, clock, Accept::Any).err().unwrap();
        assert_eq!(e.error.code, codes::PERMISSION);
        assert_eq!(e.hints.institution, "1311111114");
        assert!(e.error.message.contains("'3410712362'"), "{}", e.error.message);
        let e = checked_query(&Role::Central, b"{", clock, Accept::Any).err().unwrap();
        assert_eq!((e.error.code, e.asked), (codes::MALFORMED, Asked::Malformed));
    }
}
