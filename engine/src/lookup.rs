//! Answering a [`Query`] against one generation: the validity codes and
//! disclosure rules of `domain.md` section 5.
//!
//! Every candidate record comes from an index slot confirmed against the full
//! stored key (`holds_*` below), so an answer never shows a record whose key
//! differs from the key asked.

use compact_str::ToCompactString;
use smallvec::SmallVec;

use crate::answer::*;
use crate::entry::{self, Consent, Consents};
pub use crate::hints::{hints, Hints};
use crate::ids;
use crate::manifest::IndexName;
use crate::model::*;
use crate::overlay::Overlay;
use crate::query::{codes, CardKey, Query, QueryError, QueryKey, TicketKey};
use crate::snapshot::Snapshot;
use crate::values;

/// The clock of one request: `now` is `YYYYMMDDHHmmss` Japan time, used for
/// certificate validity and consent expiry; `today` is its date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: u64,
    pub today: u32,
}

impl Clock {
    pub fn at(now: u64) -> Clock {
        Clock { now, today: (now / 1_000_000) as u32 }
    }

    pub fn japan_now() -> Clock {
        Clock::at(ids::japan_now().1)
    }
}

/// One generation as a request sees it: the snapshot and the deltas applied
/// on top of it up to `delta_seq`.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub snapshot: &'a Snapshot,
    pub overlay: Option<&'a Overlay>,
    pub delta_seq: u64,
}

type Persons<'a> = SmallVec<[&'a ArchivedPersonRecord; 2]>;

impl<'a> View<'a> {
    pub fn new(snapshot: &'a Snapshot) -> View<'a> {
        View { snapshot, overlay: None, delta_seq: snapshot.manifest().delta_seq }
    }

    /// Persons holding `key` in index `name`: snapshot records confirmed by
    /// `holds`, replaced or removed by the overlay, plus overlay-only records.
    fn find(&self, name: IndexName, key: &str, holds: impl Fn(&ArchivedPersonRecord) -> bool) -> Persons<'a> {
        let mut out = Persons::new();
        let Some(overlay) = self.overlay.filter(|o| !o.is_empty()) else {
            if let Some(hit) = self.snapshot.find(name, key, &holds) {
                hit.for_each(|idx| out.extend(self.snapshot.person(idx)));
            }
            return out;
        };
        let seq = self.delta_seq;
        let moved = overlay.moved_key(name, key);
        // A changed person's version is read instead of its snapshot record
        // (one record's cache misses, not two). If the version holds the key
        // and no delta moved the key to anyone, the snapshot record holds it
        // too, because `Overlay::publish` registers every key a version
        // holds that its snapshot record lacks: so the slot is this key's,
        // exactly as the snapshot record would have confirmed.
        let confirm = |idx: u32| match overlay.record_version(idx, seq) {
            Some(Some(version)) if moved.is_none() && holds(version) => true,
            _ => self.snapshot.person(idx).is_some_and(&holds),
        };
        if let Some(hit) = self.snapshot.find_confirmed(name, key, confirm) {
            hit.for_each(|idx| match overlay.record_version(idx, seq) {
                None => out.extend(self.snapshot.person(idx)),
                // The new version may no longer hold the key.
                Some(Some(version)) if holds(version) => out.push(version),
                Some(_) => {} // deleted, or the key moved away
            });
        }
        if let Some(id) = moved {
            overlay.add_moved(id, &holds, &mut out, seq);
        }
        out
    }

    /// When the serial was revoked: a delta's word if there is one, else the snapshot's.
    fn revoked_at(&self, c: &ArchivedCertificate) -> u64 {
        self.overlay.and_then(|o| c.serial_number.with_text(|s| o.revoked(s, self.delta_seq))).unwrap_or(c.revoked_at.to_native())
    }

    /// Answer one validated query.
    pub fn answer(&self, q: &Query, clock: Clock) -> Answer {
        let mut answer = match &q.key {
            QueryKey::CertificateSerial(s) => self.my_number(q, clock, IndexName::Serial, s),
            QueryKey::ProcessingNumber(s) => self.my_number(q, clock, IndexName::Processing, s),
            QueryKey::InsuranceCard(c) => self.card(q, c),
            QueryKey::MedicalTicket(t) => self.ticket(q, t),
            QueryKey::DelegatedTickets { month } => self.delegated(q, *month),
        };
        self.fill_header(&mut answer.message_header, q, clock);
        if matches!(q.key, QueryKey::DelegatedTickets { .. }) {
            // Counts live in the header, so after it is set.
            answer.count_units();
        }
        answer
    }

    /// Parse and answer one query document; a malformed one gets an error
    /// answer naming the field.
    pub fn answer_document(&self, json: &[u8], clock: Clock) -> Answer {
        match crate::query::parse_query(json, clock.today) {
            Ok(q) => self.answer(&q, clock),
            Err(e) => self.refuse(&e, &hints(json), clock),
        }
    }

    /// The answer to a refused query: the error, the header naming the
    /// requester of `hints`, and the search-info echo when the key could be
    /// read whole. The one refusal path of `elig-loader lookup` and eligd.
    pub fn refuse(&self, err: &QueryError, hints: &Hints, clock: Clock) -> Answer {
        let mut a = error_answer(err);
        a.message_body.qualification_confirm_search_info = hints.echo.clone();
        let h = &mut a.message_header;
        self.fill_base_header(h, clock);
        h.medical_institution_code = hints.institution.to_compact_string();
        h.qualification_confirmation_date = values::number(clock.today.into());
        a
    }

    /// The header fields every answer has, filled in place (the header is
    /// boxed: see `Answer`).
    fn fill_base_header(&self, h: &mut MessageHeader, clock: Clock) {
        h.process_execution_time = values::number(clock.now);
        h.segment_of_result = Str::const_new("1");
        h.character_code_identifier = Str::const_new("0");
        h.reference_classification = Str::const_new("2");
        h.snapshot_generation = self.snapshot.generation_text().clone();
        h.delta_sequence = self.delta_seq.to_compact_string();
    }

    fn fill_header(&self, h: &mut MessageHeader, q: &Query, clock: Clock) {
        self.fill_base_header(h, clock);
        h.qualification_confirmation_date = values::number(q.date.into());
        h.medical_institution_code = Str::from(q.institution.as_str());
        // `ArbitraryFileIdentifier` names a request file, not a person: the
        // query's `ArbitraryIdentifier` is echoed in the search info instead.
        if matches!(q.key, QueryKey::CertificateSerial(_) | QueryKey::ProcessingNumber(_)) {
            h.reference_classification = Str::const_new("1");
        }
    }

    // ---- My Number card -------------------------------------------------

    fn my_number(&self, q: &Query, clock: Clock, name: IndexName, key: &str) -> Answer {
        let serial = name == IndexName::Serial;
        let is_link = |c: &ArchivedCertificate| if serial { c.serial_number == key } else { c.processing_number == key };
        let persons = self.find(name, key, |p| p.certificates.iter().any(is_link));
        let person = match persons.as_slice() {
            [] => return validity_only(Validity::NotFound, None),
            [one] => *one,
            _ => {
                return cert_error(
                    codes::CERT_SEVERAL_PERSONS,
                    "the certificate is linked to several persons; refer the patient to the insurer",
                )
            }
        };
        let links: SmallVec<[&ArchivedCertificate; 2]> = person.certificates.iter().filter(|c| is_link(c)).collect();
        let revoked = links.iter().any(|c| {
            let at = self.revoked_at(c);
            at != 0 && at <= clock.now
        });
        if revoked {
            return cert_error(codes::CERT_REVOKED, "the card's certificate is revoked");
        }
        let current = links.iter().any(|c| c.valid_from.to_native() <= clock.today && clock.today <= c.valid_to.to_native());
        if !current {
            return cert_error(codes::CERT_NOT_VALID, "the card's certificate is expired or not yet valid");
        }
        self.person_answer(person, q, clock)
    }

    /// Everything of the person in force on the date, side by side.
    fn person_answer(&self, p: &ArchivedPersonRecord, q: &Query, clock: Clock) -> Answer {
        let inst = q.institution.as_str();
        let d = q.date;
        let consents = Consents::of(p, inst, clock.now);
        let consent = Consent { limit: consents.given(ConsentKind::Limit), specific: consents.given(ConsentKind::SpecificDisease) };
        let mut list = Vec::with_capacity(2);
        for ins in p.insurance.iter().filter(|i| insurance_in_force(i, d)) {
            entry::push_entry(&mut list, |e| entry::fill_insurance(e, p, ins, consent, true));
        }
        let insured = !list.is_empty();
        let mut delegated_any = false;
        let mut assisted = false;
        for a in p.assistance.iter().filter(|a| assistance_in_force(a, d)) {
            assisted = true;
            let tickets = delegating_tickets(a, inst, d / 100);
            let numbers = !tickets.is_empty();
            delegated_any |= numbers;
            entry::push_entry(&mut list, |e| entry::fill_assistance(e, p, a, numbers, tickets));
        }
        let validity = if list.is_empty() {
            if !push_reference(&mut list, p, d, consent) {
                return validity_only(Validity::NotFound, None);
            }
            Validity::Invalid
        } else if assisted && !delegated_any && !insured {
            Validity::NotDelegated
        } else {
            Validity::Valid
        };
        let reference = entry::reference_number(p, inst);
        for e in &mut list {
            consents.fill(e);
            e.reference_number = reference.clone();
        }
        with_list(validity, list, None)
    }

    // ---- insurance card -------------------------------------------------

    fn card(&self, q: &Query, c: &CardKey) -> Answer {
        let echo = SearchInfo {
            insurer_number: values::insurer(&c.insurer),
            insured_card_symbol: values::text(&c.symbol),
            insured_identification_number: Some(Str::from(c.number.as_str())),
            insured_branch_number: values::text(&c.branch),
            birthdate: Some(values::number(c.birth_date.into())),
            limit_application_certificate_related_cons_flg: Some(if c.limit_consent { "1" } else { "0" }.into()),
            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
        };
        let key = ids::insurance_key(&c.insurer, &c.symbol, &c.number, &c.branch);
        let matches = |i: &ArchivedInsurance| {
            i.insurer_number == c.insurer.as_str()
                && i.card_symbol == c.symbol.as_str()
                && i.card_number == c.number.as_str()
                && i.branch_number == c.branch.as_str()
        };
        let persons = self.find(IndexName::Insurance, &key, |p| p.insurance.iter().any(matches));
        let born: Persons = persons.into_iter().filter(|p| p.birth_date == c.birth_date).collect();
        let p = match born.as_slice() {
            [] => return validity_only(Validity::NotFound, Some(echo)),
            [one] => *one,
            _ => return validity_only(Validity::SeveralMatch, Some(echo)),
        };
        // The card path has no specific-disease consent; the limit consent is the request's.
        let consent = Consent { limit: c.limit_consent, specific: false };
        let d = q.date;
        if let Some(ins) = p.insurance.iter().rfind(|i| matches(i) && insurance_in_force(i, d)) {
            return with_list(Validity::Valid, entry::one_entry(|e| entry::fill_insurance(e, p, ins, consent, true)), Some(echo));
        }
        let held: SmallVec<[&ArchivedInsurance; 2]> = p.insurance.iter().filter(|i| matches(i)).collect();
        let Some(lost) = reference(d, held.iter().map(|i| insurance_span(i))).map(|at| held[at]) else {
            return validity_only(Validity::NotFound, Some(echo));
        };
        let validity = if has_other_in_force(p, d, |i| matches(i), |_| false) { Validity::InvalidNewExists } else { Validity::Invalid };
        with_list(validity, entry::one_entry(|e| entry::fill_insurance(e, p, lost, consent, false)), Some(echo))
    }

    // ---- medical ticket -------------------------------------------------

    fn ticket(&self, q: &Query, t: &TicketKey) -> Answer {
        let echo = SearchInfo {
            insurer_number: Some(Str::from(t.payer.as_str())),
            insured_identification_number: Some(Str::from(t.recipient.as_str())),
            birthdate: Some(values::number(t.birth_date.into())),
            // A ticket query has no consent flag; real clients need one.
            limit_application_certificate_related_cons_flg: Some(Str::const_new("0")),
            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
            ..Default::default()
        };
        let key = ids::assistance_key(&t.payer, &t.recipient);
        let matches = |a: &ArchivedAssistance| a.payer_number == t.payer.as_str() && a.recipient_number == t.recipient.as_str();
        let persons = self.find(IndexName::Assistance, &key, |p| p.assistance.iter().any(matches));
        let born: Persons = persons.into_iter().filter(|p| p.birth_date == t.birth_date).collect();
        let p = match born.as_slice() {
            [] => return validity_only(Validity::NotFound, Some(echo)),
            [one] => *one,
            _ => return validity_only(Validity::SeveralMatch, Some(echo)),
        };
        let d = q.date;
        if let Some(a) = p.assistance.iter().rfind(|a| matches(a) && assistance_in_force(a, d)) {
            let tickets = delegating_tickets(a, &q.institution, d / 100);
            if tickets.is_empty() {
                // 未委託: basic data and welfare office, numbers withheld.
                return with_list(
                    Validity::NotDelegated,
                    entry::one_entry(|e| entry::fill_assistance(e, p, a, false, Vec::new())),
                    Some(echo),
                );
            }
            return with_list(Validity::Valid, entry::one_entry(|e| entry::fill_assistance(e, p, a, true, tickets)), Some(echo));
        }
        let held: SmallVec<[&ArchivedAssistance; 2]> = p.assistance.iter().filter(|a| matches(a)).collect();
        let Some(lost) = reference(d, held.iter().map(|a| assistance_span(a))).map(|at| held[at]) else {
            return validity_only(Validity::NotFound, Some(echo));
        };
        let validity = if has_other_in_force(p, d, |_| false, |a| matches(a)) { Validity::InvalidNewExists } else { Validity::Invalid };
        with_list(validity, entry::one_entry(|e| entry::fill_assistance(e, p, lost, true, Vec::new())), Some(echo))
    }

    // ---- delegated-ticket fetch ------------------------------------------

    fn delegated(&self, q: &Query, month: u32) -> Answer {
        let inst = q.institution.as_str();
        let key = ids::ticket_key(inst, month);
        let delegates = |t: &ArchivedTicket| t.institution_code == inst && t.treatment_month == month;
        let persons = self.find(IndexName::Tickets, &key, |p| p.assistance.iter().any(|a| a.tickets.iter().any(delegates)));
        let mut units = Vec::new();
        for p in persons.iter().copied() {
            for a in p.assistance.iter() {
                let validity = if assistance_in_force(a, q.date) { Validity::Valid } else { Validity::Invalid };
                for t in a.tickets.iter().filter(|t| delegates(t)) {
                    units.push(BulkConfirmUnit {
                        qualification_confirm_search_info: Some(SearchInfo {
                            insurer_number: Some(Str::from(a.payer_number.as_str())),
                            insured_identification_number: Some(Str::from(a.recipient_number.as_str())),
                            birthdate: values::date(p.birth_date.to_native()),
                            limit_application_certificate_related_cons_flg: Some(Str::const_new("0")),
                            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
                            ..Default::default()
                        }),
                        processing_result_status: Str::const_new("1"),
                        qualification_validity: Some(Str::const_new(validity.code())),
                        result_of_qualification_confirmation: Some({
                            let mut e = ResultOfQualificationConfirmation::default();
                            entry::fill_assistance(&mut e, p, a, true, vec![entry::ticket_info(t, inst)]);
                            e
                        }),
                        reference_number: entry::reference_number(p, inst),
                        ..Default::default()
                    });
                }
            }
        }
        // Stable order for callers that diff two fetches.
        fn order(u: &BulkConfirmUnit) -> (&str, &str) {
            match &u.qualification_confirm_search_info {
                Some(s) => (s.insurer_number.as_deref().unwrap_or(""), s.insured_identification_number.as_deref().unwrap_or("")),
                None => ("", ""),
            }
        }
        units.sort_by(|x, y| order(x).cmp(&order(y)));
        let mut answer = Answer::default();
        answer.message_body.processing_result_status = Str::const_new("1");
        answer.message_body.bulk_confirm_unit_list = units;
        answer
    }
}

/// In force on `d`: started, and not yet lost (the loss date itself is not covered).
pub fn insurance_in_force(i: &ArchivedInsurance, d: u32) -> bool {
    let lost = i.disqualification_date.to_native();
    i.qualification_date.to_native() <= d && (lost == 0 || d < lost)
}

/// In force on `d`: started, and the end date (inclusive) not passed.
pub fn assistance_in_force(a: &ArchivedAssistance, d: u32) -> bool {
    let end = a.end_date.to_native();
    a.start_date.to_native() <= d && (end == 0 || d <= end)
}

fn delegating_tickets(a: &ArchivedAssistance, institution: &str, month: u32) -> Vec<MedicalTicketInfo> {
    a.tickets
        .iter()
        .filter(|t| t.institution_code == institution && t.treatment_month == month)
        .map(|t| entry::ticket_info(t, institution))
        .collect()
}

fn has_other_in_force(
    p: &ArchivedPersonRecord,
    d: u32,
    queried_ins: impl Fn(&ArchivedInsurance) -> bool,
    queried_asst: impl Fn(&ArchivedAssistance) -> bool,
) -> bool {
    p.insurance.iter().any(|i| !queried_ins(i) && insurance_in_force(i, d))
        || p.assistance.iter().any(|a| !queried_asst(a) && assistance_in_force(a, d))
}

/// The qualification a code-2 My Number answer shows as reference
/// information (see [`reference`]), pushed on `list`; false when the person
/// has none at all.
fn push_reference(list: &mut Vec<ResultOfQualificationConfirmation>, p: &ArchivedPersonRecord, d: u32, consent: Consent) -> bool {
    let insurance = p.insurance.iter().map(insurance_span);
    let assistance = p.assistance.iter().map(assistance_span);
    let Some(at) = reference(d, insurance.chain(assistance)) else { return false };
    match p.insurance.get(at) {
        Some(i) => entry::push_entry(list, |e| entry::fill_insurance(e, p, i, consent, false)),
        None => {
            let Some(a) = p.assistance.get(at - p.insurance.len()) else { return false };
            entry::push_entry(list, |e| entry::fill_assistance(e, p, a, false, Vec::new()))
        }
    }
    true
}

fn insurance_span(i: &ArchivedInsurance) -> Span {
    Span::insurance(i.qualification_date.to_native(), i.disqualification_date.to_native())
}

fn assistance_span(a: &ArchivedAssistance) -> Span {
    Span::assistance(a.start_date.to_native(), a.end_date.to_native())
}

/// When a qualification starts, and when it stops being in force, on one
/// scale for insurance and assistance: half days, so that an insurance lost
/// on its disqualification date `L` ends at `2L`, and an assistance in force
/// through its end date `E` ends at `2E + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u32,
    /// `u64::MAX` when it never ends.
    ends: u64,
}

impl Span {
    /// An insurance qualification: in force from `qualified` until the day
    /// before `lost` (0: not lost).
    pub fn insurance(qualified: u32, lost: u32) -> Span {
        Span { start: qualified, ends: if lost == 0 { u64::MAX } else { 2 * u64::from(lost) } }
    }

    /// A public assistance: in force from `start` through `end` (0: open).
    pub fn assistance(start: u32, end: u32) -> Span {
        Span { start, ends: if end == 0 { u64::MAX } else { 2 * u64::from(end) + 1 } }
    }

    fn ended_by(&self, d: u32) -> bool {
        self.start <= d && self.ends <= 2 * u64::from(d)
    }
}

/// Which of `spans` a code-2 answer shows, judged at the confirmation date
/// `d` (`domain.md` section 5): the one that most recently ended on or
/// before `d` (on equal ends, the later start, then the later one listed);
/// only when none had ended by then, the one that starts next (on equal
/// starts, the earlier end, then the first listed). A span in force on `d`
/// is never chosen, and
/// one that had not started on `d` is never shown as lost. The index of the
/// chosen span, or `None` when there is nothing to show.
pub fn reference(d: u32, spans: impl IntoIterator<Item = Span>) -> Option<usize> {
    let mut ended: Option<(usize, Span)> = None;
    let mut next: Option<(usize, Span)> = None;
    for (at, s) in spans.into_iter().enumerate() {
        if s.ended_by(d) {
            if ended.is_none_or(|(_, e)| (s.ends, s.start) >= (e.ends, e.start)) {
                ended = Some((at, s));
            }
        } else if s.start > d && next.is_none_or(|(_, n)| (s.start, s.ends) < (n.start, n.ends)) {
            next = Some((at, s));
        }
    }
    ended.or(next).map(|(at, _)| at)
}

fn with_list(v: Validity, list: Vec<ResultOfQualificationConfirmation>, echo: Option<SearchInfo>) -> Answer {
    let mut a = validity_only(v, echo);
    a.message_body.result_list = list;
    a
}

fn validity_only(v: Validity, echo: Option<SearchInfo>) -> Answer {
    let mut a = Answer::default();
    a.message_body.processing_result_status = Str::const_new("1");
    a.message_body.qualification_validity = Some(Str::const_new(v.code()));
    a.message_body.qualification_confirm_search_info = echo;
    a
}

/// A certificate that cannot be used: an error body with a fixed message.
fn cert_error(code: &'static str, message: &'static str) -> Answer {
    let mut a = Answer::default();
    a.message_body.processing_result_status = Str::const_new("2");
    a.message_body.processing_result_code = Some(Str::const_new(code));
    a.message_body.processing_result_message = Some(Str::const_new(message));
    a
}

/// An answer whose body reports `e` for this query.
fn error_answer(e: &QueryError) -> Answer {
    let mut a = Answer::default();
    let body = &mut a.message_body;
    body.processing_result_status = Str::const_new("2");
    body.processing_result_code = Some(e.code.into());
    body.processing_result_message = Some(Str::from(e.message.as_str()));
    a
}
