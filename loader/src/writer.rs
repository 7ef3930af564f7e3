//! Writes person records into shards and builds the indexes: shared by
//! `compile` (records assembled from an export) and `fold` (a snapshot with
//! its delta log applied).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam::channel::{bounded, unbounded, Receiver, Sender};

use elig_engine::envelope::FileKind;
use elig_engine::manifest::{shard_file_name, FileEntry, IndexName};
use elig_engine::model::{PersonRecord, PersonShard, SHARD_PERSONS};
use elig_engine::snapshot::{archive_index, archive_shard};

use crate::error::CompileError;
use crate::index_builder::IndexBuilder;
use crate::publish::{PublishError, Staging};

/// What the writer produced.
#[derive(Debug)]
pub struct Written {
    pub shards: Vec<FileEntry>,
    pub indexes: Vec<(IndexName, FileEntry)>,
    /// Keys held by several persons, by index (record numbers).
    pub shared_keys: Vec<(IndexName, Vec<u32>)>,
    pub counts: Counts,
}

pub struct SnapshotWriter<'a> {
    staging: &'a Staging,
    cutoff: u32,
    pending: Vec<PersonRecord>,
    next: u32,
    builders: HashMap<IndexName, IndexBuilder>,
    interner: Interner,
    archiver: Archiver,
    counts: Counts,
}

/// Archives and writes full shards on a thread of its own, one at a time
/// in order, while the next shard is assembled: the two halves of pass 2
/// on two cores, at the cost of one more shard of records in memory.
struct Archiver {
    send: Option<Sender<(usize, Vec<PersonRecord>)>>,
    done: Receiver<Result<FileEntry, PublishError>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sent: usize,
}

impl Archiver {
    fn start(staging: Staging) -> Result<Archiver, CompileError> {
        // Rendezvous: at most one shard waits while one is archived.
        let (send, work) = bounded::<(usize, Vec<PersonRecord>)>(0);
        let (report, done) = unbounded();
        let thread = std::thread::Builder::new()
            .name("shard-archiver".into())
            .spawn(move || {
                for (shard, records) in work {
                    let len = records.len() as u64;
                    let payload = archive_shard(&PersonShard { records });
                    let written = staging.write_sealed(&shard_file_name(shard), &payload, FileKind::PersonShard, len);
                    let failed = written.is_err();
                    let _ = report.send(written);
                    if failed {
                        return;
                    }
                }
            })
            .map_err(|source| CompileError::Io { path: PathBuf::from("shard-archiver thread"), source })?;
        Ok(Archiver { send: Some(send), done, thread: Some(thread), sent: 0 })
    }

    /// Hand a full shard over (waits while the previous one is archived).
    fn shard(&mut self, records: Vec<PersonRecord>) -> Result<(), CompileError> {
        let sent = self.send.as_ref().is_some_and(|s| s.send((self.sent, records)).is_ok());
        self.sent += 1;
        if !sent {
            // The thread stopped on a write error, which `finish` reports;
            // this shard was not written, so `finish` cannot succeed.
            return self.finish().map(|_| ());
        }
        Ok(())
    }

    /// Every shard's entry, in order, or the first write error.
    fn finish(&mut self) -> Result<Vec<FileEntry>, CompileError> {
        self.send = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let entries = self.done.try_iter().collect::<Result<Vec<_>, _>>()?;
        if entries.len() != self.sent {
            let path = PathBuf::from(shard_file_name(entries.len()));
            return Err(CompileError::Io { path, source: std::io::Error::other("the shard archiver thread stopped") });
        }
        Ok(entries)
    }
}

impl<'a> SnapshotWriter<'a> {
    /// `cutoff`: lost qualifications older than this date are dropped.
    pub fn new(staging: &'a Staging, cutoff: u32) -> Result<Self, CompileError> {
        let archiver = Archiver::start(staging.clone())?;
        Ok(SnapshotWriter {
            staging,
            cutoff,
            pending: Vec::new(),
            next: 0,
            builders: IndexName::ALL.iter().map(|n| (*n, IndexBuilder::default())).collect(),
            interner: Interner::default(),
            archiver,
            counts: Counts::default(),
        })
    }

    /// Add the next person record (record numbers follow the push order).
    pub fn push(&mut self, mut r: PersonRecord) -> Result<(), CompileError> {
        self.interner.record(&mut r);
        self.counts.dropped += retain(&mut r, self.cutoff);
        self.counts.add(&r);
        let idx = self.next;
        elig_engine::keys::record_keys(&r, |name, key| {
            if let Some(b) = self.builders.get_mut(&name) {
                b.add(key, idx);
            }
        });
        self.next += 1;
        self.pending.push(r);
        if self.pending.len() == SHARD_PERSONS as usize {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), CompileError> {
        let records = std::mem::take(&mut self.pending);
        self.archiver.shard(records)?;
        // Interned names are per shard: each archive holds its own copy.
        self.interner = Interner::default();
        Ok(())
    }

    pub fn persons(&self) -> u32 {
        self.next
    }

    /// Write the last shard and every index.
    pub fn finish(mut self) -> Result<Written, CompileError> {
        if !self.pending.is_empty() || self.archiver.sent == 0 {
            self.flush()?;
        }
        let shards = self.archiver.finish()?;
        let mut indexes = Vec::new();
        let mut shared_keys = Vec::new();
        for name in IndexName::ALL {
            let builder = self.builders.remove(&name).unwrap_or_default();
            let (index, shared) = builder.build();
            if matches!(name, IndexName::Serial | IndexName::Processing | IndexName::Insurance | IndexName::Assistance) {
                shared_keys.extend(shared.into_iter().map(|s| (name, s.persons)));
            }
            let payload = archive_index(&index);
            indexes.push((name, self.staging.write_sealed(&name.file_name(), &payload, FileKind::HashIndex, index.keys)?));
        }
        Ok(Written { shards, indexes, shared_keys, counts: self.counts })
    }
}

/// Makes equal repeated names one `Arc`, so rkyv archives each once per shard.
#[derive(Default)]
struct Interner(HashSet<Arc<str>, ahash::RandomState>);

impl Interner {
    fn one(&mut self, s: &mut Arc<str>) {
        if s.is_empty() {
            return;
        }
        match self.0.get(&**s) {
            Some(shared) => *s = shared.clone(),
            None => {
                self.0.insert(s.clone());
            }
        }
    }

    fn record(&mut self, r: &mut PersonRecord) {
        self.one(&mut r.address.town);
        for i in &mut r.insurance {
            self.one(&mut i.insurer_name);
            self.one(&mut i.insured_name);
        }
        for a in &mut r.assistance {
            self.one(&mut a.welfare_office);
            for t in &mut a.tickets {
                self.one(&mut t.institution_name);
            }
        }
    }
}

/// The oldest loss date still kept.
pub fn retention_cutoff(today: u32, days: u32) -> u32 {
    let parse = chrono::NaiveDate::from_ymd_opt((today / 10000) as i32, today / 100 % 100, today % 100);
    parse
        .and_then(|d| d.checked_sub_days(chrono::Days::new(u64::from(days))))
        .map(|d| d.format("%Y%m%d").to_string().parse().unwrap_or(0))
        .unwrap_or(0)
}

/// Drop qualifications lost before `cutoff`; returns how many.
pub fn retain(r: &mut PersonRecord, cutoff: u32) -> u64 {
    let before = r.insurance.len() + r.assistance.len();
    r.insurance.retain(|i| i.disqualification_date == 0 || i.disqualification_date >= cutoff);
    r.assistance.retain(|a| a.end_date == 0 || a.end_date >= cutoff);
    (before - r.insurance.len() - r.assistance.len()) as u64
}

/// Record counts by table, for the manifest.
#[derive(Debug, Default)]
pub struct Counts {
    pub persons: u64,
    pub certificates: u64,
    pub insurance: u64,
    pub assistance: u64,
    pub tickets: u64,
    pub references: u64,
    pub consents: u64,
    pub dropped: u64,
}

impl Counts {
    fn add(&mut self, r: &PersonRecord) {
        self.persons += 1;
        self.certificates += r.certificates.len() as u64;
        self.insurance += r.insurance.len() as u64;
        self.assistance += r.assistance.len() as u64;
        self.tickets += r.assistance.iter().map(|a| a.tickets.len() as u64).sum::<u64>();
        self.references += r.reference_numbers.len() as u64;
        self.consents += r.consents.len() as u64;
    }

    pub fn list(&self, anomalies: u64) -> Vec<(String, u64)> {
        [
            ("persons", self.persons),
            ("certificates", self.certificates),
            ("insurance", self.insurance),
            ("assistance", self.assistance),
            ("tickets", self.tickets),
            ("reference_numbers", self.references),
            ("consents", self.consents),
            ("dropped_by_retention", self.dropped),
            ("anomalies", anomalies),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
