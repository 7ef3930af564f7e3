//! Answering a [`Query`] against one generation: the validity codes and
//! disclosure rules of `domain.md` section 5.
//!
//! Every candidate record comes from an index slot confirmed against the full
//! stored key (`holds_*` below), so an answer never shows a record whose key
//! differs from the key asked.

use smallvec::SmallVec;

use crate::answer::{Answer, Validity};
use crate::entry::{self, Consent, Consents};
use crate::entry::{delegating, Entry, Of, Tickets};
pub use crate::hints::{hints, Hints};
use crate::ids;
use crate::manifest::IndexName;
use crate::model::*;
use crate::overlay::Overlay;
use crate::query::{codes, CardKey, Query, QueryError, QueryKey, TicketKey};
use crate::reply::{Body, Echo, Head, List, Mine, Unit};
pub use crate::reply::{Facts, Reply};
use crate::snapshot::Snapshot;

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

    /// The reply to one validated query: the one place that decides what an
    /// answer says. Render it ([`Reply::render`]) or build the wire struct.
    pub fn reply<'r>(&self, q: &'r Query, clock: Clock) -> Reply<'r>
    where
        'a: 'r,
    {
        let body = match &q.key {
            QueryKey::CertificateSerial(s) => self.my_number(q, clock, IndexName::Serial, s),
            QueryKey::ProcessingNumber(s) => self.my_number(q, clock, IndexName::Processing, s),
            QueryKey::InsuranceCard(c) => self.card(q, c),
            QueryKey::MedicalTicket(t) => self.ticket(q, t),
            QueryKey::DelegatedTickets { month } => self.delegated(q, *month),
        };
        // `ArbitraryFileIdentifier` names a request file, not a person: the
        // query's `ArbitraryIdentifier` is echoed in the search info instead.
        let my_number = matches!(q.key, QueryKey::CertificateSerial(_) | QueryKey::ProcessingNumber(_));
        Reply { head: self.head(clock, q.date, &q.institution, my_number), body }
    }

    /// The reply to a refused query: the error, the header naming the
    /// requester of `hints`, and the search-info echo when the key could be
    /// read whole. The one refusal path of `elig-loader lookup` and eligd.
    pub fn refusal<'r>(&self, err: &'r QueryError, hints: &'r Hints, clock: Clock) -> Reply<'r>
    where
        'a: 'r,
    {
        let body = Body::Error { code: err.code, message: &err.message, echo: hints.echo.as_ref() };
        Reply { head: self.head(clock, clock.today, &hints.institution, false), body }
    }

    /// Parse and render one query document into `out` (a malformed one gets
    /// an error answer naming the field): `elig-loader lookup`.
    pub fn render_document(&self, json: &[u8], clock: Clock, out: &mut Vec<u8>) -> Facts {
        self.document(json, clock, |r| r.render_to(out))
    }

    /// The answer to one query as the wire struct ([`Reply::build`]): for
    /// tests and tools; eligd and `elig-loader lookup` render instead.
    pub fn answer(&self, q: &Query, clock: Clock) -> Answer {
        self.reply(q, clock).build()
    }

    /// [`View::answer`] of a query document; a malformed one gets an error
    /// answer naming the field.
    pub fn answer_document(&self, json: &[u8], clock: Clock) -> Answer {
        self.document(json, clock, |r| r.build())
    }

    /// The reply to a query document, or to its refusal, handed to `f`.
    fn document<R>(&self, json: &[u8], clock: Clock, f: impl FnOnce(&Reply<'_>) -> R) -> R {
        match crate::query::parse_query(json, clock.today) {
            Ok(q) => f(&self.reply(&q, clock)),
            Err(e) => f(&self.refusal(&e, &hints(json), clock)),
        }
    }

    fn head<'r>(&self, clock: Clock, date: u32, institution: &'r str, my_number: bool) -> Head<'r>
    where
        'a: 'r,
    {
        let generation = self.snapshot.generation_text().as_str();
        Head { now: clock.now, date, institution, my_number, generation, delta_seq: self.delta_seq }
    }

    // ---- My Number card -------------------------------------------------

    fn my_number<'r>(&self, q: &'r Query, clock: Clock, name: IndexName, key: &str) -> Body<'r>
    where
        'a: 'r,
    {
        let serial = name == IndexName::Serial;
        let is_link = |c: &ArchivedCertificate| if serial { c.serial_number == key } else { c.processing_number == key };
        let persons = self.find(name, key, |p| p.certificates.iter().any(is_link));
        let person = match persons.as_slice() {
            [] => return found(Validity::NotFound, List::default(), None),
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
        person_reply(person, q, clock)
    }

    // ---- insurance card -------------------------------------------------

    fn card<'r>(&self, q: &'r Query, c: &'r CardKey) -> Body<'r>
    where
        'a: 'r,
    {
        let echo = Some(Echo::Card { key: c, arbitrary: q.arbitrary_id.as_deref() });
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
            [] => return found(Validity::NotFound, List::default(), echo),
            [one] => *one,
            _ => return found(Validity::SeveralMatch, List::default(), echo),
        };
        // The card path has no specific-disease consent; the limit consent is the request's.
        let consent = Consent { limit: c.limit_consent, specific: false };
        let d = q.date;
        let insurance = |ins, in_force| one(p, Of::Insurance { ins, consent, in_force });
        if let Some(ins) = p.insurance.iter().rfind(|i| matches(i) && insurance_in_force(i, d)) {
            return found(Validity::Valid, insurance(ins, true), echo);
        }
        let held: SmallVec<[&ArchivedInsurance; 2]> = p.insurance.iter().filter(|i| matches(i)).collect();
        let Some(lost) = reference(d, held.iter().map(|i| insurance_span(i))).map(|at| held[at]) else {
            return found(Validity::NotFound, List::default(), echo);
        };
        let validity = if has_other_in_force(p, d, |i| matches(i), |_| false) { Validity::InvalidNewExists } else { Validity::Invalid };
        found(validity, insurance(lost, false), echo)
    }

    // ---- medical ticket -------------------------------------------------

    fn ticket<'r>(&self, q: &'r Query, t: &'r TicketKey) -> Body<'r>
    where
        'a: 'r,
    {
        let echo = Some(Echo::Ticket { key: t, arbitrary: q.arbitrary_id.as_deref() });
        let key = ids::assistance_key(&t.payer, &t.recipient);
        let matches = |a: &ArchivedAssistance| a.payer_number == t.payer.as_str() && a.recipient_number == t.recipient.as_str();
        let persons = self.find(IndexName::Assistance, &key, |p| p.assistance.iter().any(matches));
        let born: Persons = persons.into_iter().filter(|p| p.birth_date == t.birth_date).collect();
        let p = match born.as_slice() {
            [] => return found(Validity::NotFound, List::default(), echo),
            [one] => *one,
            _ => return found(Validity::SeveralMatch, List::default(), echo),
        };
        let d = q.date;
        let assistance = |asst, numbers, tickets| one(p, Of::Assistance { asst, numbers, tickets });
        if let Some(a) = p.assistance.iter().rfind(|a| matches(a) && assistance_in_force(a, d)) {
            let (institution, month) = (q.institution.as_str(), d / 100);
            if delegating(a, institution, month).next().is_none() {
                // 未委託: basic data and welfare office, numbers withheld.
                return found(Validity::NotDelegated, assistance(a, false, Tickets::None), echo);
            }
            return found(Validity::Valid, assistance(a, true, Tickets::Delegating { institution, month }), echo);
        }
        let held: SmallVec<[&ArchivedAssistance; 2]> = p.assistance.iter().filter(|a| matches(a)).collect();
        let Some(lost) = reference(d, held.iter().map(|a| assistance_span(a))).map(|at| held[at]) else {
            return found(Validity::NotFound, List::default(), echo);
        };
        let validity = if has_other_in_force(p, d, |_| false, |a| matches(a)) { Validity::InvalidNewExists } else { Validity::Invalid };
        found(validity, assistance(lost, true, Tickets::None), echo)
    }

    // ---- delegated-ticket fetch ------------------------------------------

    fn delegated<'r>(&self, q: &'r Query, month: u32) -> Body<'r>
    where
        'a: 'r,
    {
        let inst = q.institution.as_str();
        let key = ids::ticket_key(inst, month);
        let delegates = |t: &ArchivedTicket| t.institution_code == inst && t.treatment_month == month;
        let persons = self.find(IndexName::Tickets, &key, |p| p.assistance.iter().any(|a| a.tickets.iter().any(delegates)));
        let mut units = Vec::new();
        for p in persons.iter().copied() {
            for a in p.assistance.iter() {
                let validity = if assistance_in_force(a, q.date) { Validity::Valid } else { Validity::Invalid };
                for t in a.tickets.iter().filter(|t| delegates(t)) {
                    let tickets = Tickets::One { ticket: t, requester: inst };
                    units.push(Unit {
                        entry: Entry { person: p, of: Of::Assistance { asst: a, numbers: true, tickets } },
                        asst: a,
                        validity,
                        reference: entry::reference_number(p, inst),
                        arbitrary: q.arbitrary_id.as_deref(),
                    });
                }
            }
        }
        // Stable order for callers that diff two fetches.
        fn order<'u>(u: &'u Unit<'_>) -> (&'u str, &'u str) {
            (u.asst.payer_number.as_str(), u.asst.recipient_number.as_str())
        }
        units.sort_by(|x, y| order(x).cmp(&order(y)));
        Body::Units(units)
    }
}

/// Everything of the person in force on the date, side by side.
fn person_reply<'r>(p: &'r ArchivedPersonRecord, q: &'r Query, clock: Clock) -> Body<'r> {
    let inst = q.institution.as_str();
    let d = q.date;
    let consents = Consents::of(p, inst, clock.now);
    let consent = Consent { limit: consents.given(ConsentKind::Limit), specific: consents.given(ConsentKind::SpecificDisease) };
    let mut list = List::default();
    for ins in p.insurance.iter().filter(|i| insurance_in_force(i, d)) {
        list.entries.push(Entry { person: p, of: Of::Insurance { ins, consent, in_force: true } });
    }
    let insured = !list.entries.is_empty();
    let mut delegated_any = false;
    let mut assisted = false;
    for asst in p.assistance.iter().filter(|a| assistance_in_force(a, d)) {
        assisted = true;
        let numbers = delegating(asst, inst, d / 100).next().is_some();
        delegated_any |= numbers;
        let tickets = if numbers { Tickets::Delegating { institution: inst, month: d / 100 } } else { Tickets::None };
        list.entries.push(Entry { person: p, of: Of::Assistance { asst, numbers, tickets } });
    }
    let validity = if list.entries.is_empty() {
        let Some(shown) = reference_entry(p, d, consent) else {
            return found(Validity::NotFound, List::default(), None);
        };
        list.entries.push(shown);
        Validity::Invalid
    } else if assisted && !delegated_any && !insured {
        Validity::NotDelegated
    } else {
        Validity::Valid
    };
    list.mine = Some(Mine { consents, reference: entry::reference_number(p, inst) });
    found(validity, list, None)
}

/// A list of one entry.
fn one<'r>(person: &'r ArchivedPersonRecord, of: Of<'r>) -> List<'r> {
    let mut list = List::default();
    list.entries.push(Entry { person, of });
    list
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
/// information (see [`reference`]); `None` when the person has none at all.
fn reference_entry<'r>(p: &'r ArchivedPersonRecord, d: u32, consent: Consent) -> Option<Entry<'r>> {
    let insurance = p.insurance.iter().map(insurance_span);
    let assistance = p.assistance.iter().map(assistance_span);
    let at = reference(d, insurance.chain(assistance))?;
    let of = match p.insurance.get(at) {
        Some(ins) => Of::Insurance { ins, consent, in_force: false },
        None => Of::Assistance { asst: p.assistance.get(at - p.insurance.len())?, numbers: false, tickets: Tickets::None },
    };
    Some(Entry { person: p, of })
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

fn found<'r>(validity: Validity, list: List<'r>, echo: Option<Echo<'r>>) -> Body<'r> {
    Body::Found { validity, list, echo }
}

/// A certificate that cannot be used: an error body with a fixed message.
fn cert_error<'r>(code: &'static str, message: &'static str) -> Body<'r> {
    Body::Error { code, message, echo: None }
}
