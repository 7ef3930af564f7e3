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
