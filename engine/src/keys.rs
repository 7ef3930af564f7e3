//! The index keys a person record holds. The loader builds the snapshot
//! indexes from this and the delta overlay its key maps, so both agree with
//! the keys that lookups ask for.

use crate::ids;
use crate::manifest::IndexName;
use crate::model::PersonRecord;

/// Call `f` once for every (index, key) the record holds (duplicates are
/// possible, e.g. the same insurance key over two periods).
pub fn record_keys(p: &PersonRecord, mut f: impl FnMut(IndexName, &str)) {
    f(IndexName::PersonId, &p.person_id);
    for c in &p.certificates {
        f(IndexName::Serial, &c.serial_number);
        f(IndexName::Processing, &c.processing_number);
    }
    for i in &p.insurance {
        f(IndexName::QualificationId, &i.qualification_id);
        f(IndexName::Insurance, &ids::insurance_key(&i.insurer_number, &i.card_symbol, &i.card_number, &i.branch_number));
    }
    for a in &p.assistance {
        f(IndexName::AssistanceId, &a.assistance_id);
        f(IndexName::Assistance, &ids::assistance_key(&a.payer_number, &a.recipient_number));
        for t in &a.tickets {
            f(IndexName::TicketId, &t.ticket_id);
            f(IndexName::Tickets, &ids::ticket_key(&t.institution_code, t.treatment_month));
        }
    }
}

/// Whether an archived record holds `key` in index `name` (the full-key
/// confirmation of an index hit).
pub fn archived_holds(p: &crate::model::ArchivedPersonRecord, name: IndexName, key: &str) -> bool {
    match name {
        IndexName::PersonId => p.person_id == key,
        IndexName::Serial => p.certificates.iter().any(|c| c.serial_number == key),
        IndexName::Processing => p.certificates.iter().any(|c| c.processing_number == key),
        IndexName::QualificationId => p.insurance.iter().any(|i| i.qualification_id == key),
        IndexName::Insurance => p.insurance.iter().any(|i| {
            i.insurer_number.with_text(|n| i.branch_number.with_text(|b| ids::insurance_key(n, &i.card_symbol, &i.card_number, b))) == key
        }),
        IndexName::AssistanceId => p.assistance.iter().any(|a| a.assistance_id == key),
        IndexName::Assistance => p.assistance.iter().any(|a| ids::assistance_key(&a.payer_number, &a.recipient_number) == key),
        IndexName::TicketId => p.assistance.iter().any(|a| a.tickets.iter().any(|t| t.ticket_id == key)),
        IndexName::Tickets => p
            .assistance
            .iter()
            .any(|a| a.tickets.iter().any(|t| t.institution_code.with_text(|c| ids::ticket_key(c, t.treatment_month.to_native())) == key)),
    }
}

/// Whether an owned record holds `key` in index `name`.
pub fn record_holds(p: &PersonRecord, name: IndexName, key: &str) -> bool {
    let mut found = false;
    record_keys(p, |n, k| found |= n == name && k == key);
    found
}
