//! Keys rendered into query documents for a requester: the pool both the
//! criterion benches and the load generator sample from.

use std::path::PathBuf;

use elig_engine::ids;
use elig_engine::manifest::IndexName;
use elig_engine::snapshot::Snapshot;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::draw::{from_export, from_snapshot, Card, Delegated, DrawPlan, Drawn, KeyError, Presence, TicketKey};
use super::kind::KeyKind;

/// The requester when the data names none (the dev PKI's institution).
pub const FALLBACK_INSTITUTION: &str = "3410712362";

/// Where keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A compiled snapshot directory (opened and verified, read-only).
    Snapshot(PathBuf),
    /// An export directory of CSV files (UTF-8, `.csv` or `.csv.gz`).
    Export(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Snapshot(p) => write!(f, "snapshot {}", p.display()),
            KeySource::Export(p) => write!(f, "export {}", p.display()),
        }
    }
}

/// Whose `MedicalInstitutionCode` the queries carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// Central certificate: institutions drawn from the data (a ticket's
    /// delegated institution for ticket keys and fetches, a person's
    /// reference-number or consent institution for My Number keys).
    Central,
    /// Central certificate asking as one institution (`--institution`).
    CentralAs(String),
    /// Institution certificate: its own code only.
    Institution(String),
}

impl Requester {
    /// The one code every query carries, if fixed.
    pub fn code(&self) -> Option<&str> {
        match self {
            Requester::Central => None,
            Requester::CentralAs(c) | Requester::Institution(c) => Some(c),
        }
    }
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requester::Central => f.write_str("central certificate, institutions drawn from the data"),
            Requester::CentralAs(c) => write!(f, "central certificate as institution {c}"),
            Requester::Institution(c) => write!(f, "institution certificate {c}"),
        }
    }
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct KeyPlan {
    pub source: KeySource,
    pub requester: Requester,
    /// Present keys drawn per kind (as many absent keys are made).
    pub pool: usize,
    /// The date whose month makes a ticket "current", `YYYYMMDD`.
    pub today: u32,
    /// `QualificationConfirmationDate` sent with every query; `None` lets the server use its today.
    pub date: Option<u32>,
    pub seed: u64,
}

impl KeyPlan {
    fn draw(&self) -> DrawPlan<'_> {
        DrawPlan { own: self.requester.code(), today: self.today, pool: self.pool }
    }
}

/// Query documents in one buffer.
#[derive(Debug, Default)]
struct Docs {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Docs {
    fn push(&mut self, doc: &Value) {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.bytes, doc);
        self.ends.push(self.bytes.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Rendered query documents per kind: present and absent keys.
#[derive(Debug)]
pub struct KeyPool {
    present: [Docs; 5],
    absent: [Docs; 5],
    /// Persons in the source.
    pub persons: u64,
}

impl KeyPool {
    /// Draw and render the keys of `plan` (reads the whole source once).
    pub fn build(plan: &KeyPlan) -> Result<KeyPool, KeyError> {
        match &plan.source {
            KeySource::Snapshot(dir) => Ok(KeyPool::from_snapshot(&Snapshot::load(dir).map_err(KeyError::Snapshot)?, plan)),
            KeySource::Export(dir) => {
                let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
                let (drawn, presence) = from_export(dir, &plan.draw(), &mut rng)?;
                Ok(KeyPool::render(plan, &drawn, &presence, &mut rng))
            }
        }
    }

    /// [`KeyPool::build`] from a snapshot already open (`plan.source` is
    /// not read).
    pub fn from_snapshot(snapshot: &Snapshot, plan: &KeyPlan) -> KeyPool {
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
        let drawn = from_snapshot(snapshot, &plan.draw(), &mut rng);
        KeyPool::render(plan, &drawn, &Presence::Snapshot(snapshot), &mut rng)
    }

    fn render(plan: &KeyPlan, drawn: &Drawn, presence: &Presence<'_>, rng: &mut ChaCha8Rng) -> KeyPool {
        let render = Render { requester: &plan.requester, institutions: &drawn.institutions, date: plan.date };
        let mut present: [Docs; 5] = Default::default();
        for c in &drawn.serial {
            present[0].push(&render.my_number("CertificateSerialNumber", &c.key, c.home.as_deref(), rng));
        }
        for c in &drawn.processing {
            present[1].push(&render.my_number("ProcessingNumber", &c.key, c.home.as_deref(), rng));
        }
        for c in &drawn.card {
            present[2].push(&render.card(c, rng));
        }
        for t in drawn.tickets() {
            present[3].push(&render.ticket(t, rng));
        }
        for d in drawn.delegated(&plan.draw()) {
            present[4].push(&render.delegated(&d));
        }
        let absent = KeyKind::ALL.map(|k| absent_docs(k, drawn, presence, &render, plan, rng));
        KeyPool { present, absent, persons: drawn.persons }
    }

    /// (present, absent) documents of `kind`.
    pub fn counts(&self, kind: KeyKind) -> (usize, usize) {
        (self.present[kind.slot()].len(), self.absent[kind.slot()].len())
    }

    /// Document `i` of `kind`, of the absent keys if `absent`.
    pub fn doc(&self, kind: KeyKind, absent: bool, i: usize) -> &[u8] {
        let docs = if absent { &self.absent[kind.slot()] } else { &self.present[kind.slot()] };
        docs.get(i)
    }
}

/// Renders query documents for a requester.
struct Render<'a> {
    requester: &'a Requester,
    institutions: &'a [String],
    date: Option<u32>,
}

impl Render<'_> {
    /// The requester of a query: the fixed code, else `hint`, else one drawn from the data.
    fn institution(&self, hint: Option<&str>, rng: &mut ChaCha8Rng) -> String {
        if let Some(code) = self.requester.code() {
            return code.to_string();
        }
        if let Some(h) = hint {
            return h.to_string();
        }
        if self.institutions.is_empty() {
            return FALLBACK_INSTITUTION.to_string();
        }
        self.institutions[rng.gen_range(0..self.institutions.len())].clone()
    }

    fn doc(&self, institution: String, section: &str, body: Value) -> Value {
        let mut doc = serde_json::Map::new();
        doc.insert("MedicalInstitutionCode".into(), institution.into());
        if let Some(d) = self.date {
            doc.insert("QualificationConfirmationDate".into(), d.to_string().into());
        }
        doc.insert(section.into(), body);
        Value::Object(doc)
    }

    fn my_number(&self, field: &str, key: &str, home: Option<&str>, rng: &mut ChaCha8Rng) -> Value {
        self.doc(self.institution(home, rng), "MyNumberCard", json!({ field: key }))
    }

    fn card(&self, c: &Card, rng: &mut ChaCha8Rng) -> Value {
        let body = json!({
            "InsurerNumber": c.insurer, "InsuredCardSymbol": c.symbol, "InsuredIdentificationNumber": c.number,
            "InsuredBranchNumber": c.branch, "Birthdate": c.birth.to_string(),
        });
        self.doc(self.institution(None, rng), "InsuranceCard", body)
    }

    fn ticket(&self, t: &TicketKey, rng: &mut ChaCha8Rng) -> Value {
        let body = json!({ "PayerNumber": t.payer, "RecipientNumber": t.recipient, "Birthdate": t.birth.to_string() });
        self.doc(self.institution(t.institution.as_deref(), rng), "MedicalTicket", body)
    }

    fn delegated(&self, d: &Delegated) -> Value {
        self.doc(d.institution.clone(), "DelegatedTickets", json!({ "MedicalTreatmentMonth": d.month.to_string() }))
    }
}

/// `s` with every digit replaced by a random digit and every hexadecimal
/// letter by a random hexadecimal character: another key of the same shape.
fn mutate(s: &str, rng: &mut ChaCha8Rng) -> String {
    const HEX: &[u8] = b"0123456789ABCDEF";
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from(b'0' + rng.gen_range(0..10u8)),
            'A'..='F' => char::from(HEX[rng.gen_range(0..16)]),
            other => other,
        })
        .collect()
}

fn pick<'a, T>(items: &'a [T], rng: &mut ChaCha8Rng) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.gen_range(0..items.len())])
}

/// As many absent keys of `kind` as present ones were asked for (fewer if
/// the data leaves no room: every draw is checked against it).
fn absent_docs(kind: KeyKind, drawn: &Drawn, presence: &Presence<'_>, render: &Render<'_>, plan: &KeyPlan, rng: &mut ChaCha8Rng) -> Docs {
    let mut docs = Docs::default();
    let want = plan.pool;
    for _ in 0..want.saturating_mul(20) {
        if docs.len() >= want {
            break;
        }
        let doc = match kind {
            KeyKind::Serial | KeyKind::Processing => {
                let (items, index, field) = match kind {
                    KeyKind::Serial => (&drawn.serial, IndexName::Serial, "CertificateSerialNumber"),
                    _ => (&drawn.processing, IndexName::Processing, "ProcessingNumber"),
                };
                let template = pick(items, rng).map_or("0123456789ABCDEF", |m| m.key.as_str());
                let key = mutate(template, rng);
                (!presence.holds(index, &key)).then(|| render.my_number(field, &key, None, rng))
            }
            KeyKind::Card => pick(&drawn.card, rng).cloned().and_then(|c| {
                let card = Card { number: mutate(&c.number, rng), ..c };
                let key = ids::insurance_key(&card.insurer, &card.symbol, &card.number, &card.branch);
                (!presence.holds(IndexName::Insurance, &key)).then(|| render.card(&card, rng))
            }),
            KeyKind::Ticket => pick(drawn.tickets(), rng).cloned().and_then(|t| {
                let body: String = t.recipient.chars().take(6).collect();
                let t = TicketKey { recipient: ids::with_check_digit(&mutate(&body, rng)), ..t };
                let key = ids::assistance_key(&t.payer, &t.recipient);
                (!presence.holds(IndexName::Assistance, &key)).then(|| render.ticket(&t, rng))
            }),
            KeyKind::Delegated => {
                let institution = match pick(&drawn.delegated, rng) {
                    Some(d) => d.institution.clone(),
                    None => render.institution(None, rng),
                };
                let month = 199_000 + rng.gen_range(0..10) * 100 + rng.gen_range(1..=12);
                let d = Delegated { institution, month };
                (!presence.holds(IndexName::Tickets, &ids::ticket_key(&d.institution, d.month))).then(|| render.delegated(&d))
            }
        };
        if let Some(doc) = doc {
            docs.push(&doc);
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use elig_engine::lookup::{Clock, View};

    const TODAY: u32 = 20261122;

    fn plan(source: KeySource, requester: Requester) -> KeyPlan {
        KeyPlan { source, requester, pool: 200, today: TODAY, date: Some(TODAY), seed: 3 }
    }

    /// Validity of every document of `kind` through the engine.
    fn validities(pool: &KeyPool, view: &View<'_>, kind: KeyKind, absent: bool) -> Vec<Option<String>> {
        let n = if absent { pool.counts(kind).1 } else { pool.counts(kind).0 };
        (0..n)
            .map(|i| {
                let a = view.answer_document(pool.doc(kind, absent, i), Clock::at(20261122100000));
                assert!(!a.is_error() || kind == KeyKind::Serial || kind == KeyKind::Processing, "{a:?}");
                a.validity().map(str::to_string)
            })
            .collect()
    }

    #[test]
    fn keys_are_present_or_absent_as_drawn_from_snapshot_and_export() {
        let dir = tempfile::tempdir().unwrap();
        let snap = elig_server::dev::demo::synthetic_snapshot(dir.path(), 1500, 5, TODAY).unwrap();
        let snapshot = Snapshot::load(&snap).unwrap();
        let view = View::new(&snapshot);
        for source in [KeySource::Snapshot(snap.clone()), KeySource::Export(dir.path().join("export"))] {
            let pool = KeyPool::build(&plan(source.clone(), Requester::Central)).unwrap();
            assert_eq!(pool.persons, 1500, "{source}");
            for kind in [KeyKind::Card, KeyKind::Ticket, KeyKind::Serial] {
                let (present, absent) = pool.counts(kind);
                assert!(present > 0 && absent > 0, "{source}: {kind:?} {present} {absent}");
                let found = validities(&pool, &view, kind, false);
                assert!(found.iter().all(|v| v.as_deref() != Some("4")), "{source}: present {kind:?} not found");
                let missing = validities(&pool, &view, kind, true);
                assert!(missing.iter().all(|v| v.as_deref() == Some("4")), "{source}: absent {kind:?}: {missing:?}");
            }
            let delegated = pool.counts(KeyKind::Delegated);
            assert!(delegated.0 > 0 && delegated.1 > 0, "{source}");
            // Same seed, same documents.
            let again = KeyPool::build(&plan(source.clone(), Requester::Central)).unwrap();
            assert_eq!(again.doc(KeyKind::Card, false, 7), pool.doc(KeyKind::Card, false, 7));
        }
        // An institution certificate asks as itself only.
        let code = "3410712362";
        let pool = KeyPool::build(&plan(KeySource::Snapshot(snap), Requester::Institution(code.into()))).unwrap();
        for kind in KeyKind::ALL {
            for absent in [false, true] {
                for i in 0..pool.counts(kind).0.min(pool.counts(kind).1).min(20) {
                    let doc: Value = serde_json::from_slice(pool.doc(kind, absent, i)).unwrap();
                    assert_eq!(doc["MedicalInstitutionCode"], code, "{kind:?}");
                }
            }
        }
    }
}
