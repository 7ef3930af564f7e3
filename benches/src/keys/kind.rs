//! The kinds of keys, and the engine index each probes.

use elig_engine::manifest::IndexName;

/// The kinds of keys asked for (the key families of `domain.md` section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// My Number card: certificate serial number (lookup).
    Serial,
    /// My Number card: J-LIS processing number (lookup).
    Processing,
    /// Insurance card: insurer, symbol, number, branch and birth date.
    Card,
    /// Medical ticket: payer, recipient and birth date.
    Ticket,
    /// Delegated-ticket fetch: institution and treatment month (a `tickets` request).
    Delegated,
}

impl KeyKind {
    pub const ALL: [KeyKind; 5] = [KeyKind::Serial, KeyKind::Processing, KeyKind::Card, KeyKind::Ticket, KeyKind::Delegated];

    /// The name in `--mix`, in reports and in bench names.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Serial => "serial",
            KeyKind::Processing => "processing",
            KeyKind::Card => "card",
            KeyKind::Ticket => "ticket",
            KeyKind::Delegated => "delegated",
        }
    }

    pub fn parse(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a bulk inquiry takes this kind (insurance cards and medical tickets).
    pub fn in_bulk(self) -> bool {
        matches!(self, KeyKind::Card | KeyKind::Ticket)
    }

    /// The engine index this kind's lookups probe.
    pub fn index_name(self) -> IndexName {
        match self {
            KeyKind::Serial => IndexName::Serial,
            KeyKind::Processing => IndexName::Processing,
            KeyKind::Card => IndexName::Insurance,
            KeyKind::Ticket => IndexName::Assistance,
            KeyKind::Delegated => IndexName::Tickets,
        }
    }

    /// Position in [`KeyKind::ALL`], for arrays by kind.
    pub fn slot(self) -> usize {
        self as usize
    }
}

/// The index a query probes and its key, as `View::answer` computes them.
pub fn index_key(q: &elig_engine::query::Query) -> (IndexName, String) {
    use elig_engine::{ids, query::QueryKey};
    match &q.key {
        QueryKey::CertificateSerial(s) => (IndexName::Serial, s.clone()),
        QueryKey::ProcessingNumber(s) => (IndexName::Processing, s.clone()),
        QueryKey::InsuranceCard(c) => (IndexName::Insurance, ids::insurance_key(&c.insurer, &c.symbol, &c.number, &c.branch)),
        QueryKey::MedicalTicket(t) => (IndexName::Assistance, ids::assistance_key(&t.payer, &t.recipient)),
        QueryKey::DelegatedTickets { month } => (IndexName::Tickets, ids::ticket_key(&q.institution, *month)),
    }
}
