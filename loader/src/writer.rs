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
use elig_engine::snapshot::{archive_index, archive_shard_in};
use rkyv::util::AlignedVec;

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

/// Archives and writes full shards while the next shard is assembled: on
/// `threads - 1` threads of their own (each holding one shard of records
/// while it works), or on the caller's thread when `threads` is 1. Each
/// shard is a file of its own, so the order they finish in changes nothing;
/// their entries are returned in shard order.
struct Archiver {
    staging: Staging,
    send: Option<Sender<(usize, Vec<PersonRecord>)>>,
    done: Receiver<(usize, Result<FileEntry, PublishError>)>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Entries by shard, as they come back.
    entries: Vec<Option<FileEntry>>,
    /// The archive buffer when shards are archived on the caller's thread.
    buffer: AlignedVec,
    sent: usize,
}

impl Drop for Archiver {
    /// No thread writes into a staging directory that is being abandoned.
    fn drop(&mut self) {
        self.send = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Archive and write one shard, in `buffer` (kept for the next shard).
fn archive(staging: &Staging, shard: usize, records: Vec<PersonRecord>, buffer: &mut AlignedVec) -> Result<FileEntry, PublishError> {
    let len = records.len() as u64;
    let shard_records = PersonShard { records };
    *buffer = archive_shard_in(&shard_records, std::mem::take(buffer));
    // Freed before the write, not held while the file is written.
    drop(shard_records);
    staging.write_sealed(&shard_file_name(shard), buffer, FileKind::PersonShard, len)
}

impl Archiver {
    fn start(staging: Staging, threads: usize) -> Result<Archiver, CompileError> {
        // Rendezvous: a shard is handed over only to an idle thread.
        let (send, work) = bounded::<(usize, Vec<PersonRecord>)>(0);
        let (report, done) = unbounded();
        let mut handles = Vec::new();
        for n in 1..threads.max(1) {
            let (work, report, staging) = (work.clone(), report.clone(), staging.clone());
            let handle = std::thread::Builder::new()
                .name(format!("shard-archiver-{n}"))
                .spawn(move || {
                    let mut buffer = AlignedVec::new();
                    for (shard, records) in work {
                        let written = archive(&staging, shard, records, &mut buffer);
                        let failed = written.is_err();
                        let _ = report.send((shard, written));
                        if failed {
                            return;
                        }
                    }
                })
                .map_err(|source| CompileError::Io { path: PathBuf::from("shard-archiver thread"), source })?;
            handles.push(handle);
        }
        let send = (!handles.is_empty()).then_some(send);
        Ok(Archiver { staging, send, done, threads: handles, entries: Vec::new(), buffer: AlignedVec::new(), sent: 0 })
    }

    /// Hand a full shard over (waits until a thread is free), or archive it
    /// here with no threads. Stops at the first write error.
    fn shard(&mut self, records: Vec<PersonRecord>) -> Result<(), CompileError> {
        let shard = self.sent;
        self.sent += 1;
        let Some(send) = &self.send else {
            let entry = archive(&self.staging, shard, records, &mut self.buffer)?;
            self.entries.push(Some(entry));
            return Ok(());
        };
        let sent = send.send((shard, records)).is_ok();
        self.collect()?;
        if !sent {
            // Every thread stopped; `finish` names the error, or the shard.
            return self.finish().map(|_| ());
        }
        Ok(())
    }

    /// Take the entries reported so far; the first error ends the compile.
    fn collect(&mut self) -> Result<(), CompileError> {
        for (shard, written) in self.done.try_iter() {
            if self.entries.len() <= shard {
                self.entries.resize(shard + 1, None);
            }
            self.entries[shard] = Some(written?);
        }
        Ok(())
    }

    /// Every shard's entry, in order, or the first write error.
    fn finish(&mut self) -> Result<Vec<FileEntry>, CompileError> {
        self.send = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.collect()?;
        self.entries.resize(self.sent, None);
        let mut entries = Vec::with_capacity(self.sent);
        for (shard, entry) in self.entries.drain(..).enumerate() {
            let Some(entry) = entry else {
                let path = PathBuf::from(shard_file_name(shard));
                return Err(CompileError::Io { path, source: std::io::Error::other("the shard archiver thread stopped") });
            };
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl<'a> SnapshotWriter<'a> {
    /// `cutoff`: lost qualifications older than this date are dropped;
    /// `threads`: how many threads work, the caller's included.
    pub fn new(staging: &'a Staging, cutoff: u32, threads: usize) -> Result<Self, CompileError> {
        let archiver = Archiver::start(staging.clone(), threads)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards of 0..7 records with distinct ids, through `threads` threads.
    fn archived(threads: usize) -> Vec<FileEntry> {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::begin(&dir.path().join("snap"), 1).unwrap();
        let mut archiver = Archiver::start(staging.clone(), threads).unwrap();
        for shard in 0..7usize {
            let records = (0..shard)
                .map(|i| PersonRecord { person_id: format!("P{shard}-{i}"), name: "x".into(), ..PersonRecord::default() })
                .collect();
            archiver.shard(records).unwrap();
        }
        let entries = archiver.finish().unwrap();
        staging.abandon();
        entries
    }

    #[test]
    fn shards_come_back_in_order_for_any_thread_count() {
        let one = archived(1);
        let names: Vec<String> = (0..7).map(shard_file_name).collect();
        assert_eq!(one.iter().map(|e| e.file.clone()).collect::<Vec<_>>(), names);
        assert_eq!(one.iter().map(|e| e.count).collect::<Vec<_>>(), (0..7).collect::<Vec<u64>>());
        for threads in [2, 4] {
            assert_eq!(archived(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn a_shard_that_cannot_be_written_fails_the_compile() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::begin(&dir.path().join("snap"), 1).unwrap();
        for threads in [1, 3] {
            let mut archiver = Archiver::start(staging.clone(), threads).unwrap();
            // The staging directory goes away under the archiver.
            std::fs::remove_dir_all(&staging.tmp).unwrap();
            let result = (0..4).try_for_each(|_| archiver.shard(vec![PersonRecord::default()])).and_then(|_| archiver.finish());
            let e = result.expect_err("writing into a removed directory fails");
            assert!(e.to_string().contains("persons-0"), "{threads} threads: {e}");
            std::fs::create_dir_all(&staging.tmp).unwrap();
        }
    }
}
