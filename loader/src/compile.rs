//! `elig-loader compile`: export directory → snapshot directory.
//!
//! Pass 1 reads every file, validates each row (`elig_engine::rows`),
//! resolves references and uniqueness with 128-bit hashes of the ids, writes
//! rejects with their reasons, and stages good rows by person shard.
//! Pass 2 assembles one shard of person records at a time, drops lost
//! qualifications past retention, archives the shard and feeds the index
//! builders. Then the indexes are laid out and everything is published
//! atomically (`publish`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::manifest::{FileEntry, IndexName, Manifest, SourceFile, ANOMALIES_FILE};
use elig_engine::model::*;
use elig_engine::rows::{self, parse_row, Row, RowError, Table};
use xxhash_rust::xxh3::xxh3_128;

pub use crate::error::CompileError;
use crate::export::{locate, Encoding, ExportError, ExportFile};
use crate::publish::Staging;
use crate::stage::{self, Buckets, Staged, StagedRow};
use crate::writer::SnapshotWriter;
pub use crate::writer::{retain, retention_cutoff};

#[derive(Debug, Clone)]
pub struct CompileOptions {
    pub input: PathBuf,
    pub out: PathBuf,
    pub encoding: Encoding,
    /// Fail when rejected rows exceed this fraction of all rows.
    pub max_reject_ratio: f64,
    /// Lost qualifications older than this many days are dropped.
    pub retain_lost_days: u32,
    /// Defaults to the creation time as `YYYYMMDDHHmmss`.
    pub generation: Option<u64>,
    /// The compile date (retention); defaults to today in Japan.
    pub today: Option<u32>,
    /// Where rejected rows go; defaults to `<out>.rejects.csv` beside the snapshot.
    pub rejects: Option<PathBuf>,
    pub progress: bool,
    /// Threads that work, this one included (at least 1; default: the
    /// cores available). The output is the same for any count.
    pub threads: usize,
}

impl CompileOptions {
    /// Five years: how long a lost qualification stays answerable.
    pub const DEFAULT_RETAIN_LOST_DAYS: u32 = 1826;

    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        CompileOptions {
            input: input.into(),
            out: out.into(),
            encoding: Encoding::Utf8,
            max_reject_ratio: 0.001,
            retain_lost_days: Self::DEFAULT_RETAIN_LOST_DAYS,
            generation: None,
            today: None,
            rejects: None,
            progress: false,
            threads: default_threads(),
        }
    }
}

/// The cores available to this process (1 when that cannot be told).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// What a compile did.
#[derive(Debug, Clone)]
pub struct CompileSummary {
    pub out: PathBuf,
    pub manifest: Manifest,
    pub rows_read: u64,
    pub rejected: u64,
    /// Rejected rows by `file: column: reason`, most frequent first.
    pub reject_reasons: Vec<(String, u64)>,
    pub anomalies: Vec<Anomaly>,
    pub dropped_by_retention: u64,
    pub rejects_file: PathBuf,
    pub elapsed: Duration,
}

/// A linkage anomaly: reported, never silently fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// `shared_key:<index>` or `duplicate_identity`.
    pub kind: String,
    pub person_ids: Vec<String>,
}

type IdMap = HashMap<u128, u32, ahash::RandomState>;
type Seen = HashSet<u128, ahash::RandomState>;

fn h(s: &str) -> u128 {
    xxh3_128(s.as_bytes())
}

/// Pass-1 state: who exists, what was seen, where rows go.
struct Pass1 {
    persons: IdMap,
    qualifications: IdMap,
    assistance: IdMap,
    seen: Seen,
    revoked: HashMap<String, u64, ahash::RandomState>,
    identities: IdMap,
    identity_dups: Vec<(u32, u32)>,
    buckets: Buckets,
    rejects: csv::Writer<std::fs::File>,
    reasons: HashMap<String, u64>,
    rows: u64,
    rejected: u64,
    next_person: u32,
}

impl Pass1 {
    fn reject(&mut self, file: &str, line: u64, e: &RowError) -> Result<(), CompileError> {
        self.rejected += 1;
        *self.reasons.entry(format!("{file}: {}: {}", e.column, e.reason)).or_default() += 1;
        self.rejects
            .write_record([file, &line.to_string(), &e.column, &e.value, &e.reason])
            .map_err(|e| CompileError::Io { path: PathBuf::from("rejects"), source: e.into() })
    }

    fn person_of(&self, id: &str) -> Result<u32, RowError> {
        self.persons.get(&h(id)).copied().ok_or_else(|| RowError::new("person_id", id, "no such person"))
    }

    /// Route one validated row; `Err` rejects it.
    fn accept(&mut self, row: Row) -> Result<(), RowError> {
        let (table, key) = rows::row_key(&row);
        let unique = |seen: &mut Seen, column: &str, value: &str| {
            if seen.insert(h(&format!("{table}\u{1f}{key}"))) {
                Ok(())
            } else {
                Err(RowError::new(column, value, "duplicate key: an earlier row has it"))
            }
        };
        let (person, staged) = match row {
            Row::Person(p) => {
                if self.next_person == u32::MAX >> 1 {
                    return Err(RowError::new("person_id", &p.person_id, "too many persons for one snapshot"));
                }
                let id = h(&p.person_id);
                if self.persons.contains_key(&id) {
                    return Err(RowError::new("person_id", &p.person_id, "duplicate key: an earlier row has it"));
                }
                let idx = self.next_person;
                self.next_person += 1;
                self.persons.insert(id, idx);
                let ident = h(&format!("{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}", p.name, p.name_kana, p.birth_date, p.sex, p.address));
                if let Some(first) = self.identities.insert(ident, idx) {
                    self.identity_dups.push((first, idx));
                }
                (idx, StagedRow::Person(p))
            }
            Row::Revoked { serial, revoked_at } => {
                unique(&mut self.seen, "serial_number", &serial)?;
                self.revoked.insert(serial, revoked_at);
                return Ok(());
            }
            Row::Certificate { person_id, mut cert } => {
                let p = self.person_of(&person_id)?;
                unique(&mut self.seen, "serial_number", &cert.serial_number)?;
                cert.revoked_at = self.revoked.get(&cert.serial_number).copied().unwrap_or(0);
                (p, StagedRow::Certificate(cert))
            }
            Row::Insurance { person_id, ins } => {
                let p = self.person_of(&person_id)?;
                if self.qualifications.insert(h(&ins.qualification_id), p).is_some() {
                    return Err(RowError::new("qualification_id", &ins.qualification_id, "duplicate key: an earlier row has it"));
                }
                (p, StagedRow::Insurance(ins))
            }
            Row::Elderly { qualification_id: q, elderly } => {
                (self.qual(&q, &mut |s| unique(s, "qualification_id", &q))?, StagedRow::Elderly(q, elderly))
            }
            Row::Limit { qualification_id: q, limit } => {
                (self.qual(&q, &mut |s| unique(s, "qualification_id", &q))?, StagedRow::Limit(q, limit))
            }
            Row::SpecificDisease { qualification_id: q, disease } => {
                (self.qual(&q, &mut |s| unique(s, "category", &disease.category))?, StagedRow::SpecificDisease(q, disease))
            }
            Row::Assistance { person_id, asst } => {
                let p = self.person_of(&person_id)?;
                if self.assistance.insert(h(&asst.assistance_id), p).is_some() {
                    return Err(RowError::new("assistance_id", &asst.assistance_id, "duplicate key: an earlier row has it"));
                }
                (p, StagedRow::Assistance(asst))
            }
            Row::Ticket { assistance_id, ticket } => {
                let p = *self
                    .assistance
                    .get(&h(&assistance_id))
                    .ok_or_else(|| RowError::new("assistance_id", &assistance_id, "no such assistance"))?;
                unique(&mut self.seen, "ticket_id", &ticket.ticket_id)?;
                (p, StagedRow::Ticket(assistance_id, ticket))
            }
            Row::Reference { person_id, reference } => {
                let p = self.person_of(&person_id)?;
                unique(&mut self.seen, "person_id", &person_id)?;
                (p, StagedRow::Reference(reference))
            }
            Row::Consent { person_id, consent } => {
                let p = self.person_of(&person_id)?;
                unique(&mut self.seen, "kind", consent.kind.name())?;
                (p, StagedRow::Consent(consent))
            }
        };
        self.buckets.push(&Staged { person, row: staged }).map_err(|(_, e)| RowError::new("", "", format!("staging: {e}")))
    }

    fn qual(&mut self, q: &str, unique: &mut dyn FnMut(&mut Seen) -> Result<(), RowError>) -> Result<u32, RowError> {
        let p = *self.qualifications.get(&h(q)).ok_or_else(|| RowError::new("qualification_id", q, "no such qualification"))?;
        unique(&mut self.seen)?;
        Ok(p)
    }
}

/// Compile an export directory into a published snapshot.
pub fn compile(opts: &CompileOptions) -> Result<CompileSummary, CompileError> {
    let started = Instant::now();
    let (today, now) = elig_engine::ids::japan_now();
    let today = opts.today.unwrap_or(today);
    let generation = opts.generation.unwrap_or(now);
    if locate(&opts.input, Table::Persons).is_none() {
        return Err(ExportError::NoPersons { dir: opts.input.clone() }.into());
    }
    let staging = Staging::begin(&opts.out, generation)?;
    let result = run(opts, &staging, today, now, generation, started);
    match result {
        Ok((manifest, mut summary)) => {
            summary.out = staging.publish(&manifest)?;
            summary.manifest = manifest;
            summary.elapsed = started.elapsed();
            Ok(summary)
        }
        Err(e) => {
            staging.abandon();
            Err(e)
        }
    }
}

fn rejects_path(opts: &CompileOptions) -> PathBuf {
    opts.rejects.clone().unwrap_or_else(|| {
        let mut name = opts.out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".rejects.csv");
        opts.out.with_file_name(name)
    })
}

fn run(
    opts: &CompileOptions,
    staging: &Staging,
    today: u32,
    now: u64,
    generation: u64,
    started: Instant,
) -> Result<(Manifest, CompileSummary), CompileError> {
    let rejects_file = rejects_path(opts);
    let mut rejects =
        csv::Writer::from_path(&rejects_file).map_err(|e| CompileError::Io { path: rejects_file.clone(), source: e.into() })?;
    rejects
        .write_record(["file", "line", "column", "value", "reason"])
        .map_err(|e| CompileError::Io { path: rejects_file.clone(), source: e.into() })?;
    let mut p1 = Pass1 {
        persons: IdMap::default(),
        qualifications: IdMap::default(),
        assistance: IdMap::default(),
        seen: Seen::default(),
        revoked: HashMap::default(),
        identities: IdMap::default(),
        identity_dups: Vec::new(),
        buckets: Buckets::new(&staging.tmp.join("staging"))?,
        rejects,
        reasons: HashMap::new(),
        rows: 0,
        rejected: 0,
        next_person: 0,
    };
    let progress = crate::progress::Progress::new(opts.progress);
    let mut sources = Vec::new();
    // Parents before the rows that refer to them.
    for table in Table::ALL {
        let Some(path) = locate(&opts.input, table) else { continue };
        sources.push(read_file(&path, table, opts.encoding, &mut p1, &progress)?);
    }
    p1.rejects.flush().map_err(|e| CompileError::Io { path: rejects_file.clone(), source: e })?;
    let ratio = if p1.rows == 0 { 0.0 } else { p1.rejected as f64 / p1.rows as f64 };
    if ratio > opts.max_reject_ratio {
        return Err(CompileError::TooManyRejects {
            rejected: p1.rejected,
            rows: p1.rows,
            ratio,
            max: opts.max_reject_ratio,
            rejects: rejects_file,
        });
    }
    // The id maps of pass 1 are dropped here, before pass 2 needs the memory.
    let Pass1 { buckets, identity_dups, reasons, rows: rows_read, rejected, next_person: persons, .. } = p1;
    let stage_files = buckets.finish()?;
    let mut reject_reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reject_reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    // Pass 2: one shard at a time.
    let mut writer = SnapshotWriter::new(staging, retention_cutoff(today, opts.retain_lost_days), opts.threads)?;
    let shard_count = (persons as usize).div_ceil(SHARD_PERSONS as usize).max(1);
    for shard in 0..shard_count {
        let base = shard as u32 * SHARD_PERSONS;
        let len = (persons - base.min(persons)).min(SHARD_PERSONS) as usize;
        let mut records = vec![PersonRecord::default(); len];
        if let Some(file) = stage_files.get(shard) {
            stage::read_all(file, |s| attach(&mut records[(s.person - base) as usize], s.row))?;
            let _ = std::fs::remove_file(file);
        }
        for r in records {
            writer.push(r)?;
        }
        progress.note(&format!("shard {}/{shard_count} assembled", shard + 1));
    }
    let _ = std::fs::remove_dir_all(staging.tmp.join("staging"));
    let written = writer.finish()?;
    let (shards, indexes, shared_keys, counts) = (written.shards, written.indexes, written.shared_keys, written.counts);

    let anomalies = resolve_anomalies(staging, &shards, &identity_dups, &shared_keys)?;
    let anomaly_report = write_anomalies(staging, &anomalies)?;

    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        generation,
        created: now,
        delta_seq: 0,
        persons: u64::from(persons),
        retain_lost_days: opts.retain_lost_days,
        shards,
        indexes,
        sources,
        counts: counts.list(anomalies.len() as u64),
        anomalies: anomaly_report,
        checksum: String::new(),
    };
    manifest.checksum = manifest.content_checksum();
    let summary = CompileSummary {
        out: opts.out.clone(),
        manifest: manifest.clone(),
        rows_read,
        rejected,
        reject_reasons,
        anomalies,
        dropped_by_retention: counts.dropped,
        rejects_file,
        elapsed: started.elapsed(),
    };
    Ok((manifest, summary))
}

fn read_file(
    path: &Path,
    table: Table,
    encoding: Encoding,
    p1: &mut Pass1,
    progress: &crate::progress::Progress,
) -> Result<SourceFile, CompileError> {
    let mut file = ExportFile::open(path, table, encoding)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bar = progress.file(&file_name, file.size);
    let mut record = csv::StringRecord::new();
    let (mut rows, mut rejected) = (0u64, 0u64);
    while let Some(line) = file.next_record(&mut record)? {
        rows += 1;
        p1.rows += 1;
        let outcome = parse_row(table, &file.fields(&record)).and_then(|row| p1.accept(row));
        if let Err(e) = outcome {
            rejected += 1;
            p1.reject(&file_name, line, &e)?;
        }
        if rows % 65536 == 0 {
            bar.set(file.checksum().0);
        }
    }
    bar.finish();
    let (bytes, checksum) = file.checksum();
    Ok(SourceFile { file: file_name, bytes, checksum: format!("{checksum:016x}"), rows, rejected })
}

/// Put a staged row into its person record.
fn attach(r: &mut PersonRecord, row: StagedRow) {
    match row {
        StagedRow::Person(p) => {
            let children = std::mem::take(r);
            *r = PersonRecord { certificates: children.certificates, insurance: children.insurance, ..p };
            r.assistance = children.assistance;
            r.reference_numbers = children.reference_numbers;
            r.consents = children.consents;
        }
        StagedRow::Certificate(c) => r.certificates.push(c),
        StagedRow::Insurance(i) => r.insurance.push(i),
        StagedRow::Elderly(q, e) => {
            if let Some(i) = r.insurance.iter_mut().find(|i| i.qualification_id == q) {
                i.elderly = Some(Box::new(e));
            }
        }
        StagedRow::Limit(q, l) => {
            if let Some(i) = r.insurance.iter_mut().find(|i| i.qualification_id == q) {
                i.limit = Some(Box::new(l));
            }
        }
        StagedRow::SpecificDisease(q, s) => {
            if let Some(i) = r.insurance.iter_mut().find(|i| i.qualification_id == q) {
                i.specific_diseases.push(s);
            }
        }
        StagedRow::Assistance(a) => r.assistance.push(a),
        StagedRow::Ticket(a, t) => {
            if let Some(x) = r.assistance.iter_mut().find(|x| x.assistance_id == a) {
                x.tickets.push(t);
            }
        }
        StagedRow::Reference(x) => r.reference_numbers.push(x),
        StagedRow::Consent(c) => r.consents.push(c),
    }
}

/// Turn record numbers into person ids by reading the written shards.
/// Write `anomalies.csv` (one line per anomaly) and return its manifest entry.
pub(crate) fn write_anomalies(staging: &Staging, anomalies: &[Anomaly]) -> Result<FileEntry, CompileError> {
    let mut report = String::from("kind,person_ids\n");
    for a in anomalies {
        report.push_str(&format!("{},{}\n", a.kind, a.person_ids.join(" ")));
    }
    Ok(staging.write_checked(ANOMALIES_FILE, report.as_bytes(), anomalies.len() as u64)?)
}

pub(crate) fn resolve_anomalies(
    staging: &Staging,
    shards: &[FileEntry],
    identity_dups: &[(u32, u32)],
    shared_keys: &[(IndexName, Vec<u32>)],
) -> Result<Vec<Anomaly>, CompileError> {
    if identity_dups.is_empty() && shared_keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut wanted: Vec<u32> = identity_dups.iter().flat_map(|(a, b)| [*a, *b]).collect();
    wanted.extend(shared_keys.iter().flat_map(|(_, ps)| ps.iter().copied()));
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids: HashMap<u32, String> = HashMap::new();
    for (shard, entry) in shards.iter().enumerate() {
        let base = shard as u32 * SHARD_PERSONS;
        let here: Vec<u32> = wanted.iter().copied().filter(|p| p / SHARD_PERSONS == shard as u32).collect();
        if here.is_empty() {
            continue;
        }
        let path = staging.tmp.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|e| CompileError::Io { path: path.clone(), source: e })?;
        let (_, payload) = elig_engine::envelope::open(&bytes, elig_engine::envelope::FileKind::PersonShard)
            .map_err(|e| CompileError::Io { path: path.clone(), source: std::io::Error::other(e.to_string()) })?;
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let archived = rkyv::access::<ArchivedPersonShard, rkyv::rancor::Error>(&aligned)
            .map_err(|e| CompileError::Io { path: path.clone(), source: std::io::Error::other(e.to_string()) })?;
        for p in here {
            if let Some(r) = archived.records.get((p - base) as usize) {
                ids.insert(p, r.person_id.to_string());
            }
        }
    }
    let name = |p: &u32| ids.get(p).cloned().unwrap_or_else(|| format!("#{p}"));
    let mut out: Vec<Anomaly> = shared_keys
        .iter()
        .map(|(index, ps)| Anomaly { kind: format!("shared_key:{}", index.name()), person_ids: ps.iter().map(name).collect() })
        .collect();
    out.extend(identity_dups.iter().map(|(a, b)| Anomaly { kind: "duplicate_identity".into(), person_ids: vec![name(a), name(b)] }));
    Ok(out)
}
