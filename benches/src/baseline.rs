//! The baseline the lookup bench compares the engine with: per key family a
//! plain `std::collections::HashMap<String, PersonRecord>` of owned records
//! (deserialised from the same snapshot with `rkyv::deserialize`), answering
//! the same [`Query`] with one `get` and building the same [`Answer`].
//!
//! To keep the comparison honest the builders below mirror
//! `engine/src/entry.rs` and `engine/src/lookup.rs` field for field: the same
//! header, echo, person, qualification, ticket, consent and reference-number
//! strings, and the same validity rules for the cases the bench asks. They
//! also build them the same way: entries filled in place in the answer's list,
//! codes formatted on the stack, consents found in one pass, so the bench
//! compares storage, not two answer builders. What the baseline does not have
//! is what the engine pays for being a snapshot: the mmap, the rkyv layout,
//! the full-key check and the delta overlay.

use std::collections::HashMap;

use elig_engine::answer::*;
use elig_engine::entry::Consents;
use elig_engine::ids;
use elig_engine::lookup::{reference, Clock, Span};
use elig_engine::model::*;
use elig_engine::query::{Query, QueryKey};
use elig_engine::snapshot::Snapshot;
use elig_engine::values::{code, date, digit, insurer, number, text};

use crate::KeyKind;

#[derive(Debug)]
pub struct Baseline {
    family: KeyKind,
    /// Key → the one person holding it (serial, processing, card, ticket).
    one: HashMap<String, PersonRecord>,
    /// Institution + month → every person a ticket of the month delegates there.
    many: HashMap<String, Vec<PersonRecord>>,
    generation: Str,
}

/// The keys of `family` a record holds, as the engine's indexes key them.
fn keys_of(family: KeyKind, p: &PersonRecord) -> Vec<String> {
    let mut keys = Vec::new();
    elig_engine::keys::record_keys(p, |name, key| {
        if name == family.index_name() {
            keys.push(key.to_string());
        }
    });
    keys
}

impl Baseline {
    /// Deserialise every record of `snapshot` that holds a key of `family`.
    pub fn build(snapshot: &Snapshot, family: KeyKind) -> Baseline {
        let mut b = Baseline { family, one: HashMap::new(), many: HashMap::new(), generation: snapshot.generation().to_compact_string() };
        for (_, archived) in snapshot.iter_persons() {
            let p: PersonRecord = rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(archived).expect("a verified record deserialises");
            let mut keys = keys_of(family, &p);
            keys.sort();
            keys.dedup();
            for k in keys {
                if family == KeyKind::Delegated {
                    b.many.entry(k).or_default().push(p.clone());
                } else {
                    b.one.insert(k, p.clone());
                }
            }
        }
        b
    }

    /// The plain map lookup alone: the record holding `key`, if any.
    pub fn get(&self, key: &str) -> Option<&PersonRecord> {
        self.one.get(key).or_else(|| self.many.get(key).and_then(|ps| ps.first()))
    }

    pub fn len(&self) -> usize {
        self.one.len() + self.many.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answer one query of this baseline's family.
    pub fn answer(&self, q: &Query, clock: Clock) -> Answer {
        let mut answer = match (&q.key, self.family) {
            (QueryKey::CertificateSerial(s), KeyKind::Serial) => self.my_number(q, clock, s, true),
            (QueryKey::ProcessingNumber(s), KeyKind::Processing) => self.my_number(q, clock, s, false),
            (QueryKey::InsuranceCard(c), KeyKind::Card) => self.card(q, c),
            (QueryKey::MedicalTicket(t), KeyKind::Ticket) => self.ticket(q, t),
            (QueryKey::DelegatedTickets { month }, KeyKind::Delegated) => self.delegated(q, *month),
            _ => panic!("a {} baseline cannot answer a {} query", self.family.name(), q.key.kind()),
        };
        // Filled in place, as the engine does (the header is boxed).
        let h = &mut answer.message_header;
        h.process_execution_time = number(clock.now);
        h.qualification_confirmation_date = number(q.date.into());
        h.medical_institution_code = Str::from(q.institution.as_str());
        h.reference_classification = if matches!(self.family, KeyKind::Serial | KeyKind::Processing) { "1" } else { "2" }.into();
        h.segment_of_result = "1".into();
        h.character_code_identifier = "0".into();
        h.snapshot_generation = self.generation.clone();
        h.delta_sequence = "0".into();
        answer
    }

    fn my_number(&self, q: &Query, clock: Clock, key: &str, serial: bool) -> Answer {
        let Some(p) = self.one.get(key) else { return validity_only(Validity::NotFound, None) };
        let links: Vec<&Certificate> =
            p.certificates.iter().filter(|c| if serial { c.serial_number == key } else { c.processing_number == key }).collect();
        if links.iter().any(|c| c.revoked_at != 0 && c.revoked_at <= clock.now) {
            return error("EC01", "the card's certificate is revoked");
        }
        if !links.iter().any(|c| c.valid_from <= clock.today && clock.today <= c.valid_to) {
            return error("EC02", "the card's certificate is expired or not yet valid");
        }
        let inst = q.institution.as_str();
        let d = q.date;
        let rows = p.consents.iter().filter(|c| c.institution_code == inst);
        let consents = Consents::from_rows(clock.now, rows.map(|c| (c.kind, c.consented_at, c.expires_at)));
        let consent = Consent { limit: consents.given(ConsentKind::Limit), specific: consents.given(ConsentKind::SpecificDisease) };
        let mut list = Vec::with_capacity(2);
        for ins in p.insurance.iter().filter(|i| insurance_in_force(i, d)) {
            push_entry(&mut list, |e| fill_insurance(e, p, ins, consent, true));
        }
        let mut delegated_any = false;
        let mut assisted = false;
        for a in p.assistance.iter().filter(|a| assistance_in_force(a, d)) {
            assisted = true;
            let tickets = delegating_tickets(a, inst, d / 100);
            delegated_any |= !tickets.is_empty();
            let numbers = !tickets.is_empty();
            push_entry(&mut list, |e| fill_assistance(e, p, a, numbers, tickets));
        }
        let validity = if list.is_empty() {
            // The reference qualification, chosen by the engine's rule.
            let spans = p.insurance.iter().map(insurance_span).chain(p.assistance.iter().map(assistance_span));
            match reference(d, spans) {
                Some(at) if at < p.insurance.len() => push_entry(&mut list, |e| fill_insurance(e, p, &p.insurance[at], consent, false)),
                Some(at) => push_entry(&mut list, |e| fill_assistance(e, p, &p.assistance[at - p.insurance.len()], false, Vec::new())),
                None => return validity_only(Validity::NotFound, None),
            }
            Validity::Invalid
        } else if assisted && !delegated_any && !p.insurance.iter().any(|i| insurance_in_force(i, d)) {
            Validity::NotDelegated
        } else {
            Validity::Valid
        };
        let reference = p.reference_numbers.iter().find(|r| r.institution_code == inst).map(|r| Str::from(r.reference_number.as_str()));
        for e in &mut list {
            consents.fill(e);
            e.reference_number = reference.clone();
        }
        with_list(validity, list, None)
    }

    fn card(&self, q: &Query, c: &elig_engine::query::CardKey) -> Answer {
        let echo = SearchInfo {
            insurer_number: insurer(&c.insurer),
            insured_card_symbol: text(&c.symbol),
            insured_identification_number: Some(Str::from(c.number.as_str())),
            insured_branch_number: text(&c.branch),
            birthdate: Some(number(c.birth_date.into())),
            limit_application_certificate_related_cons_flg: Some(if c.limit_consent { "1" } else { "0" }.into()),
            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
        };
        let key = ids::insurance_key(&c.insurer, &c.symbol, &c.number, &c.branch);
        let p = match self.one.get(&key) {
            Some(p) if p.birth_date == c.birth_date => p,
            _ => return validity_only(Validity::NotFound, Some(echo)),
        };
        let matches = |i: &&Insurance| {
            i.insurer_number == c.insurer && i.card_symbol == c.symbol && i.card_number == c.number && i.branch_number == c.branch
        };
        let consent = Consent { limit: c.limit_consent, specific: false };
        if let Some(ins) = p.insurance.iter().filter(matches).rfind(|i| insurance_in_force(i, q.date)) {
            return with_list(Validity::Valid, one_entry(|e| fill_insurance(e, p, ins, consent, true)), Some(echo));
        }
        let held: Vec<&Insurance> = p.insurance.iter().filter(matches).collect();
        let Some(lost) = reference(q.date, held.iter().map(|i| insurance_span(i))).map(|at| held[at]) else {
            return validity_only(Validity::NotFound, Some(echo));
        };
        let other = p.insurance.iter().any(|i| !matches(&i) && insurance_in_force(i, q.date))
            || p.assistance.iter().any(|a| assistance_in_force(a, q.date));
        let validity = if other { Validity::InvalidNewExists } else { Validity::Invalid };
        with_list(validity, one_entry(|e| fill_insurance(e, p, lost, consent, false)), Some(echo))
    }

    fn ticket(&self, q: &Query, t: &elig_engine::query::TicketKey) -> Answer {
        let echo = SearchInfo {
            insurer_number: Some(Str::from(t.payer.as_str())),
            insured_identification_number: Some(Str::from(t.recipient.as_str())),
            birthdate: Some(number(t.birth_date.into())),
            limit_application_certificate_related_cons_flg: Some("0".into()),
            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
            ..Default::default()
        };
        let p = match self.one.get(&ids::assistance_key(&t.payer, &t.recipient)) {
            Some(p) if p.birth_date == t.birth_date => p,
            _ => return validity_only(Validity::NotFound, Some(echo)),
        };
        let matches = |a: &&Assistance| a.payer_number == t.payer && a.recipient_number == t.recipient;
        if let Some(a) = p.assistance.iter().filter(matches).rfind(|a| assistance_in_force(a, q.date)) {
            let tickets = delegating_tickets(a, &q.institution, q.date / 100);
            if tickets.is_empty() {
                return with_list(Validity::NotDelegated, one_entry(|e| fill_assistance(e, p, a, false, Vec::new())), Some(echo));
            }
            return with_list(Validity::Valid, one_entry(|e| fill_assistance(e, p, a, true, tickets)), Some(echo));
        }
        let held: Vec<&Assistance> = p.assistance.iter().filter(matches).collect();
        let Some(lost) = reference(q.date, held.iter().map(|a| assistance_span(a))).map(|at| held[at]) else {
            return validity_only(Validity::NotFound, Some(echo));
        };
        let other = p.insurance.iter().any(|i| insurance_in_force(i, q.date))
            || p.assistance.iter().any(|a| !matches(&a) && assistance_in_force(a, q.date));
        let validity = if other { Validity::InvalidNewExists } else { Validity::Invalid };
        with_list(validity, one_entry(|e| fill_assistance(e, p, lost, true, Vec::new())), Some(echo))
    }

    fn delegated(&self, q: &Query, month: u32) -> Answer {
        let inst = q.institution.as_str();
        let mut units = Vec::new();
        for p in self.many.get(&ids::ticket_key(inst, month)).into_iter().flatten() {
            for a in &p.assistance {
                for t in a.tickets.iter().filter(|t| t.institution_code == inst && t.treatment_month == month) {
                    let validity = if assistance_in_force(a, q.date) { Validity::Valid } else { Validity::Invalid };
                    units.push(BulkConfirmUnit {
                        qualification_confirm_search_info: Some(SearchInfo {
                            insurer_number: Some(Str::from(a.payer_number.as_str())),
                            insured_identification_number: Some(Str::from(a.recipient_number.as_str())),
                            birthdate: date(p.birth_date),
                            limit_application_certificate_related_cons_flg: Some("0".into()),
                            arbitrary_identifier: q.arbitrary_id.as_deref().map(Str::from),
                            ..Default::default()
                        }),
                        processing_result_status: "1".into(),
                        qualification_validity: Some(validity.code().into()),
                        result_of_qualification_confirmation: Some({
                            let mut e = ResultOfQualificationConfirmation::default();
                            fill_assistance(&mut e, p, a, true, vec![ticket_info(t, inst)]);
                            e
                        }),
                        reference_number: p
                            .reference_numbers
                            .iter()
                            .find(|r| r.institution_code == inst)
                            .map(|r| Str::from(r.reference_number.as_str())),
                        ..Default::default()
                    });
                }
            }
        }
        units.sort_by(|x, y| {
            let k = |u: &BulkConfirmUnit| {
                let s = u.qualification_confirm_search_info.as_ref();
                (s.and_then(|s| s.insurer_number.clone()), s.and_then(|s| s.insured_identification_number.clone()))
            };
            k(x).cmp(&k(y))
        });
        let mut answer = Answer::default();
        answer.message_body.processing_result_status = "1".into();
        answer.message_body.bulk_confirm_unit_list = units;
        answer
    }
}

fn insurance_in_force(i: &Insurance, d: u32) -> bool {
    i.qualification_date <= d && (i.disqualification_date == 0 || d < i.disqualification_date)
}

fn assistance_in_force(a: &Assistance, d: u32) -> bool {
    a.start_date <= d && (a.end_date == 0 || d <= a.end_date)
}

fn delegating_tickets(a: &Assistance, institution: &str, month: u32) -> Vec<MedicalTicketInfo> {
    a.tickets
        .iter()
        .filter(|t| t.institution_code == institution && t.treatment_month == month)
        .map(|t| ticket_info(t, institution))
        .collect()
}

fn validity_only(v: Validity, echo: Option<SearchInfo>) -> Answer {
    let mut a = Answer::default();
    a.message_body.processing_result_status = "1".into();
    a.message_body.qualification_validity = Some(v.code().into());
    a.message_body.qualification_confirm_search_info = echo;
    a
}

fn with_list(v: Validity, list: Vec<ResultOfQualificationConfirmation>, echo: Option<SearchInfo>) -> Answer {
    let mut a = validity_only(v, echo);
    a.message_body.result_list = list;
    a
}

fn error(code: &str, message: &str) -> Answer {
    let mut a = Answer::default();
    a.message_body.processing_result_status = "2".into();
    a.message_body.processing_result_code = Some(code.into());
    a.message_body.processing_result_message = Some(message.into());
    a
}

// ---- entries: engine/src/entry.rs over owned records, with its value formatters ----

#[derive(Debug, Clone, Copy, Default)]
struct Consent {
    limit: bool,
    specific: bool,
}

fn insurance_span(i: &Insurance) -> Span {
    Span::insurance(i.qualification_date, i.disqualification_date)
}

fn assistance_span(a: &Assistance) -> Span {
    Span::assistance(a.start_date, a.end_date)
}

/// The person's own data, common to every entry.
fn fill_person(e: &mut ResultOfQualificationConfirmation, p: &PersonRecord) {
    e.name = text(&p.name);
    e.name_of_other = p.other_name.as_ref().and_then(|o| text(&o.name));
    e.name_kana = text(&p.name_kana);
    e.name_of_other_kana = p.other_name.as_ref().and_then(|o| text(&o.kana));
    e.sex1 = Some(digit(p.sex));
    e.birthdate = date(p.birth_date);
    e.address = p.address.text();
    e.post_number = text(&p.post_number);
}

fn fill_insurance(e: &mut ResultOfQualificationConfirmation, p: &PersonRecord, q: &Insurance, d: Consent, in_force: bool) {
    fill_person(e, p);
    e.insured_card_classification = code(q.card_classification, 2);
    e.insurer_number = insurer(&q.insurer_number);
    e.insured_card_symbol = text(&q.card_symbol);
    e.insured_identification_number = text(&q.card_number);
    e.insured_branch_number = text(&q.branch_number);
    e.personal_family_classification = Some(digit(q.personal_family));
    e.insured_name = text(&q.insured_name);
    e.qualification_date = date(q.qualification_date);
    e.disqualification_date = date(q.disqualification_date);
    e.insured_certificate_issuance_date = date(q.card_issue_date);
    e.insured_card_valid_date = date(q.card_valid_from);
    e.insured_card_expiration_date = date(q.card_valid_to);
    e.insured_partial_contribution_ratio = code(q.contribution_ratio, 3);
    e.preschool_classification = q.preschool.then(|| Str::const_new("1"));
    e.reason_of_loss = code(q.reason_of_loss, 2);
    e.insurer_name = text(&q.insurer_name);
    if let Some(el) = &q.elderly {
        e.elderly_recipient_certificate_info = Some(ElderlyRecipientCertificateInfo {
            elderly_recipient_certificate_date: date(el.issue_date),
            elderly_recipient_valid_start_date: date(el.valid_from),
            elderly_recipient_valid_end_date: date(el.valid_to),
            elderly_recipient_contribution_ratio: code(el.contribution_ratio, 3),
        });
    }
    e.limit_application_certificate_related_cons_flg = Some(Str::const_new(if d.limit { "1" } else { "0" }));
    if let (true, true, Some(l)) = (d.limit, in_force, &q.limit) {
        e.limit_application_certificate_related_info = Some(LimitApplicationCertificateRelatedInfo {
            limit_application_certificate_classification: text(&l.classification),
            limit_application_certificate_classification_flag: text(&l.category),
            limit_application_certificate_date: date(l.issue_date),
            limit_application_certificate_valid_start_date: date(l.valid_from),
            limit_application_certificate_valid_end_date: date(l.valid_to),
            limit_application_certificate_long_term_date: date(l.long_term_date),
        });
    }
    if d.specific && in_force && !q.specific_diseases.is_empty() {
        e.specific_diseases_certificate_list = Some(
            q.specific_diseases
                .iter()
                .map(|s| SpecificDiseasesCertificateInfo {
                    specific_diseases_disease_category: text(&s.category),
                    specific_diseases_certificate_date: date(s.issue_date),
                    specific_diseases_valid_start_date: date(s.valid_from),
                    specific_diseases_valid_end_date: date(s.valid_to),
                    specific_diseases_self_pay: text(&s.self_pay),
                })
                .collect(),
        );
    }
}

/// An `A1` entry; `numbers` says whether payer and recipient numbers may be shown.
fn fill_assistance(
    e: &mut ResultOfQualificationConfirmation,
    p: &PersonRecord,
    a: &Assistance,
    numbers: bool,
    tickets: Vec<MedicalTicketInfo>,
) {
    fill_person(e, p);
    e.insured_card_classification = Some(Str::const_new("A1"));
    if numbers {
        e.insurer_number = text(&a.payer_number);
        e.insured_identification_number = text(&a.recipient_number);
    }
    e.qualification_date = date(a.start_date);
    e.disqualification_date = date(a.end_date);
    e.insurer_name = text(&a.welfare_office);
    if !tickets.is_empty() {
        e.public_expense_result_list = Some(tickets);
    }
}

/// A new entry at the end of `list`, filled in place by `fill`.
fn push_entry(list: &mut Vec<ResultOfQualificationConfirmation>, fill: impl FnOnce(&mut ResultOfQualificationConfirmation)) {
    let at = list.len();
    list.push(ResultOfQualificationConfirmation::default());
    fill(&mut list[at]);
}

/// A list holding one entry filled by `fill`.
fn one_entry(fill: impl FnOnce(&mut ResultOfQualificationConfirmation)) -> Vec<ResultOfQualificationConfirmation> {
    let mut list = Vec::with_capacity(1);
    push_entry(&mut list, fill);
    list
}

fn ticket_info(t: &Ticket, requester: &str) -> MedicalTicketInfo {
    let dispensing = t.ticket_type == "02";
    MedicalTicketInfo {
        ticket_type: text(&t.ticket_type),
        medical_ticket_valid_date: date(t.valid_from),
        medical_ticket_expiration_date: date(t.valid_to),
        issue_number: text(&t.issue_number),
        medical_treatment_month: date(t.treatment_month),
        designated_medical_institution_code: text(&t.institution_code),
        designated_medical_institution_name: text(&t.institution_name),
        designated_medical_institution_flag: Some(Str::const_new(if t.institution_code == requester { "0" } else { "1" })),
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
