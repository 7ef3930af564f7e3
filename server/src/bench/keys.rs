//! The keys `elig bench` asks for: drawn from a snapshot's records or an
//! export's CSV files, rendered once into query documents, then sampled by
//! the mix while the bench runs (a sample is an index into a buffer).
//!
//! Present keys are a uniform sample (reservoir sampling, seeded) of the
//! records, whatever their state: lost qualifications, revoked and expired
//! certificates are asked as often as the data holds them, so the answers
//! carry every validity code the data gives. Absent keys have the shape of
//! real ones (a real insurer and symbol with another number, a real payer
//! with another recipient number, ...) and are checked against the data
//! (the snapshot's indexes, or hashes of every key of the export).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use elig_engine::ids;
use elig_engine::manifest::IndexName;
use elig_engine::rows::{Fields, Table, PERSONS};
use elig_engine::snapshot::Snapshot;
use elig_loader::export::{locate, CsvFields, Encoding, ExportError, ExportFile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::{BenchError, Mode};

/// The requester when the data names none (the dev PKI's institution).
pub const FALLBACK_INSTITUTION: &str = "3410712362";

/// The kinds of keys a bench asks for.
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

    /// The name in `--mix` and in reports.
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

    fn index(self) -> usize {
        self as usize
    }
}

/// Relative weights of the key kinds (`--mix serial=40,card=40,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
}

impl Mix {
    /// The mix of single lookups when none is given.
    pub const SINGLE: Mix = Mix { weights: [40, 10, 40, 10, 0] };
    /// The mix of bulk inquiries when none is given.
    pub const BULK: Mix = Mix { weights: [0, 0, 90, 10, 0] };

    pub fn default_for(mode: Mode) -> Mix {
        match mode {
            Mode::Single => Mix::SINGLE,
            Mode::Bulk => Mix::BULK,
        }
    }

    /// Parse `kind=weight,...`: kinds are named at most once, weights are
    /// whole numbers (relative, they need not add up to 100), not all 0.
    pub fn parse(text: &str) -> Result<Mix, BenchError> {
        let bad = |reason: String| BenchError::option("--mix", text, reason);
        let mut weights = [0u32; 5];
        let mut named = [false; 5];
        for entry in text.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(bad("an entry is empty; write kind=weight,kind=weight".into()));
            }
            let (name, weight) = entry.split_once('=').ok_or_else(|| bad(format!("'{entry}' needs the form kind=weight")))?;
            let (name, weight) = (name.trim(), weight.trim());
            let kind = KeyKind::parse(name).ok_or_else(|| {
                let known: Vec<&str> = KeyKind::ALL.iter().map(|k| k.name()).collect();
                bad(format!("unknown key kind '{name}' (known: {})", known.join(", ")))
            })?;
            if std::mem::replace(&mut named[kind.index()], true) {
                return Err(bad(format!("'{name}' is given twice")));
            }
            weights[kind.index()] =
                weight.parse().map_err(|_| bad(format!("the weight '{weight}' of '{name}' is not a whole number")))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(bad("every weight is 0".into()));
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: KeyKind) -> u32 {
        self.weights[kind.index()]
    }

    /// The kinds with a weight above 0.
    pub fn kinds(&self) -> impl Iterator<Item = KeyKind> + '_ {
        KeyKind::ALL.into_iter().filter(|k| self.weight(*k) > 0)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.kinds().map(|k| format!("{}={}", k.name(), self.weight(k))).collect();
        f.write_str(&parts.join(","))
    }
}

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
    pub fn build(plan: &KeyPlan) -> Result<KeyPool, BenchError> {
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
        let (drawn, presence) = match &plan.source {
            KeySource::Snapshot(dir) => {
                let snapshot = Snapshot::load(dir).map_err(BenchError::Snapshot)?;
                let drawn = from_snapshot(&snapshot, plan, &mut rng);
                (drawn, Presence::Snapshot(Box::new(snapshot)))
            }
            KeySource::Export(dir) => from_export(dir, plan, &mut rng)?,
        };
        let render = Render { requester: &plan.requester, institutions: &drawn.institutions, date: plan.date };
        let mut present: [Docs; 5] = Default::default();
        for c in &drawn.serial {
            present[0].push(&render.my_number("CertificateSerialNumber", &c.key, c.home.as_deref(), &mut rng));
        }
        for c in &drawn.processing {
            present[1].push(&render.my_number("ProcessingNumber", &c.key, c.home.as_deref(), &mut rng));
        }
        for c in &drawn.card {
            present[2].push(&render.card(c, &mut rng));
        }
        for t in drawn.tickets() {
            present[3].push(&render.ticket(t, &mut rng));
        }
        for d in drawn.delegated(plan) {
            present[4].push(&render.delegated(&d));
        }
        let absent = KeyKind::ALL.map(|k| absent_docs(k, &drawn, &presence, &render, plan, &mut rng));
        Ok(KeyPool { present, absent, persons: drawn.persons })
    }

    /// (present, absent) documents of `kind`.
    pub fn counts(&self, kind: KeyKind) -> (usize, usize) {
        (self.present[kind.index()].len(), self.absent[kind.index()].len())
    }

    /// Document `i` of `kind`, of the absent keys if `absent`.
    pub fn doc(&self, kind: KeyKind, absent: bool, i: usize) -> &[u8] {
        let docs = if absent { &self.absent[kind.index()] } else { &self.present[kind.index()] };
        docs.get(i)
    }
}

/// Picks a key kind by weight, then an absent key with the absent share,
/// then a document uniformly.
#[derive(Debug)]
pub struct Sampler {
    pool: KeyPool,
    /// Kinds and cumulative weights.
    kinds: Vec<(KeyKind, u32)>,
    total: u32,
    absent: f64,
}

impl Sampler {
    /// Check that every kind of the mix can be asked in `mode` and has keys.
    pub fn new(pool: KeyPool, mix: &Mix, absent: f64, mode: Mode) -> Result<Sampler, BenchError> {
        let mut kinds = Vec::new();
        let mut total = 0;
        for kind in mix.kinds() {
            if mode == Mode::Bulk && !kind.in_bulk() {
                return Err(BenchError::option(
                    "--mix",
                    &mix.to_string(),
                    format!("a bulk inquiry takes card and ticket keys only, not '{}'", kind.name()),
                ));
            }
            let (present, missing) = pool.counts(kind);
            if present == 0 && (missing == 0 || absent == 0.0) {
                return Err(BenchError::option(
                    "--mix",
                    &mix.to_string(),
                    format!("the data holds no '{}' keys for this requester; give it weight 0", kind.name()),
                ));
            }
            total += mix.weight(kind);
            kinds.push((kind, total));
        }
        Ok(Sampler { pool, kinds, total, absent })
    }

    pub fn pool(&self) -> &KeyPool {
        &self.pool
    }

    /// The next key: its kind and query document.
    pub fn pick(&self, rng: &mut impl Rng) -> (KeyKind, &[u8]) {
        let w = rng.gen_range(0..self.total.max(1));
        let kind = self.kinds.iter().find(|(_, upto)| w < *upto).map_or(KeyKind::Card, |(k, _)| *k);
        let (present, absent) = self.pool.counts(kind);
        let want_absent = absent > 0 && (present == 0 || rng.gen_bool(self.absent.clamp(0.0, 1.0)));
        let n = if want_absent { absent } else { present };
        (kind, self.pool.doc(kind, want_absent, rng.gen_range(0..n.max(1))))
    }
}

// ---- drawing ----------------------------------------------------------------

/// A uniform sample of at most `cap` items of a stream (Algorithm R).
#[derive(Debug)]
struct Reservoir<T> {
    cap: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    fn new(cap: usize) -> Reservoir<T> {
        Reservoir { cap, seen: 0, items: Vec::new() }
    }

    /// Offer the next item; `make` runs only if it is kept.
    fn offer(&mut self, rng: &mut ChaCha8Rng, make: impl FnOnce() -> T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(make());
        } else {
            let j = rng.gen_range(0..self.seen);
            if j < self.cap as u64 {
                self.items[j as usize] = make();
            }
        }
    }
}

#[derive(Debug, Clone)]
struct MyNumber {
    key: String,
    /// An institution the person registered a reference number or consent at.
    home: Option<String>,
}

#[derive(Debug, Clone)]
struct Card {
    insurer: String,
    symbol: String,
    number: String,
    branch: String,
    birth: u32,
}

#[derive(Debug, Clone)]
struct TicketKey {
    payer: String,
    recipient: String,
    birth: u32,
    /// The institution a ticket delegates (this month's if any).
    institution: Option<String>,
}

#[derive(Debug, Clone)]
struct Delegated {
    institution: String,
    month: u32,
}

/// The records drawn from a source.
#[derive(Debug)]
struct Drawn {
    serial: Vec<MyNumber>,
    processing: Vec<MyNumber>,
    card: Vec<Card>,
    /// Assistance records with a ticket delegating the requester's own code.
    ticket_own: Vec<TicketKey>,
    ticket: Vec<TicketKey>,
    /// Tickets (of the requester's own code, if fixed).
    delegated: Vec<Delegated>,
    institutions: Vec<String>,
    persons: u64,
}

impl Drawn {
    fn tickets(&self) -> &[TicketKey] {
        if self.ticket_own.is_empty() {
            &self.ticket
        } else {
            &self.ticket_own
        }
    }

    /// Fetches to make; with a fixed requester and none of its tickets in
    /// the data, the current month (answered with no units).
    fn delegated(&self, plan: &KeyPlan) -> Vec<Delegated> {
        match plan.requester.code() {
            Some(code) if self.delegated.is_empty() => vec![Delegated { institution: code.to_string(), month: plan.today / 100 }],
            _ => self.delegated.clone(),
        }
    }
}

/// Reservoirs filled while a source is read.
struct Draw {
    serial: Reservoir<MyNumber>,
    processing: Reservoir<MyNumber>,
    card: Reservoir<Card>,
    ticket_own: Reservoir<TicketKey>,
    ticket: Reservoir<TicketKey>,
    delegated: Reservoir<Delegated>,
    institutions: Reservoir<String>,
}

impl Draw {
    fn new(pool: usize) -> Draw {
        Draw {
            serial: Reservoir::new(pool),
            processing: Reservoir::new(pool),
            card: Reservoir::new(pool),
            ticket_own: Reservoir::new(pool),
            ticket: Reservoir::new(pool),
            delegated: Reservoir::new(pool),
            institutions: Reservoir::new(1024),
        }
    }

    fn finish(self, persons: u64) -> Drawn {
        Drawn {
            serial: self.serial.items,
            processing: self.processing.items,
            card: self.card.items,
            ticket_own: self.ticket_own.items,
            ticket: self.ticket.items,
            delegated: self.delegated.items,
            institutions: self.institutions.items,
            persons,
        }
    }
}

fn from_snapshot(snapshot: &Snapshot, plan: &KeyPlan, rng: &mut ChaCha8Rng) -> Drawn {
    let month = plan.today / 100;
    let own = plan.requester.code();
    let mut d = Draw::new(plan.pool);
    for (_, p) in snapshot.iter_persons() {
        let birth = p.birth_date.to_native();
        let home = || {
            p.reference_numbers.first().map(|r| r.institution_code.to_string()).or_else(|| p.consents.first().map(|c| c.institution_code.to_string()))
        };
        for c in p.certificates.iter() {
            d.serial.offer(rng, || MyNumber { key: c.serial_number.to_string(), home: home() });
            d.processing.offer(rng, || MyNumber { key: c.processing_number.to_string(), home: home() });
        }
        for i in p.insurance.iter() {
            d.card.offer(rng, || Card {
                insurer: i.insurer_number.to_string(),
                symbol: i.card_symbol.to_string(),
                number: i.card_number.to_string(),
                branch: i.branch_number.to_string(),
                birth,
            });
        }
        for a in p.assistance.iter() {
            let key = || {
                let current = a.tickets.iter().find(|t| t.treatment_month.to_native() == month).or(a.tickets.first());
                TicketKey {
                    payer: a.payer_number.to_string(),
                    recipient: a.recipient_number.to_string(),
                    birth,
                    institution: current.map(|t| t.institution_code.to_string()),
                }
            };
            if own.is_some_and(|c| a.tickets.iter().any(|t| t.institution_code == c)) {
                d.ticket_own.offer(rng, key);
            }
            d.ticket.offer(rng, key);
            for t in a.tickets.iter() {
                if own.is_none_or(|c| t.institution_code == c) {
                    d.delegated.offer(rng, || Delegated { institution: t.institution_code.to_string(), month: t.treatment_month.to_native() });
                }
                d.institutions.offer(rng, || t.institution_code.to_string());
            }
        }
        for r in p.reference_numbers.iter() {
            d.institutions.offer(rng, || r.institution_code.to_string());
        }
    }
    d.finish(u64::from(snapshot.persons()))
}

/// Hashes of every key of an export, by index.
#[derive(Debug, Default)]
struct KeyHashes {
    serial: HashSet<u64>,
    processing: HashSet<u64>,
    insurance: HashSet<u64>,
    assistance: HashSet<u64>,
    tickets: HashSet<u64>,
}

fn hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Whether the data holds a key (as the index stores it).
enum Presence {
    Snapshot(Box<Snapshot>),
    Export(KeyHashes),
}

impl Presence {
    fn holds(&self, index: IndexName, key: &str) -> bool {
        match self {
            // Any slot whose fingerprint matches counts: a drawn key is then surely absent.
            Presence::Snapshot(s) => s.find(index, key, |_| true).is_some(),
            Presence::Export(h) => {
                let set = match index {
                    IndexName::Serial => &h.serial,
                    IndexName::Processing => &h.processing,
                    IndexName::Insurance => &h.insurance,
                    IndexName::Assistance => &h.assistance,
                    IndexName::Tickets => &h.tickets,
                    _ => return false,
                };
                set.contains(&hash(key))
            }
        }
    }
}

/// Call `each` with every row of `<table>.csv` (or `.csv.gz`) in `dir`; a
/// missing file has no rows.
fn each_row(dir: &Path, table: &str, mut each: impl FnMut(&CsvFields<'_>)) -> Result<(), BenchError> {
    let Some(table) = Table::by_name(table) else { return Ok(()) };
    let Some(path) = locate(dir, table) else { return Ok(()) };
    let mut file = ExportFile::open(&path, table, Encoding::Utf8).map_err(BenchError::Export)?;
    let mut record = Default::default();
    while file.next_record(&mut record).map_err(BenchError::Export)?.is_some() {
        each(&file.fields(&record));
    }
    Ok(())
}

fn from_export(dir: &Path, plan: &KeyPlan, rng: &mut ChaCha8Rng) -> Result<(Drawn, Presence), BenchError> {
    if locate(dir, PERSONS).is_none() {
        return Err(BenchError::Export(ExportError::NoPersons { dir: dir.to_path_buf() }));
    }
    let month = plan.today / 100;
    let own = plan.requester.code();
    let mut d = Draw::new(plan.pool);
    let mut h = KeyHashes::default();
    // Tickets: the institution each assistance record delegates (this month's first).
    let mut delegates: HashMap<String, (String, bool)> = HashMap::new();
    let mut delegates_own: HashSet<String> = HashSet::new();
    each_row(dir, "tickets", |f| {
        let (Some(aid), Some(inst), Some(m)) = (f.get("assistance_id"), f.get("institution_code"), f.get("treatment_month")) else {
            return;
        };
        let Ok(m) = m.parse::<u32>() else { return };
        h.tickets.insert(hash(&ids::ticket_key(inst, m)));
        if own.is_none_or(|c| c == inst) {
            d.delegated.offer(rng, || Delegated { institution: inst.to_string(), month: m });
        }
        if own == Some(inst) {
            delegates_own.insert(aid.to_string());
        }
        d.institutions.offer(rng, || inst.to_string());
        let current = m == month;
        match delegates.get_mut(aid) {
            Some(e) if current && !e.1 => *e = (inst.to_string(), true),
            Some(_) => {}
            None => {
                delegates.insert(aid.to_string(), (inst.to_string(), current));
            }
        }
    })?;
    // Keys that need a birth date remember their person.
    let mut ticket_own: Reservoir<(TicketKey, String)> = Reservoir::new(plan.pool);
    let mut ticket: Reservoir<(TicketKey, String)> = Reservoir::new(plan.pool);
    each_row(dir, "assistance", |f| {
        let (Some(aid), Some(pid)) = (f.get("assistance_id"), f.get("person_id")) else { return };
        let (Ok(payer), Ok(recipient)) =
            (ids::payer_number(f.get("payer_number").unwrap_or("")), ids::recipient_number(f.get("recipient_number").unwrap_or("")))
        else {
            return;
        };
        h.assistance.insert(hash(&ids::assistance_key(&payer, &recipient)));
        let key = || {
            let institution = delegates.get(aid).map(|(i, _)| i.clone());
            (TicketKey { payer: payer.clone(), recipient: recipient.clone(), birth: 0, institution }, pid.to_string())
        };
        if delegates_own.contains(aid) {
            ticket_own.offer(rng, key);
        }
        ticket.offer(rng, key);
    })?;
    let mut card: Reservoir<(Card, String)> = Reservoir::new(plan.pool);
    each_row(dir, "insurance", |f| {
        let Some(pid) = f.get("person_id") else { return };
        let (Ok(insurer), Ok(symbol), Ok(number), Ok(branch)) = (
            ids::insurer_number(f.get("insurer_number").unwrap_or("")),
            ids::card_symbol(f.get("card_symbol").unwrap_or("")),
            ids::card_number(f.get("card_number").unwrap_or("")),
            ids::branch_number(f.get("branch_number").unwrap_or("")),
        ) else {
            return;
        };
        h.insurance.insert(hash(&ids::insurance_key(&insurer, &symbol, &number, &branch)));
        card.offer(rng, || (Card { insurer, symbol, number, branch, birth: 0 }, pid.to_string()));
    })?;
    let mut serial: Reservoir<(MyNumber, String)> = Reservoir::new(plan.pool);
    let mut processing: Reservoir<(MyNumber, String)> = Reservoir::new(plan.pool);
    each_row(dir, "certificates", |f| {
        let Some(pid) = f.get("person_id") else { return };
        let (Ok(s), Ok(p)) = (
            ids::certificate_key("serial_number", f.get("serial_number").unwrap_or("")),
            ids::certificate_key("processing_number", f.get("processing_number").unwrap_or("")),
        ) else {
            return;
        };
        h.serial.insert(hash(&s));
        h.processing.insert(hash(&p));
        serial.offer(rng, || (MyNumber { key: s.clone(), home: None }, pid.to_string()));
        processing.offer(rng, || (MyNumber { key: p.clone(), home: None }, pid.to_string()));
    })?;
    // Home institutions of the drawn certificate holders, birth dates of the drawn card and ticket holders.
    let mut homes: HashMap<String, Option<String>> =
        serial.items.iter().chain(processing.items.iter()).map(|(_, pid)| (pid.clone(), None)).collect();
    for table in ["reference_numbers", "consents"] {
        each_row(dir, table, |f| {
            let (Some(inst), Some(pid)) = (f.get("institution_code"), f.get("person_id")) else { return };
            if table == "reference_numbers" {
                d.institutions.offer(rng, || inst.to_string());
            }
            if let Some(home @ None) = homes.get_mut(pid) {
                *home = Some(inst.to_string());
            }
        })?;
    }
    let mut births: HashMap<String, u32> =
        card.items.iter().map(|(_, p)| p).chain(ticket.items.iter().chain(ticket_own.items.iter()).map(|(_, p)| p)).map(|p| (p.clone(), 0)).collect();
    let mut persons = 0u64;
    each_row(dir, "persons", |f| {
        persons += 1;
        if let (Some(pid), Some(b)) = (f.get("person_id"), f.get("birth_date")) {
            if let (Some(slot), Ok(b)) = (births.get_mut(pid), ids::date("birth_date", b)) {
                *slot = b;
            }
        }
    })?;
    let born = |pid: &String| births.get(pid).copied().filter(|b| *b != 0);
    let with_home = |items: Vec<(MyNumber, String)>| -> Vec<MyNumber> {
        items.into_iter().map(|(m, pid)| MyNumber { home: homes.get(&pid).cloned().flatten(), ..m }).collect()
    };
    let tickets = |items: Vec<(TicketKey, String)>| -> Vec<TicketKey> {
        items.into_iter().filter_map(|(t, pid)| Some(TicketKey { birth: born(&pid)?, ..t })).collect()
    };
    d.serial.items = with_home(serial.items);
    d.processing.items = with_home(processing.items);
    d.card.items = card.items.into_iter().filter_map(|(c, pid)| Some(Card { birth: born(&pid)?, ..c })).collect();
    d.ticket.items = tickets(ticket.items);
    d.ticket_own.items = tickets(ticket_own.items);
    Ok((d.finish(persons), Presence::Export(h)))
}

// ---- rendering --------------------------------------------------------------

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
fn absent_docs(kind: KeyKind, drawn: &Drawn, presence: &Presence, render: &Render<'_>, plan: &KeyPlan, rng: &mut ChaCha8Rng) -> Docs {
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
                let month = 1990_00 + rng.gen_range(0..10) * 100 + rng.gen_range(1..=12);
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

    #[test]
    fn the_mix_parser_names_the_bad_value() {
        let m = Mix::parse("serial=40, card=40,ticket=10,processing=10").unwrap();
        assert_eq!((m.weight(KeyKind::Serial), m.weight(KeyKind::Delegated)), (40, 0));
        assert_eq!(m.to_string(), "serial=40,processing=10,card=40,ticket=10");
        let err = |text: &str| Mix::parse(text).unwrap_err().to_string();
        assert_eq!(err("serial=40,cards=60"), "--mix 'serial=40,cards=60': unknown key kind 'cards' (known: serial, processing, card, ticket, delegated)");
        assert_eq!(err("card=x"), "--mix 'card=x': the weight 'x' of 'card' is not a whole number");
        assert_eq!(err("card=-1"), "--mix 'card=-1': the weight '-1' of 'card' is not a whole number");
        assert_eq!(err("card"), "--mix 'card': 'card' needs the form kind=weight");
        assert_eq!(err("card=1,card=2"), "--mix 'card=1,card=2': 'card' is given twice");
        assert_eq!(err("card=0"), "--mix 'card=0': every weight is 0");
        assert!(err("card=1,").contains("an entry is empty"));
    }

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
        let snap = crate::demo::synthetic_snapshot(dir.path(), 1500, 5, TODAY).unwrap();
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

    #[test]
    fn the_sampler_follows_the_mix_and_refuses_what_it_cannot_ask() {
        let dir = tempfile::tempdir().unwrap();
        let snap = crate::demo::synthetic_snapshot(dir.path(), 800, 9, TODAY).unwrap();
        let build = || KeyPool::build(&plan(KeySource::Snapshot(snap.clone()), Requester::Central)).unwrap();
        let sampler = Sampler::new(build(), &Mix::parse("card=3,serial=1").unwrap(), 0.0, Mode::Single).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut cards = 0;
        for _ in 0..4000 {
            let (kind, doc) = sampler.pick(&mut rng);
            assert!(matches!(kind, KeyKind::Card | KeyKind::Serial));
            let v: Value = serde_json::from_slice(doc).unwrap();
            assert_eq!(v.get("InsuranceCard").is_some(), kind == KeyKind::Card);
            cards += usize::from(kind == KeyKind::Card);
        }
        assert!((2700..3300).contains(&cards), "{cards} of 4000 should be about 3000");
        let e = Sampler::new(build(), &Mix::parse("card=9,serial=1").unwrap(), 0.1, Mode::Bulk).unwrap_err();
        assert_eq!(e.to_string(), "--mix 'serial=1,card=9': a bulk inquiry takes card and ticket keys only, not 'serial'");
    }
}
