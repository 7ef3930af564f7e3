//! Deltas applied on top of a snapshot.
//!
//! A person changed by a batch gets a new version of its whole record,
//! archived with rkyv so lookups read it exactly as they read the snapshot.
//! Versions are tagged with their batch's sequence; a batch becomes visible
//! when `visible` moves to its sequence, after all its versions are in
//! place. A request reads `visible` once and sees every version up to it and
//! none after, so it sees all of a batch or none of it. Versions are kept
//! for the life of the generation (a day of changes); the next snapshot
//! folds them in.
//!
//! The read path is built to cost few cache misses: a version lives in an
//! append-only arena (`nodes`) and is borrowed from it, with no reference
//! count or lock; a snapshot person's newest version is found by its record
//! index in a flat table; and a one-bit filter spares most lookups the probe
//! of the map of keys that moved.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;
use elig_wire::report::OverlayInfo;
use rkyv::util::AlignedVec;
use smallvec::SmallVec;

use crate::delta::{Batch, Change, Delete};
use crate::keys::{archived_holds, record_holds, record_keys};
use crate::manifest::IndexName;
use crate::model::*;
use crate::rows::Row;
use crate::snapshot::Snapshot;

fn archived(bytes: &AlignedVec) -> &ArchivedPersonRecord {
    // SAFETY: delta versions are serialised by this process with
    // `rkyv::to_bytes` and never change afterwards (`mapped`, invariant 2).
    unsafe { crate::mapped::archived_unchecked::<ArchivedPersonRecord>(bytes) }
}

/// A node of `Overlay::nodes`, plus one; 0 for none.
type Link = usize;

/// One version of a person, written by the batch `seq`.
#[derive(Debug)]
struct Node {
    seq: u64,
    person_id: Arc<str>,
    /// `None`: the person was deleted.
    record: Option<AlignedVec>,
    /// The same person's previous version.
    prev: Link,
}

/// Whose versions a key of the overlay leads to: a snapshot person by its
/// record number, or a person only the deltas hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Record(u32),
    Id(Arc<str>),
}

type Map<K, V> = DashMap<K, V, ahash::RandomState>;

/// Record indexes per chunk of `Heads`.
const CHUNK: usize = 1 << 16;

/// The newest version of each snapshot person, by record index. Chunks are
/// allocated when a delta first touches one of their persons: a few changes
/// cost little, but a day of changes spread over the snapshot touches every
/// chunk, 8 bytes per snapshot person (78 MiB at 10 million persons, twice
/// that while a swap holds two overlays).
#[derive(Debug)]
struct Heads {
    chunks: Box<[OnceLock<Box<[AtomicUsize]>>]>,
}

impl Heads {
    fn new(persons: u32) -> Heads {
        Heads { chunks: (0..(persons as usize).div_ceil(CHUNK)).map(|_| OnceLock::new()).collect() }
    }

    fn get(&self, idx: u32) -> Link {
        let idx = idx as usize;
        match self.chunks.get(idx / CHUNK).and_then(OnceLock::get) {
            Some(chunk) => chunk[idx % CHUNK].load(Ordering::Acquire),
            None => 0,
        }
    }

    /// The slot of `idx`; `None` past the snapshot's persons.
    fn slot(&self, idx: u32) -> Option<&AtomicUsize> {
        let idx = idx as usize;
        let chunk = self.chunks.get(idx / CHUNK)?.get_or_init(|| (0..CHUNK).map(|_| AtomicUsize::new(0)).collect());
        chunk.get(idx % CHUNK)
    }
}

/// One bit per hash of (index, key) of `Overlay::keys`: a lookup whose bit
/// is clear skips the map. 2^23 bits (1 MiB) keep false hits near 5% for
/// 400,000 moved keys.
#[derive(Debug)]
struct KeyFilter {
    words: Box<[AtomicU64]>,
}

impl KeyFilter {
    const BITS: u32 = 23;

    fn new() -> KeyFilter {
        KeyFilter { words: (0..(1usize << Self::BITS) / 64).map(|_| AtomicU64::new(0)).collect() }
    }

    fn bit(id: u64) -> (usize, u64) {
        let b = (id >> (64 - Self::BITS)) as usize;
        (b / 64, 1 << (b % 64))
    }

    fn insert(&self, id: u64) {
        let (word, mask) = Self::bit(id);
        self.words[word].fetch_or(mask, Ordering::Relaxed);
    }

    /// False when no key with this hash was ever inserted. Bits are set
    /// before the batch's `visible` store (release), so a request that sees
    /// the batch sees its bits.
    fn may_hold(&self, id: u64) -> bool {
        let (word, mask) = Self::bit(id);
        self.words[word].load(Ordering::Relaxed) & mask != 0
    }
}

/// A refused change, by its 1-based line in the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The change needs a row that does not exist (as of the batch so
    /// far): `what` names its key column, `key` is the value sent.
    #[error("line {line}: {what} '{key}' does not exist")]
    Missing { line: usize, what: &'static str, key: String },
}

/// A row a change needs that does not exist; the line is added by
/// [`Overlay::prepare`].
struct Missing {
    what: &'static str,
    key: String,
}

impl Missing {
    fn new(what: &'static str, key: &str) -> Missing {
        Missing { what, key: key.to_string() }
    }
}

#[derive(Debug)]
pub struct Overlay {
    visible: AtomicU64,
    /// Every version batches wrote, in order. Append-only: a node never
    /// moves or changes once pushed, so lookups borrow its record for as
    /// long as they hold the overlay.
    nodes: boxcar::Vec<Node>,
    /// Changed persons the snapshot holds, by record index: a lookup that
    /// found a record in the snapshot asks for its index, with no hash.
    by_record: Heads,
    /// Persons only the deltas hold.
    by_id: Map<Arc<str>, Link>,
    /// Hash of (index, key) → persons whose versions hold the key while
    /// their snapshot record does not. The hash lives only in memory (ahash
    /// is never persisted); a collision only adds a candidate that the
    /// full-key check then drops.
    keys: Map<u64, SmallVec<[Owner; 1]>>,
    key_filter: KeyFilter,
    key_hasher: ahash::RandomState,
    /// Revocation list changes: serial → (seq, revoked_at or 0 for lifted).
    revoked: Map<Arc<str>, Vec<(u64, u64)>>,
    /// Entries in `revoked`: while 0, certificate lookups skip the map.
    revocations: AtomicU64,
    /// Batches are published one at a time (each version links to the
    /// person's previous one).
    publishing: Mutex<()>,
    persons: AtomicU64,
    changed_rows: AtomicU64,
    bytes: AtomicU64,
}

impl Overlay {
    /// An empty overlay over `snapshot`, which includes deltas up to its
    /// manifest's `delta_seq`.
    pub fn new(snapshot: &Snapshot) -> Overlay {
        Overlay {
            visible: AtomicU64::new(snapshot.manifest().delta_seq),
            nodes: boxcar::Vec::new(),
            by_record: Heads::new(snapshot.persons()),
            by_id: Map::default(),
            keys: Map::default(),
            key_filter: KeyFilter::new(),
            key_hasher: ahash::RandomState::new(),
            revoked: Map::default(),
            revocations: AtomicU64::new(0),
            publishing: Mutex::new(()),
            persons: AtomicU64::new(0),
            changed_rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The last sequence whose changes are visible.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Overlay size, for status and metrics.
    pub fn stats(&self) -> OverlayInfo {
        OverlayInfo {
            changed_rows: self.changed_rows.load(Ordering::Relaxed),
            persons: self.persons.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn key_id(&self, name: IndexName, key: &str) -> u64 {
        self.key_hasher.hash_one((name as u8, key))
    }

    /// The owners of a moved key, if any (the filter first).
    fn key_owners(&self, name: IndexName, key: &str) -> Option<dashmap::mapref::one::Ref<'_, u64, SmallVec<[Owner; 1]>>> {
        self.keys.get(&self.moved_key(name, key)?)
    }

    /// No batch has changed anything: lookups need not consult the overlay.
    pub fn is_empty(&self) -> bool {
        self.changed_rows.load(Ordering::Relaxed) == 0
    }

    /// The version visible at `seq` on the chain from `link`: `None` if
    /// every version is newer, `Some(None)` if deleted by then.
    fn at(&self, mut link: Link, seq: u64) -> Option<Option<&ArchivedPersonRecord>> {
        while link != 0 {
            let node = self.nodes.get(link - 1)?;
            if node.seq <= seq {
                return Some(node.record.as_ref().map(archived));
            }
            link = node.prev;
        }
        None
    }

    /// The version of snapshot record `idx` visible at `seq`: `None` if no
    /// delta touched it, `Some(None)` if deleted.
    pub(crate) fn record_version(&self, idx: u32, seq: u64) -> Option<Option<&ArchivedPersonRecord>> {
        self.at(self.by_record.get(idx), seq)
    }

    fn version_at(&self, snapshot: &Snapshot, person_id: &str, seq: u64) -> Option<Option<&ArchivedPersonRecord>> {
        match snapshot_index(snapshot, person_id) {
            Some(idx) => self.record_version(idx, seq),
            None => self.at(*self.by_id.get(person_id)?, seq),
        }
    }

    /// The newest version of a person changed by deltas: `Some(None)` if
    /// deleted, `None` if no delta touched it. `snapshot` is the one this
    /// overlay was applied over.
    pub fn latest(&self, snapshot: &Snapshot, person_id: &str) -> Option<Option<PersonRecord>> {
        self.version_at(snapshot, person_id, u64::MAX).map(|v| v.map(deserialize))
    }

    /// [`Overlay::latest`] of the person at snapshot record `idx`, for a
    /// caller walking the snapshot's records (no person-id probe).
    pub fn latest_of_record(&self, idx: u32) -> Option<Option<PersonRecord>> {
        self.record_version(idx, u64::MAX).map(|v| v.map(deserialize))
    }

    /// Every person a delta touched, sorted.
    pub fn changed_persons(&self) -> Vec<Arc<str>> {
        let ids: BTreeSet<&Arc<str>> = self.nodes.iter().map(|(_, n)| &n.person_id).collect();
        ids.into_iter().cloned().collect()
    }

    /// Whether a delta may have given `key` to a person whose snapshot
    /// record does not hold it: `None` when certainly not (the filter's bit
    /// is clear), else the key's id for [`Overlay::add_moved`].
    pub(crate) fn moved_key(&self, name: IndexName, key: &str) -> Option<u64> {
        let id = self.key_id(name, key);
        self.key_filter.may_hold(id).then_some(id)
    }

    /// Persons whose delta versions hold the key `id` (from
    /// [`Overlay::moved_key`]) while their snapshot record does not (a new
    /// card, a person only the deltas hold), added to a lookup's candidates
    /// at `seq`.
    pub(crate) fn add_moved<'a>(
        &'a self,
        id: u64,
        holds: &dyn Fn(&ArchivedPersonRecord) -> bool,
        out: &mut SmallVec<[&'a ArchivedPersonRecord; 2]>,
        seq: u64,
    ) {
        let Some(owners) = self.keys.get(&id) else { return };
        for owner in owners.iter() {
            let Some(Some(p)) = self.version_of(owner, seq) else { continue };
            if holds(p) && !out.iter().any(|o| o.person_id == p.person_id) {
                out.push(p);
            }
        }
    }

    /// The version of `owner` visible at `seq`, as [`Overlay::record_version`].
    fn version_of(&self, owner: &Owner, seq: u64) -> Option<Option<&ArchivedPersonRecord>> {
        match owner {
            Owner::Record(idx) => self.record_version(*idx, seq),
            Owner::Id(pid) => self.at(*self.by_id.get(pid)?, seq),
        }
    }

    /// The revocation state a delta set for `serial` at `seq`, if any.
    pub(crate) fn revoked(&self, serial: &str, seq: u64) -> Option<u64> {
        if self.revocations.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let list = self.revoked.get(serial)?;
        list.iter().rev().find(|(s, _)| *s <= seq).map(|(_, at)| *at)
    }

    /// Validate and stage a batch against `snapshot` and the versions so far;
    /// nothing is visible until [`Prepared::publish`].
    pub fn prepare<'a>(&'a self, snapshot: &'a Snapshot, batch: &Batch) -> Result<Prepared<'a>, ApplyError> {
        let mut w = Working { overlay: self, snapshot, records: HashMap::new(), revoked: Vec::new(), local: HashMap::new(), rows: 0 };
        for (line, change) in &batch.changes {
            w.change(change).map_err(|m| ApplyError::Missing { line: *line, what: m.what, key: m.key })?;
            w.rows += 1;
        }
        Ok(Prepared { w, seq: batch.seq })
    }
}

/// A validated batch, ready to become visible.
pub struct Prepared<'a> {
    w: Working<'a>,
    seq: u64,
}

impl Prepared<'_> {
    /// Make the batch visible to requests, all at once.
    pub fn publish(self) {
        let ov = self.w.overlay;
        let snapshot = self.w.snapshot;
        let seq = self.seq;
        let _one_at_a_time = ov.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = 0u64;
        for (pid, rec) in self.w.records {
            let index = snapshot_index(snapshot, &pid);
            let record = rec.map(|r| {
                let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&r).expect("serialising an owned record cannot fail");
                bytes += archived.len() as u64;
                // Keys the person's snapshot record holds need no entry: the
                // snapshot index already leads lookups to this person, and
                // `View::find` puts the new version in its place.
                let in_snapshot = index.and_then(|idx| snapshot.person(idx));
                let owner = index.map_or_else(|| Owner::Id(pid.clone()), Owner::Record);
                record_keys(&r, |name, key| {
                    if in_snapshot.is_some_and(|s| archived_holds(s, name, key)) {
                        return;
                    }
                    let id = ov.key_id(name, key);
                    let mut entry = ov.keys.entry(id).or_default();
                    if !entry.contains(&owner) {
                        entry.push(owner.clone());
                    }
                    ov.key_filter.insert(id);
                });
                archived
            });
            // The new node links to the person's previous newest; the head
            // moves to it only once it is in the arena.
            let slot = index.and_then(|idx| ov.by_record.slot(idx));
            let prev = match slot {
                Some(slot) => slot.load(Ordering::Acquire),
                None => ov.by_id.get(&pid).map_or(0, |h| *h),
            };
            if prev == 0 {
                ov.persons.fetch_add(1, Ordering::Relaxed);
            }
            let link = ov.nodes.push(Node { seq, person_id: pid.clone(), record, prev }) + 1;
            match slot {
                Some(slot) => slot.store(link, Ordering::Release),
                None => {
                    ov.by_id.insert(pid, link);
                }
            }
        }
        for (serial, at) in self.w.revoked {
            ov.revoked.entry(serial.into()).or_default().push((seq, at));
            ov.revocations.fetch_add(1, Ordering::Relaxed);
        }
        ov.bytes.fetch_add(bytes, Ordering::Relaxed);
        ov.changed_rows.fetch_add(self.w.rows, Ordering::Relaxed);
        ov.visible.store(seq, Ordering::Release);
    }
}

/// The records a batch changes, as owned values.
struct Working<'a> {
    overlay: &'a Overlay,
    snapshot: &'a Snapshot,
    records: HashMap<Arc<str>, Option<PersonRecord>>,
    revoked: Vec<(String, u64)>,
    /// Ids given to a person by this batch (index, id) → person.
    local: HashMap<(IndexName, String), Arc<str>>,
    rows: u64,
}

/// The record index of a person the snapshot holds.
fn snapshot_index(snapshot: &Snapshot, person_id: &str) -> Option<u32> {
    snapshot.find(IndexName::PersonId, person_id, |p| p.person_id == person_id).map(|hit| hit.first())
}

fn deserialize(p: &ArchivedPersonRecord) -> PersonRecord {
    rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(p).expect("a verified archive deserialises")
}

impl Working<'_> {
    /// The person as of this batch so far.
    fn current(&self, pid: &str) -> Option<PersonRecord> {
        if let Some(r) = self.records.get(pid) {
            return r.clone();
        }
        // One person-id probe: the record number leads to the overlay's
        // versions of a snapshot person, or to its snapshot record.
        let version = match snapshot_index(self.snapshot, pid) {
            Some(idx) => match self.overlay.record_version(idx, u64::MAX) {
                None => return self.snapshot.person(idx).map(deserialize),
                some => some,
            },
            None => self.overlay.by_id.get(pid).and_then(|head| self.overlay.at(*head, u64::MAX)),
        };
        version.and_then(|v| v.map(deserialize))
    }

    fn load(&mut self, pid: &str) -> Result<&mut PersonRecord, Missing> {
        if !self.records.contains_key(pid) {
            let cur = self.current(pid);
            self.records.insert(pid.into(), cur);
        }
        self.records.get_mut(pid).and_then(Option::as_mut).ok_or_else(|| Missing::new("person_id", pid))
    }

    /// The person who holds id `key` of index `name` now. Candidates come
    /// from this batch, the overlay and the snapshot; each is checked against
    /// its newest version.
    fn owner(&self, name: IndexName, key: &str) -> Option<String> {
        let mut candidates: SmallVec<[Arc<str>; 2]> = SmallVec::new();
        if let Some(pid) = self.local.get(&(name, key.to_string())) {
            candidates.push(pid.clone());
        }
        if let Some(owners) = self.overlay.key_owners(name, key) {
            candidates.extend(owners.iter().filter_map(|o| match o {
                Owner::Record(idx) => self.snapshot.person(*idx).map(|p| p.person_id.with_text(|s| Arc::<str>::from(s))),
                Owner::Id(pid) => Some(pid.clone()),
            }));
        }
        if let Some(hit) = self.snapshot.find(name, key, |p| archived_holds(p, name, key)) {
            hit.for_each(|i| candidates.extend(self.snapshot.person(i).map(|p| p.person_id.with_text(|s| Arc::<str>::from(s)))));
        }
        let holds_now = |pid: &str| match self.records.get(pid) {
            Some(r) => r.as_ref().is_some_and(|r| record_holds(r, name, key)),
            None => match self.overlay.version_at(self.snapshot, pid, u64::MAX) {
                Some(Some(p)) => archived_holds(p, name, key),
                Some(None) => false,
                // Unchanged since the snapshot, whose index hit was confirmed.
                None => true,
            },
        };
        candidates.into_iter().find(|pid| holds_now(pid)).map(|p| p.to_string())
    }

    fn owner_of(&self, name: IndexName, key: &str, what: &'static str) -> Result<String, Missing> {
        self.owner(name, key).ok_or_else(|| Missing::new(what, key))
    }

    fn change(&mut self, change: &Change) -> Result<(), Missing> {
        match change {
            Change::Upsert(row) => self.upsert(row.clone()),
            Change::Delete(d) => self.delete(d),
        }
    }

    fn upsert(&mut self, row: Row) -> Result<(), Missing> {
        match row {
            Row::Person(p) => {
                let pid = p.person_id.clone();
                let cur = self.current(&pid);
                let merged = match cur {
                    Some(old) => PersonRecord {
                        certificates: old.certificates,
                        insurance: old.insurance,
                        assistance: old.assistance,
                        reference_numbers: old.reference_numbers,
                        consents: old.consents,
                        ..p
                    },
                    None => p,
                };
                self.records.insert(pid.into(), Some(merged));
            }
            Row::Certificate { person_id, cert } => {
                let r = self.load(&person_id)?;
                r.certificates.retain(|c| c.serial_number != cert.serial_number);
                r.certificates.push(cert);
            }
            Row::Revoked { serial, revoked_at } => self.revoked.push((serial, revoked_at)),
            Row::Insurance { person_id, mut ins } => {
                // A qualification may move to another person: take it (and its
                // attached certificates) from whoever holds it now.
                if let Some(old_pid) = self.owner(IndexName::QualificationId, &ins.qualification_id) {
                    let old = self.load(&old_pid)?;
                    if let Some(pos) = old.insurance.iter().position(|i| i.qualification_id == ins.qualification_id) {
                        let prev = old.insurance.remove(pos);
                        ins.elderly = prev.elderly;
                        ins.limit = prev.limit;
                        ins.specific_diseases = prev.specific_diseases;
                    }
                }
                self.local.insert((IndexName::QualificationId, ins.qualification_id.clone()), person_id.as_str().into());
                self.load(&person_id)?.insurance.push(ins);
            }
            Row::Elderly { qualification_id, elderly } => {
                self.qualification(&qualification_id)?.elderly = Some(Box::new(elderly));
            }
            Row::Limit { qualification_id, limit } => {
                self.qualification(&qualification_id)?.limit = Some(Box::new(limit));
            }
            Row::SpecificDisease { qualification_id, disease } => {
                let q = self.qualification(&qualification_id)?;
                q.specific_diseases.retain(|d| d.category != disease.category);
                q.specific_diseases.push(disease);
            }
            Row::Assistance { person_id, mut asst } => {
                if let Some(old_pid) = self.owner(IndexName::AssistanceId, &asst.assistance_id) {
                    let old = self.load(&old_pid)?;
                    if let Some(pos) = old.assistance.iter().position(|a| a.assistance_id == asst.assistance_id) {
                        asst.tickets = old.assistance.remove(pos).tickets;
                    }
                }
                self.local.insert((IndexName::AssistanceId, asst.assistance_id.clone()), person_id.as_str().into());
                self.load(&person_id)?.assistance.push(asst);
            }
            Row::Ticket { assistance_id, ticket } => {
                if let Some(old_pid) = self.owner(IndexName::TicketId, &ticket.ticket_id) {
                    let old = self.load(&old_pid)?;
                    for a in &mut old.assistance {
                        a.tickets.retain(|t| t.ticket_id != ticket.ticket_id);
                    }
                }
                let pid = self.owner_of(IndexName::AssistanceId, &assistance_id, "assistance_id")?;
                self.local.insert((IndexName::TicketId, ticket.ticket_id.clone()), pid.as_str().into());
                let r = self.load(&pid)?;
                if let Some(a) = r.assistance.iter_mut().find(|a| a.assistance_id == assistance_id) {
                    a.tickets.push(ticket);
                }
            }
            Row::Reference { person_id, reference } => {
                let r = self.load(&person_id)?;
                r.reference_numbers.retain(|x| x.institution_code != reference.institution_code);
                r.reference_numbers.push(reference);
            }
            Row::Consent { person_id, consent } => {
                let r = self.load(&person_id)?;
                r.consents.retain(|c| !(c.institution_code == consent.institution_code && c.kind == consent.kind));
                r.consents.push(consent);
            }
        }
        Ok(())
    }

    fn qualification(&mut self, qid: &str) -> Result<&mut Insurance, Missing> {
        let pid = self.owner_of(IndexName::QualificationId, qid, "qualification_id")?;
        let r = self.load(&pid)?;
        r.insurance.iter_mut().find(|i| i.qualification_id == qid).ok_or_else(|| Missing::new("qualification_id", qid))
    }

    fn delete(&mut self, d: &Delete) -> Result<(), Missing> {
        let missing = Missing::new;
        match d {
            Delete::Person { person_id } => {
                self.load(person_id)?;
                self.records.insert(person_id.as_str().into(), None);
            }
            Delete::Certificate { serial, person_id } => {
                let r = self.load(person_id)?;
                let before = r.certificates.len();
                r.certificates.retain(|c| c.serial_number != *serial);
                if r.certificates.len() == before {
                    return Err(missing("serial_number", serial));
                }
            }
            Delete::Revoked { serial } => self.revoked.push((serial.clone(), 0)),
            Delete::Insurance { qualification_id } => {
                let pid = self.owner_of(IndexName::QualificationId, qualification_id, "qualification_id")?;
                self.load(&pid)?.insurance.retain(|i| i.qualification_id != *qualification_id);
            }
            Delete::Elderly { qualification_id } => {
                self.qualification(qualification_id)?.elderly.take().ok_or_else(|| missing("elderly certificate of", qualification_id))?;
            }
            Delete::Limit { qualification_id } => {
                self.qualification(qualification_id)?.limit.take().ok_or_else(|| missing("limit certificate of", qualification_id))?;
            }
            Delete::SpecificDisease { qualification_id, category } => {
                let q = self.qualification(qualification_id)?;
                let before = q.specific_diseases.len();
                q.specific_diseases.retain(|s| s.category != *category);
                if q.specific_diseases.len() == before {
                    return Err(missing("specific disease category", category));
                }
            }
            Delete::Assistance { assistance_id } => {
                let pid = self.owner_of(IndexName::AssistanceId, assistance_id, "assistance_id")?;
                self.load(&pid)?.assistance.retain(|a| a.assistance_id != *assistance_id);
            }
            Delete::Ticket { ticket_id } => {
                let pid = self.owner_of(IndexName::TicketId, ticket_id, "ticket_id")?;
                for a in &mut self.load(&pid)?.assistance {
                    a.tickets.retain(|t| t.ticket_id != *ticket_id);
                }
            }
            Delete::Reference { institution, person_id } => {
                let r = self.load(person_id)?;
                let before = r.reference_numbers.len();
                r.reference_numbers.retain(|x| x.institution_code != *institution);
                if r.reference_numbers.len() == before {
                    return Err(missing("reference number of institution", institution));
                }
            }
            Delete::Consent { institution, person_id, kind } => {
                let r = self.load(person_id)?;
                let before = r.consents.len();
                r.consents.retain(|c| !(c.institution_code == *institution && c.kind == *kind));
                if r.consents.len() == before {
                    return Err(missing("consent of institution", institution));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_span_chunks_and_refuse_indexes_past_the_snapshot() {
        let heads = Heads::new(3 * CHUNK as u32 + 5);
        assert_eq!(heads.chunks.len(), 4);
        for idx in [0, CHUNK as u32 - 1, CHUNK as u32, 3 * CHUNK as u32 + 4] {
            assert_eq!(heads.get(idx), 0, "untouched record {idx}");
            heads.slot(idx).expect("inside the snapshot").store(idx as usize + 7, Ordering::Release);
            assert_eq!(heads.get(idx), idx as usize + 7);
        }
        // Neighbours in a touched chunk stay untouched; an untouched chunk stays unallocated.
        assert_eq!(heads.get(1), 0);
        assert!(heads.chunks[2].get().is_none());
        assert!(heads.slot(4 * CHUNK as u32).is_none());
        assert_eq!(heads.get(u32::MAX), 0);
    }

    #[test]
    fn the_key_filter_holds_what_was_inserted() {
        let filter = KeyFilter::new();
        let hasher = ahash::RandomState::new();
        let ids: Vec<u64> = (0..1000).map(|i| hasher.hash_one(i)).collect();
        assert!(ids.iter().all(|&id| !filter.may_hold(id)));
        ids.iter().for_each(|&id| filter.insert(id));
        assert!(ids.iter().all(|&id| filter.may_hold(id)));
        let others = (1000..101_000).filter(|i| filter.may_hold(hasher.hash_one(i))).count();
        assert!(others < 1000, "{others} of 100,000 other keys pass a filter holding 1,000");
    }
}
