//! Filling the wire struct's result entries (`ResultOfQualificationConfirmation`,
//! `MedicalTicketInfo`) from the entries of a [`Reply`](crate::reply::Reply),
//! the pieces of an entry that a reply holds ([`Entry`], [`Of`], [`Tickets`]), and the consent
//! flags both writers read ([`Consents`]).
//!
//! The struct is what [`Reply::build`](crate::reply::Reply::build) makes
//! for tests and the bench (the request path renders JSON instead,
//! `render.rs`). An entry is about 1 KB of optional strings, so entries are
//! filled in place (`fill_*` on a slot already in the answer's list) rather
//! than built and moved.

use smallvec::SmallVec;

use crate::answer::*;
use crate::model::*;
use crate::values::{code, date, digit, insurer, text, ts};

/// One entry of a reply.
pub(crate) fn fill(e: &mut ResultOfQualificationConfirmation, entry: &Entry<'_>) {
    let p = entry.person;
    match entry.of {
        Of::Insurance { ins, consent, in_force } => fill_insurance(e, p, ins, consent, in_force),
        Of::Assistance { asst, numbers, tickets } => {
            let (tickets, requester) = tickets.of(asst);
            fill_assistance(e, p, asst, numbers, tickets.iter().map(|t| ticket_info(t, requester)).collect())
        }
    }
}

/// The person's own data, common to every entry.
fn fill_person(e: &mut ResultOfQualificationConfirmation, p: &ArchivedPersonRecord) {
    e.name = text(&p.name);
    e.name_of_other = p.other_name.as_ref().and_then(|o| text(&o.name));
    e.name_kana = p.name_kana.text();
    e.name_of_other_kana = p.other_name.as_ref().and_then(|o| o.kana.text());
    e.sex1 = Some(digit(p.sex));
    e.birthdate = date(p.birth_date.to_native());
    e.address = p.address.text();
    e.post_number = p.post_number.with_text(text);
}

/// The consents that govern the limit-application and specific-disease
/// details: on the My Number path those registered at the requesting
/// institution and not expired, on the card path the request's flag.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Consent {
    pub limit: bool,
    pub specific: bool,
}

/// An insurance entry (see [`Of::Insurance`]).
fn fill_insurance(
    e: &mut ResultOfQualificationConfirmation,
    p: &ArchivedPersonRecord,
    q: &ArchivedInsurance,
    consent: Consent,
    in_force: bool,
) {
    fill_person(e, p);
    e.insured_card_classification = code(q.card_classification, 2);
    e.insurer_number = q.insurer_number.with_text(insurer);
    e.insured_card_symbol = text(&q.card_symbol);
    e.insured_identification_number = text(&q.card_number);
    e.insured_branch_number = q.branch_number.with_text(text);
    e.personal_family_classification = Some(digit(q.personal_family));
    e.insured_name = text(&q.insured_name);
    e.qualification_date = date(q.qualification_date.to_native());
    e.disqualification_date = date(q.disqualification_date.to_native());
    e.insured_certificate_issuance_date = date(q.card_issue_date.to_native());
    e.insured_card_valid_date = date(q.card_valid_from.to_native());
    e.insured_card_expiration_date = date(q.card_valid_to.to_native());
    e.insured_partial_contribution_ratio = code(q.contribution_ratio, 3);
    e.preschool_classification = q.preschool.then(|| Str::const_new("1"));
    e.reason_of_loss = code(q.reason_of_loss, 2);
    e.insurer_name = text(&q.insurer_name);
    if let Some(el) = q.elderly.as_ref() {
        e.elderly_recipient_certificate_info = Some(ElderlyRecipientCertificateInfo {
            elderly_recipient_certificate_date: date(el.issue_date.to_native()),
            elderly_recipient_valid_start_date: date(el.valid_from.to_native()),
            elderly_recipient_valid_end_date: date(el.valid_to.to_native()),
            elderly_recipient_contribution_ratio: code(el.contribution_ratio, 3),
        });
    }
    e.limit_application_certificate_related_cons_flg = Some(Str::const_new(if consent.limit { "1" } else { "0" }));
    if consent.limit && in_force {
        if let Some(l) = q.limit.as_ref() {
            e.limit_application_certificate_related_info = Some(LimitApplicationCertificateRelatedInfo {
                limit_application_certificate_classification: text(&l.classification),
                limit_application_certificate_classification_flag: text(&l.category),
                limit_application_certificate_date: date(l.issue_date.to_native()),
                limit_application_certificate_valid_start_date: date(l.valid_from.to_native()),
                limit_application_certificate_valid_end_date: date(l.valid_to.to_native()),
                limit_application_certificate_long_term_date: date(l.long_term_date.to_native()),
            });
        }
    }
    if consent.specific && in_force && !q.specific_diseases.is_empty() {
        e.specific_diseases_certificate_list = Some(
            q.specific_diseases
                .iter()
                .map(|s| SpecificDiseasesCertificateInfo {
                    specific_diseases_disease_category: text(&s.category),
                    specific_diseases_certificate_date: date(s.issue_date.to_native()),
                    specific_diseases_valid_start_date: date(s.valid_from.to_native()),
                    specific_diseases_valid_end_date: date(s.valid_to.to_native()),
                    specific_diseases_self_pay: text(&s.self_pay),
                })
                .collect(),
        );
    }
}

/// An `A1` entry (see [`Of::Assistance`]).
fn fill_assistance(
    e: &mut ResultOfQualificationConfirmation,
    p: &ArchivedPersonRecord,
    a: &ArchivedAssistance,
    numbers: bool,
    tickets: Vec<MedicalTicketInfo>,
) {
    fill_person(e, p);
    e.insured_card_classification = Some(Str::const_new("A1"));
    if numbers {
        e.insurer_number = text(&a.payer_number);
        e.insured_identification_number = text(&a.recipient_number);
    }
    e.qualification_date = date(a.start_date.to_native());
    e.disqualification_date = date(a.end_date.to_native());
    e.insurer_name = text(&a.welfare_office);
    if !tickets.is_empty() {
        e.public_expense_result_list = Some(tickets);
    }
}

/// A new entry at the end of `list`, filled in place by `fill`.
pub(crate) fn push_entry(list: &mut Vec<ResultOfQualificationConfirmation>, fill: impl FnOnce(&mut ResultOfQualificationConfirmation)) {
    let at = list.len();
    list.push(ResultOfQualificationConfirmation::default());
    fill(&mut list[at]);
}

fn ticket_info(t: &ArchivedTicket, requester: &str) -> MedicalTicketInfo {
    let dispensing = t.ticket_type.as_str() == "02";
    MedicalTicketInfo {
        ticket_type: text(&t.ticket_type),
        medical_ticket_valid_date: date(t.valid_from.to_native()),
        medical_ticket_expiration_date: date(t.valid_to.to_native()),
        issue_number: text(&t.issue_number),
        medical_treatment_month: date(t.treatment_month.to_native()),
        designated_medical_institution_code: t.institution_code.with_text(text),
        designated_medical_institution_name: text(&t.institution_name),
        designated_medical_institution_flag: Some(Str::const_new(if t.institution_code.is(requester) { "0" } else { "1" })),
        prescription_issuer_medical_institution_code: if dispensing { text(&t.prescriber_code) } else { None },
        prescription_issuer_medical_institution_name: if dispensing { text(&t.prescriber_name) } else { None },
        injury_name1: text(&t.injury_names[0]),
        injury_name2: text(&t.injury_names[1]),
        injury_name3: text(&t.injury_names[2]),
        medical_treatment_type: text(&t.treatment_type),
        self_pay_amount: text(&t.self_pay),
        district_contact_name: text(&t.district_contact),
        handling_contact_name: text(&t.handling_contact),
        single_or_combined_use: text(&t.single_or_combined),
        status_of_social_insurance: text(&t.social_insurance),
        consistency_flag: text(&t.consistency_flag),
        status_of_infecton: text(&t.infectious_disease),
        status_of_elderly_medical_care: text(&t.elderly_medical_care),
        status_of_prefectural_expenses: text(&t.prefectural_expenses),
        remarks1: text(&t.remarks[0]),
        remarks2: text(&t.remarks[1]),
        remarks3: text(&t.remarks[2]),
    }
}

/// The latest consent of each kind a person gave at one institution, found
/// in one pass over the person's consents. Public for the lookup bench's
/// baseline, which builds the same flags from owned records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consents {
    /// (consented at, viewing expiry), indexed by `ConsentKind as usize`.
    latest: [Option<(u64, u64)>; ConsentKind::ALL.len()],
    now: u64,
}

impl Consents {
    pub(crate) fn of(p: &ArchivedPersonRecord, institution: &str, now: u64) -> Consents {
        let rows = p.consents.iter().filter(|c| c.institution_code.is(institution));
        Consents::from_rows(now, rows.map(|c| (c.kind.to_native(), c.consented_at.to_native(), c.expires_at.to_native())))
    }

    /// From the consent rows of one person at one institution: (kind,
    /// consented at, viewing expiry).
    pub fn from_rows(now: u64, rows: impl IntoIterator<Item = (ConsentKind, u64, u64)>) -> Consents {
        let mut out = Consents { now, ..Default::default() };
        for (kind, at, expires) in rows {
            let slot = &mut out.latest[kind as usize];
            // On equal times the later row wins, as `max_by_key` would.
            if slot.is_none_or(|(seen, _)| at >= seen) {
                *slot = Some((at, expires));
            }
        }
        out
    }

    /// The flag of one kind. The viewing consents (pharmacy, check-up,
    /// diagnosis, operation) say 0 none, 1 given, 2 expired; the
    /// limit-application and specific-disease flags are 1 while a consent
    /// has not expired, else 0 (`domain.md` section 5).
    pub(crate) fn flag(&self, kind: ConsentKind) -> &'static str {
        match (self.given(kind), self.latest[kind as usize], kind) {
            (true, ..) => "1",
            (false, Some(_), ConsentKind::Pharmacy | ConsentKind::Checkup | ConsentKind::Diagnosis | ConsentKind::Operation) => "2",
            (false, ..) => "0",
        }
    }

    /// A consent of this kind is registered and not expired at `now` (an
    /// empty expiry never expires; one expiring exactly now has expired).
    pub fn given(&self, kind: ConsentKind) -> bool {
        self.latest[kind as usize].is_some_and(|(_, exp)| exp == 0 || self.now < exp)
    }

    /// (consent time, viewing expiry) of one kind, 0 for none.
    pub(crate) fn times(&self, kind: ConsentKind) -> (u64, u64) {
        self.latest[kind as usize].unwrap_or_default()
    }

    /// (flag, consent time, viewing expiry) of one kind.
    fn parts(&self, kind: ConsentKind) -> (Option<Str>, Option<Str>, Option<Str>) {
        let (at, exp) = self.times(kind);
        (Some(Str::const_new(self.flag(kind))), ts(at), ts(exp))
    }

    /// Put the consent flags of the My Number path on an entry.
    pub fn fill(&self, e: &mut ResultOfQualificationConfirmation) {
        use ConsentKind::*;
        if self.latest.iter().all(Option::is_none) {
            // Most persons gave no consent at the requesting institution:
            // every flag 0, no times (the entry's fields start empty).
            let zero = || Some(Str::const_new("0"));
            e.pharmacists_info_cons_flg = zero();
            e.specific_health_checkups_info_cons_flg = zero();
            e.diagnosis_info_cons_flg = zero();
            e.operation_info_cons_flg = zero();
            e.specific_diseases_certificate_related_cons_flg = zero();
            return;
        }
        (e.pharmacists_info_cons_flg, e.pharmacists_info_cons_time, e.pharmacists_info_available_time) = self.parts(Pharmacy);
        (
            e.specific_health_checkups_info_cons_flg,
            e.specific_health_checkups_info_cons_time,
            e.specific_health_checkups_info_available_time,
        ) = self.parts(Checkup);
        (e.diagnosis_info_cons_flg, e.diagnosis_info_cons_time, e.diagnosis_info_available_time) = self.parts(Diagnosis);
        (e.operation_info_cons_flg, e.operation_info_cons_time, e.operation_info_available_time) = self.parts(Operation);
        e.limit_application_certificate_related_cons_time = self.parts(Limit).1;
        let (f, t, _) = self.parts(SpecificDisease);
        (e.specific_diseases_certificate_related_cons_flg, e.specific_diseases_certificate_related_cons_time) = (f, t);
    }
}

/// The requesting institution's own reference number for the person.
pub(crate) fn reference_number<'a>(p: &'a ArchivedPersonRecord, institution: &str) -> Option<&'a str> {
    p.reference_numbers.iter().find(|r| r.institution_code.is(institution)).map(|r| r.reference_number.as_str())
}

/// One `ResultOfQualificationConfirmation`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub person: &'a ArchivedPersonRecord,
    pub of: Of<'a>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Of<'a> {
    /// The limit flag describes the consent on every entry; the details it
    /// governs are shown only when `in_force` (`domain.md` section 5).
    Insurance { ins: &'a ArchivedInsurance, consent: Consent, in_force: bool },
    /// `numbers`: payer and recipient numbers may be shown (a ticket
    /// delegates the requester, or the caller gave them).
    Assistance { asst: &'a ArchivedAssistance, numbers: bool, tickets: Tickets<'a> },
}

/// The tickets an assistance entry lists (`PublicExpenseResultList`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tickets<'a> {
    None,
    /// Those delegating `institution` (the requester) for `month`.
    Delegating {
        institution: &'a str,
        month: u32,
    },
    /// One ticket of a delegated fetch, asked by `requester`.
    One {
        ticket: &'a ArchivedTicket,
        requester: &'a str,
    },
}

impl<'a> Tickets<'a> {
    /// The tickets of `asst`, and who asked (for `DesignatedMedicalInstitutionFlag`).
    pub fn of(self, asst: &'a ArchivedAssistance) -> (SmallVec<[&'a ArchivedTicket; 2]>, &'a str) {
        match self {
            Tickets::None => (SmallVec::new(), ""),
            Tickets::Delegating { institution, month } => (delegating(asst, institution, month).collect(), institution),
            Tickets::One { ticket, requester } => (SmallVec::from_slice(&[ticket]), requester),
        }
    }
}

/// The tickets of `a` delegating `institution` for `month`.
pub(crate) fn delegating<'a>(a: &'a ArchivedAssistance, institution: &'a str, month: u32) -> impl Iterator<Item = &'a ArchivedTicket> {
    a.tickets.iter().filter(move |t| t.institution_code == institution && t.treatment_month == month)
}
