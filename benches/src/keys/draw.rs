//! Drawing keys from a source: a uniform, seeded sample (reservoir
//! sampling) of a snapshot's records or an export's rows, and what the
//! data holds, to make absent keys that are surely absent.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use elig_engine::ids;
use elig_engine::manifest::IndexName;
use elig_engine::rows::{Fields, Table};
use elig_engine::snapshot::Snapshot;
use elig_loader::export::{locate, CsvFields, Encoding, ExportError, ExportFile};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Why keys could not be drawn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("reading keys from the snapshot")]
    Snapshot(#[source] elig_engine::snapshot::SnapshotError),
    #[error("reading keys from the export")]
    Export(#[source] elig_loader::export::ExportError),
}

/// What drawing keys needs of the bench's plan (`keys::KeyPlan`).
#[derive(Debug, Clone, Copy)]
pub(super) struct DrawPlan<'a> {
    /// The institution every query asks as, when the certificate fixes one.
    pub(super) own: Option<&'a str>,
    pub(super) today: u32,
    /// Keys drawn per kind.
    pub(super) pool: usize,
}

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
pub(super) struct MyNumber {
    pub(super) key: String,
    /// An institution the person registered a reference number or consent at.
    pub(super) home: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Card {
    pub(super) insurer: String,
    pub(super) symbol: String,
    pub(super) number: String,
    pub(super) branch: String,
    pub(super) birth: u32,
}

#[derive(Debug, Clone)]
pub(super) struct TicketKey {
    pub(super) payer: String,
    pub(super) recipient: String,
    pub(super) birth: u32,
    /// The institution a ticket delegates (this month's if any).
    pub(super) institution: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Delegated {
    pub(super) institution: String,
    pub(super) month: u32,
}

/// The records drawn from a source.
#[derive(Debug)]
pub(super) struct Drawn {
    pub(super) serial: Vec<MyNumber>,
    pub(super) processing: Vec<MyNumber>,
    pub(super) card: Vec<Card>,
    /// Assistance records with a ticket delegating the requester's own code.
    pub(super) ticket_own: Vec<TicketKey>,
    pub(super) ticket: Vec<TicketKey>,
    /// Tickets (of the requester's own code, if fixed).
    pub(super) delegated: Vec<Delegated>,
    pub(super) institutions: Vec<String>,
    pub(super) persons: u64,
}

impl Drawn {
    pub(super) fn tickets(&self) -> &[TicketKey] {
        if self.ticket_own.is_empty() {
            &self.ticket
        } else {
            &self.ticket_own
        }
    }

    /// Fetches to make; with a fixed requester and none of its tickets in
    /// the data, the current month (answered with no units).
    pub(super) fn delegated(&self, plan: &DrawPlan<'_>) -> Vec<Delegated> {
        match plan.own {
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

pub(super) fn from_snapshot(snapshot: &Snapshot, plan: &DrawPlan<'_>, rng: &mut ChaCha8Rng) -> Drawn {
    let month = plan.today / 100;
    let own = plan.own;
    let mut d = Draw::new(plan.pool);
    for (_, p) in snapshot.iter_persons() {
        let birth = p.birth_date.to_native();
        let home = || {
            p.reference_numbers
                .first()
                .map(|r| r.institution_code.to_string())
                .or_else(|| p.consents.first().map(|c| c.institution_code.to_string()))
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
                    d.delegated
                        .offer(rng, || Delegated { institution: t.institution_code.to_string(), month: t.treatment_month.to_native() });
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
pub(super) struct KeyHashes {
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

/// Whether the data holds a key (as the index stores it). One per draw,
/// so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Presence<'a> {
    Snapshot(&'a Snapshot),
    Export(KeyHashes),
}

impl Presence<'_> {
    pub(super) fn holds(&self, index: IndexName, key: &str) -> bool {
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
fn each_row(dir: &Path, table: Table, mut each: impl FnMut(&CsvFields<'_>)) -> Result<(), KeyError> {
    let Some(path) = locate(dir, table) else { return Ok(()) };
    let mut file = ExportFile::open(&path, table, Encoding::Utf8).map_err(KeyError::Export)?;
    let mut record = Default::default();
    while file.next_record(&mut record).map_err(KeyError::Export)?.is_some() {
        each(&file.fields(&record));
    }
    Ok(())
}

pub(super) fn from_export(dir: &Path, plan: &DrawPlan<'_>, rng: &mut ChaCha8Rng) -> Result<(Drawn, Presence<'static>), KeyError> {
    if locate(dir, Table::Persons).is_none() {
        return Err(KeyError::Export(ExportError::NoPersons { dir: dir.to_path_buf() }));
    }
    let month = plan.today / 100;
    let own = plan.own;
    let mut d = Draw::new(plan.pool);
    let mut h = KeyHashes::default();
    // Tickets: the institution each assistance record delegates (this month's first).
    let mut delegates: HashMap<String, (String, bool)> = HashMap::new();
    let mut delegates_own: HashSet<String> = HashSet::new();
    each_row(dir, Table::Tickets, |f| {
        let (Some(aid), Some(inst), Some(m)) = (f.get("assistance_id"), f.get("institution_code"), f.get("treatment_month")) else {
            return;
        };
        // Normalised as compile does, so the hashes match the snapshot's keys.
        let (Ok(inst), Ok(m)) = (ids::institution_code(inst), ids::month("treatment_month", m)) else { return };
        let inst = inst.as_str();
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
    each_row(dir, Table::Assistance, |f| {
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
    each_row(dir, Table::Insurance, |f| {
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
    each_row(dir, Table::Certificates, |f| {
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
    for table in [Table::ReferenceNumbers, Table::Consents] {
        each_row(dir, table, |f| {
            let (Some(inst), Some(pid)) = (f.get("institution_code"), f.get("person_id")) else { return };
            if table == Table::ReferenceNumbers {
                d.institutions.offer(rng, || inst.to_string());
            }
            if let Some(home @ None) = homes.get_mut(pid) {
                *home = Some(inst.to_string());
            }
        })?;
    }
    let mut births: HashMap<String, u32> = card
        .items
        .iter()
        .map(|(_, p)| p)
        .chain(ticket.items.iter().chain(ticket_own.items.iter()).map(|(_, p)| p))
        .map(|p| (p.clone(), 0))
        .collect();
    let mut persons = 0u64;
    each_row(dir, Table::Persons, |f| {
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
