//! Building result entries (`ResultOfQualificationConfirmation`,
//! `MedicalTicketInfo`) from archived records.

use compact_str::ToCompactString;

use crate::answer::*;
use crate::model::*;

pub(crate) fn date(d: u32) -> Option<Str> {
    (d != 0).then(|| d.to_compact_string())
}

pub(crate) fn ts(t: u64) -> Option<Str> {
    (t != 0).then(|| t.to_compact_string())
}

pub(crate) fn text(s: &str) -> Option<Str> {
    (!s.is_empty()).then(|| Str::from(s))
}

/// The person's own data, common to every entry.
pub(crate) fn person_fields(p: &ArchivedPersonRecord) -> ResultOfQualificationConfirmation {
    ResultOfQualificationConfirmation {
        name: text(&p.name),
        name_of_other: p.other_name.as_ref().and_then(|o| text(&o.name)),
        name_kana: text(&p.name_kana),
        name_of_other_kana: p.other_name.as_ref().and_then(|o| text(&o.kana)),
        sex1: Some(p.sex.to_compact_string()),
        birthdate: date(p.birth_date.to_native()),
        address: text(&p.address),
        post_number: text(&p.post_number),
        ..Default::default()
    }
}

/// What the requester may see beyond the plain qualification.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Disclose {
    pub limit: bool,
    pub specific: bool,
}

pub(crate) fn insurance_entry(p: &ArchivedPersonRecord, q: &ArchivedInsurance, d: Disclose) -> ResultOfQualificationConfirmation {
    let mut e = person_fields(p);
    e.insured_card_classification = text(&code2(q.card_classification));
    e.insurer_number = text(&q.insurer_number);
    e.insured_card_symbol = text(&q.card_symbol);
    e.insured_identification_number = text(&q.card_number);
    e.insured_branch_number = text(&q.branch_number);
    e.personal_family_classification = Some(q.personal_family.to_compact_string());
    e.insured_name = text(&q.insured_name);
    e.qualification_date = date(q.qualification_date.to_native());
    e.disqualification_date = date(q.disqualification_date.to_native());
    e.insured_certificate_issuance_date = date(q.card_issue_date.to_native());
    e.insured_card_valid_date = date(q.card_valid_from.to_native());
    e.insured_card_expiration_date = date(q.card_valid_to.to_native());
    e.insured_partial_contribution_ratio = text(&code3(q.contribution_ratio));
    e.preschool_classification = q.preschool.then(|| Str::const_new("1"));
    e.reason_of_loss = text(&code2(q.reason_of_loss));
    e.insurer_name = text(&q.insurer_name);
    if let Some(el) = q.elderly.as_ref() {
        e.elderly_recipient_certificate_info = Some(ElderlyRecipientCertificateInfo {
            elderly_recipient_certificate_date: date(el.issue_date.to_native()),
            elderly_recipient_valid_start_date: date(el.valid_from.to_native()),
            elderly_recipient_valid_end_date: date(el.valid_to.to_native()),
            elderly_recipient_contribution_ratio: text(&code3(el.contribution_ratio)),
        });
    }
    e.limit_application_certificate_related_cons_flg = Some(Str::const_new(if d.limit { "1" } else { "0" }));
    if d.limit {
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
    if d.specific && !q.specific_diseases.is_empty() {
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
    e
}

/// An `A1` entry. `numbers` says whether payer and recipient numbers may be
/// shown (only when a ticket delegates the requester, or the caller gave them).
pub(crate) fn assistance_entry(
    p: &ArchivedPersonRecord,
    a: &ArchivedAssistance,
    numbers: bool,
    tickets: Vec<MedicalTicketInfo>,
) -> ResultOfQualificationConfirmation {
    let mut e = person_fields(p);
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
    e
}

pub(crate) fn ticket_info(t: &ArchivedTicket, requester: &str) -> MedicalTicketInfo {
    let dispensing = t.ticket_type.as_str() == "02";
    MedicalTicketInfo {
        ticket_type: text(&t.ticket_type),
        medical_ticket_valid_date: date(t.valid_from.to_native()),
        medical_ticket_expiration_date: date(t.valid_to.to_native()),
        issue_number: text(&t.issue_number),
        medical_treatment_month: date(t.treatment_month.to_native()),
        designated_medical_institution_code: text(&t.institution_code),
        designated_medical_institution_name: text(&t.institution_name),
        designated_medical_institution_flag: Some(Str::const_new(if t.institution_code.as_str() == requester { "0" } else { "1" })),
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

/// Consent flag for one kind at one institution: 0 none, 1 given, 2 expired.
/// Returns (flag, consent time, viewing expiry).
pub(crate) fn consent(p: &ArchivedPersonRecord, institution: &str, kind: ConsentKind, now: u64) -> (Str, Option<Str>, Option<Str>) {
    let found = p
        .consents
        .iter()
        .filter(|c| c.institution_code.as_str() == institution && c.kind.to_native() == kind)
        .max_by_key(|c| c.consented_at.to_native());
    match found {
        None => (Str::const_new("0"), None, None),
        Some(c) => {
            let exp = c.expires_at.to_native();
            let flag = if exp == 0 || now < exp { "1" } else { "2" };
            (Str::const_new(flag), ts(c.consented_at.to_native()), ts(exp))
        }
    }
}

/// Put the consent flags of the My Number path on an entry.
pub(crate) fn add_consents(e: &mut ResultOfQualificationConfirmation, p: &ArchivedPersonRecord, institution: &str, now: u64) {
    let (f, t, a) = consent(p, institution, ConsentKind::Pharmacy, now);
    (e.pharmacists_info_cons_flg, e.pharmacists_info_cons_time, e.pharmacists_info_available_time) = (Some(f), t, a);
    let (f, t, a) = consent(p, institution, ConsentKind::Checkup, now);
    (e.specific_health_checkups_info_cons_flg, e.specific_health_checkups_info_cons_time, e.specific_health_checkups_info_available_time) =
        (Some(f), t, a);
    let (f, t, a) = consent(p, institution, ConsentKind::Diagnosis, now);
    (e.diagnosis_info_cons_flg, e.diagnosis_info_cons_time, e.diagnosis_info_available_time) = (Some(f), t, a);
    let (f, t, a) = consent(p, institution, ConsentKind::Operation, now);
    (e.operation_info_cons_flg, e.operation_info_cons_time, e.operation_info_available_time) = (Some(f), t, a);
    let (_, t, _) = consent(p, institution, ConsentKind::Limit, now);
    e.limit_application_certificate_related_cons_time = t;
    let (f, t, _) = consent(p, institution, ConsentKind::SpecificDisease, now);
    (e.specific_diseases_certificate_related_cons_flg, e.specific_diseases_certificate_related_cons_time) = (Some(f), t);
}

pub(crate) fn reference_number(p: &ArchivedPersonRecord, institution: &str) -> Option<Str> {
    p.reference_numbers.iter().find(|r| r.institution_code.as_str() == institution).map(|r| Str::from(r.reference_number.as_str()))
}
