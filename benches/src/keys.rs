//! Real keys drawn from a snapshot's records, as query documents.

use elig_engine::ids;
use elig_engine::manifest::IndexName;
use elig_engine::model::ArchivedPersonRecord;
use elig_engine::snapshot::Snapshot;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::TODAY;

/// The requester when a person gives no better one (a valid code).
pub const CLINIC: &str = "1310000011";

/// The key families of `domain.md` section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Serial,
    Processing,
    Card,
    Ticket,
    Delegated,
}

impl Family {
    pub const ALL: [Family; 5] = [Family::Serial, Family::Processing, Family::Card, Family::Ticket, Family::Delegated];

    pub fn name(self) -> &'static str {
        match self {
            Family::Serial => "serial",
            Family::Processing => "processing",
            Family::Card => "card",
            Family::Ticket => "ticket",
            Family::Delegated => "delegated",
        }
    }

    /// The engine index this family's lookups probe.
    pub fn index(self) -> elig_engine::manifest::IndexName {
        use elig_engine::manifest::IndexName;
        match self {
            Family::Serial => IndexName::Serial,
            Family::Processing => IndexName::Processing,
            Family::Card => IndexName::Insurance,
            Family::Ticket => IndexName::Assistance,
            Family::Delegated => IndexName::Tickets,
        }
    }
}

/// The index a query probes and its key, as `View::answer` computes them.
pub fn index_key(q: &elig_engine::query::Query) -> (elig_engine::manifest::IndexName, String) {
    use elig_engine::{ids, manifest::IndexName, query::QueryKey};
    match &q.key {
        QueryKey::CertificateSerial(s) => (IndexName::Serial, s.clone()),
        QueryKey::ProcessingNumber(s) => (IndexName::Processing, s.clone()),
        QueryKey::InsuranceCard(c) => (IndexName::Insurance, ids::insurance_key(&c.insurer, &c.symbol, &c.number, &c.branch)),
        QueryKey::MedicalTicket(t) => (IndexName::Assistance, ids::assistance_key(&t.payer, &t.recipient)),
        QueryKey::DelegatedTickets { month } => (IndexName::Tickets, ids::ticket_key(&q.institution, *month)),
    }
}

/// Query documents of one family: keys the snapshot holds, and keys it does not.
#[derive(Debug, Clone, Default)]
pub struct FamilyKeys {
    pub present: Vec<String>,
    pub absent: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Keys {
    families: Vec<(Family, FamilyKeys)>,
}

impl Keys {
    pub fn get(&self, family: Family) -> &FamilyKeys {
        &self.families.iter().find(|(f, _)| *f == family).expect("every family is sampled").1
    }
}

fn my_number(field: &str, key: &str, institution: &str) -> String {
    json!({"MedicalInstitutionCode": institution, "QualificationConfirmationDate": TODAY.to_string(),
           "MyNumberCard": {field: key}})
    .to_string()
}

fn card(insurer: &str, symbol: &str, number: &str, branch: &str, birth: u32) -> String {
    json!({"MedicalInstitutionCode": CLINIC, "QualificationConfirmationDate": TODAY.to_string(),
           "InsuranceCard": {"InsurerNumber": insurer, "InsuredCardSymbol": symbol, "InsuredIdentificationNumber": number,
                             "InsuredBranchNumber": branch, "Birthdate": birth.to_string()}})
    .to_string()
}

fn ticket(payer: &str, recipient: &str, birth: u32, institution: &str) -> String {
    json!({"MedicalInstitutionCode": institution, "QualificationConfirmationDate": TODAY.to_string(),
           "MedicalTicket": {"PayerNumber": payer, "RecipientNumber": recipient, "Birthdate": birth.to_string()}})
    .to_string()
}

fn delegated(institution: &str, month: u32) -> String {
    json!({"MedicalInstitutionCode": institution, "QualificationConfirmationDate": TODAY.to_string(),
           "DelegatedTickets": {"MedicalTreatmentMonth": month.to_string()}})
    .to_string()
}

/// The institution a My Number check comes from: one the person registered a
/// reference number or a consent at, so those paths are exercised too.
fn home_institution(p: &ArchivedPersonRecord, rng: &mut ChaCha8Rng) -> String {
    let refs: Vec<String> = p.reference_numbers.iter().map(|r| r.institution_code.to_string()).collect();
    let consents: Vec<String> = p.consents.iter().map(|c| c.institution_code.to_string()).collect();
    refs.choose(rng).or(consents.choose(rng)).map_or(CLINIC, |s| s.as_str()).to_string()
}

/// The present keys one person offers, pushed into families not yet full.
fn draw(p: &ArchivedPersonRecord, rng: &mut ChaCha8Rng, out: &mut [FamilyKeys; 5], n: usize) {
    let month = TODAY / 100;
    // Certificates current today and not revoked: what a card reader presents.
    let current: Vec<_> = p
        .certificates
        .iter()
        .filter(|c| c.revoked_at.to_native() == 0 && c.valid_from.to_native() <= TODAY && TODAY <= c.valid_to.to_native())
        .collect();
    if let Some(c) = current.choose(rng) {
        let inst = home_institution(p, rng);
        if out[0].present.len() < n {
            out[0].present.push(my_number("CertificateSerialNumber", &c.serial_number.to_string(), &inst));
        }
        if out[1].present.len() < n {
            out[1].present.push(my_number("ProcessingNumber", &c.processing_number.to_string(), &inst));
        }
    }
    let insurance: Vec<_> = p.insurance.iter().collect();
    if let (Some(i), true) = (insurance.choose(rng), out[2].present.len() < n) {
        out[2].present.push(card(
            &i.insurer_number.to_string(),
            &i.card_symbol,
            &i.card_number,
            &i.branch_number.to_string(),
            p.birth_date.to_native(),
        ));
    }
    let assistance: Vec<_> = p.assistance.iter().collect();
    if let Some(a) = assistance.choose(rng) {
        // Asked by the institution a ticket of this month delegates, if any.
        let inst = a
            .tickets
            .iter()
            .find(|t| t.treatment_month == month)
            .or(a.tickets.first())
            .map_or(CLINIC.to_string(), |t| t.institution_code.to_string());
        if out[3].present.len() < n {
            out[3].present.push(ticket(&a.payer_number, &a.recipient_number, p.birth_date.to_native(), &inst));
        }
        let tickets: Vec<_> = a.tickets.iter().collect();
        if let (Some(t), true) = (tickets.choose(rng), out[4].present.len() < n) {
            out[4].present.push(delegated(&t.institution_code.to_string(), t.treatment_month.to_native()));
        }
    }
}

fn absent_in(snapshot: &Snapshot, name: IndexName, key: &str) -> bool {
    // Any slot with a matching fingerprint counts as present, so a drawn key
    // is certainly absent.
    snapshot.find(name, key, |_| true).is_none()
}

fn hex(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len).map(|_| char::from(b"0123456789ABCDEF"[rng.gen_range(0..16)])).collect()
}

fn digits(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// `n` documents per family of keys the snapshot holds (drawn from random
/// persons' records) and `n` of keys it does not hold (well-formed keys of
/// the same shape, checked against the index). A family the data has too few
/// of (tickets in a small snapshot) repeats its keys; one it has none of is
/// left empty.
pub fn sample_keys(snapshot: &Snapshot, n: usize, seed: u64) -> Keys {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out: [FamilyKeys; 5] = Default::default();
    let persons = snapshot.persons();
    if persons > 0 {
        let mut draws = 0u64;
        while out.iter().any(|f| f.present.len() < n) && draws < 4 * u64::from(persons) {
            draws += 1;
            if let Some(p) = snapshot.person(rng.gen_range(0..persons)) {
                draw(p, &mut rng, &mut out, n);
            }
        }
    }
    for f in out.iter_mut() {
        let len = f.present.len();
        for i in (0..n.saturating_sub(len)).take_while(|_| len > 0) {
            let again = f.present[i % len].clone();
            f.present.push(again);
        }
    }
    let ticket_docs = out[3].present.clone();
    out[0].absent = absent(&mut rng, n, |rng| {
        let s = hex(rng, 16);
        absent_in(snapshot, IndexName::Serial, &s).then(|| my_number("CertificateSerialNumber", &s, CLINIC))
    });
    out[1].absent = absent(&mut rng, n, |rng| {
        let s = digits(rng, 16);
        absent_in(snapshot, IndexName::Processing, &s).then(|| my_number("ProcessingNumber", &s, CLINIC))
    });
    // Same insurer, symbol and branch as a real card, an unused number.
    let cards: Vec<(String, String, String, u32)> = (0..n.min(256))
        .filter_map(|_| snapshot.person(rng.gen_range(0..persons.max(1))))
        .filter_map(|p| {
            let i = p.insurance.first()?;
            Some((i.insurer_number.to_string(), i.card_symbol.to_string(), i.branch_number.to_string(), p.birth_date.to_native()))
        })
        .collect();
    if !cards.is_empty() {
        out[2].absent = absent(&mut rng, n, |rng| {
            let (insurer, symbol, branch, birth) = &cards[rng.gen_range(0..cards.len())];
            let number = digits(rng, 8);
            let key = ids::insurance_key(insurer, symbol, &number, branch);
            absent_in(snapshot, IndexName::Insurance, &key).then(|| card(insurer, symbol, &number, branch, *birth))
        });
    }
    // A real payer, an unused recipient number (with its check digit).
    let payers: Vec<String> = ticket_docs.iter().filter_map(|d| field(d, "MedicalTicket", "PayerNumber")).take(256).collect();
    if !payers.is_empty() {
        out[3].absent = absent(&mut rng, n, |rng| {
            let payer = &payers[rng.gen_range(0..payers.len())];
            let recipient = ids::with_check_digit(&digits(rng, 6));
            let key = ids::assistance_key(payer, &recipient);
            absent_in(snapshot, IndexName::Assistance, &key).then(|| ticket(payer, &recipient, 19800101, CLINIC))
        });
    }
    // A real institution, a month without tickets.
    let mut institutions: Vec<String> = ticket_docs.iter().filter_map(|d| field(d, "", "MedicalInstitutionCode")).take(256).collect();
    if institutions.is_empty() {
        institutions.push(CLINIC.to_string());
    }
    out[4].absent = absent(&mut rng, n, |rng| {
        let inst = &institutions[rng.gen_range(0..institutions.len())];
        let month = 199001 + rng.gen_range(0..12);
        absent_in(snapshot, IndexName::Tickets, &ids::ticket_key(inst, month)).then(|| delegated(inst, month))
    });
    Keys { families: Family::ALL.into_iter().zip(out).collect() }
}

/// Up to `n` documents from `make`, which may refuse a draw (`None`).
fn absent(rng: &mut ChaCha8Rng, n: usize, mut make: impl FnMut(&mut ChaCha8Rng) -> Option<String>) -> Vec<String> {
    let mut docs = Vec::with_capacity(n);
    for _ in 0..100 * n {
        if docs.len() == n {
            break;
        }
        docs.extend(make(rng));
    }
    docs
}

/// A string field of a query document (`section` "" for the top level).
fn field(doc: &str, section: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let v = if section.is_empty() { &v } else { v.get(section)? };
    v.get(name)?.as_str().map(str::to_string)
}
