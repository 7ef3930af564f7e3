//! `elig-loader compile --base SNAPSHOT --deltas LOG`: fold a delta log into
//! a new snapshot when no fresh export exists, so the live overlay does not
//! grow without bound. The log is only read (a running server may be
//! appending to it); batches the base already includes are skipped.

use std::path::PathBuf;
use std::time::Instant;

use elig_engine::delta_log;
use elig_engine::engine::{Engine, EngineOptions};
use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::manifest::{IndexName, Manifest, SourceFile};
use elig_engine::model::PersonRecord;
use elig_engine::snapshot::Snapshot;

use crate::compile::{resolve_anomalies, write_anomalies, CompileSummary};
pub use crate::error::{CompileError, FoldDeltaError};
use crate::publish::Staging;
use crate::writer::{retention_cutoff, SnapshotWriter};

#[derive(Debug, Clone)]
pub struct FoldOptions {
    pub base: PathBuf,
    pub deltas: PathBuf,
    pub out: PathBuf,
    pub generation: Option<u64>,
    pub today: Option<u32>,
    /// Defaults to the base snapshot's retention.
    pub retain_lost_days: Option<u32>,
    /// Threads that work, this one included (`CompileOptions::threads`).
    pub threads: usize,
}

pub fn fold(opts: &FoldOptions) -> Result<CompileSummary, CompileError> {
    let started = Instant::now();
    let (today, now) = elig_engine::ids::japan_now();
    let today = opts.today.unwrap_or(today);
    let base = Snapshot::load(&opts.base)?;
    let retain_days = opts.retain_lost_days.unwrap_or(base.manifest().retain_lost_days);
    let generation = opts.generation.unwrap_or(now).max(base.generation() + 1);
    // A one-off read of every record: no need to pin it in memory.
    let engine = Engine::with_options(base, EngineOptions { lock_memory: false, ..EngineOptions::default() });
    let bytes = std::fs::read(&opts.deltas).map_err(|source| CompileError::Io { path: opts.deltas.clone(), source })?;
    let (records, _) = delta_log::parse(&bytes);
    let mut applied = 0u64;
    for r in &records {
        let ack = engine
            .apply(&r.payload)
            .map_err(|e| CompileError::Fold(FoldDeltaError { path: opts.deltas.clone(), seq: r.seq, source: Box::new(e) }))?;
        applied += u64::from(!ack.duplicate);
    }
    let gen = engine.pin();
    let staging = Staging::begin(&opts.out, generation)?;
    let result = (|| {
        let mut writer = SnapshotWriter::new(&staging, retention_cutoff(today, retain_days), opts.threads)?;
        for (idx, p) in gen.snapshot.iter_persons() {
            match gen.overlay.latest_of_record(idx) {
                Some(None) => {}
                Some(Some(r)) => writer.push(r)?,
                None => writer.push(
                    rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(p)
                        .map_err(|e| CompileError::Io { path: opts.base.clone(), source: std::io::Error::other(e.to_string()) })?,
                )?,
            }
        }
        for pid in gen.overlay.changed_persons() {
            // Persons the base holds were written above, in record order.
            let in_base = gen.snapshot.find(IndexName::PersonId, &pid, |p| p.person_id == *pid).is_some();
            if !in_base {
                if let Some(Some(r)) = gen.overlay.latest(&gen.snapshot, &pid) {
                    writer.push(r)?;
                }
            }
        }
        let persons = writer.persons();
        let written = writer.finish()?;
        let anomalies = resolve_anomalies(&staging, &written.shards, &[], &written.shared_keys)?;
        let anomaly_report = write_anomalies(&staging, &anomalies)?;
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            generation,
            created: now,
            delta_seq: gen.overlay.visible(),
            persons: u64::from(persons),
            retain_lost_days: retain_days,
            shards: written.shards,
            indexes: written.indexes,
            sources: vec![SourceFile {
                file: opts.deltas.display().to_string(),
                bytes: bytes.len() as u64,
                checksum: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
                rows: applied,
                rejected: 0,
            }],
            counts: written.counts.list(anomalies.len() as u64),
            anomalies: anomaly_report,
            checksum: String::new(),
        };
        manifest.checksum = manifest.content_checksum();
        Ok((manifest, anomalies, written.counts.dropped))
    })();
    match result {
        Ok((manifest, anomalies, dropped)) => {
            let out = staging.publish(&manifest)?;
            Ok(CompileSummary {
                out,
                manifest,
                rows_read: applied,
                rejected: 0,
                reject_reasons: Vec::new(),
                anomalies,
                dropped_by_retention: dropped,
                rejects_file: PathBuf::new(),
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            staging.abandon();
            Err(e)
        }
    }
}
