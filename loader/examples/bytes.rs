//! Where a snapshot's bytes go, field by field: reads the first shard of a
//! snapshot, re-archives it as the loader does (names interned per shard)
//! and, for each field, re-archives it with that field emptied; the
//! difference is what the field costs out of line (its inline part is in the
//! struct sizes printed first). Indexes are listed from the manifest.
//!
//! `cargo run --release -p elig-loader --example bytes -- SNAPSHOT`

use std::collections::HashSet;
use std::sync::Arc;

use elig_engine::model::*;
use elig_engine::snapshot::{archive_shard, Snapshot};

type Edit = fn(&mut PersonRecord);

fn intern(set: &mut HashSet<Arc<str>>, s: &mut Arc<str>) {
    if s.is_empty() {
        return;
    }
    match set.get(&**s) {
        Some(shared) => *s = shared.clone(),
        None => {
            set.insert(s.clone());
        }
    }
}

fn interned(mut records: Vec<PersonRecord>) -> Vec<PersonRecord> {
    let mut set = HashSet::new();
    for r in &mut records {
        intern(&mut set, &mut r.address.town);
        for i in &mut r.insurance {
            intern(&mut set, &mut i.insurer_name);
            intern(&mut set, &mut i.insured_name);
        }
        for a in &mut r.assistance {
            intern(&mut set, &mut a.welfare_office);
            for t in &mut a.tickets {
                intern(&mut set, &mut t.institution_name);
            }
        }
    }
    records
}

fn size(records: &[PersonRecord]) -> usize {
    archive_shard(&PersonShard { records: records.to_vec() }).len()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: bytes SNAPSHOT");
    let snap = Snapshot::load(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let m = snap.manifest();
    let limit = (SHARD_PERSONS as usize).min(snap.persons() as usize);
    let records: Vec<PersonRecord> = snap
        .iter_persons()
        .take(limit)
        .map(|(_, p)| rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(p).expect("a verified record deserialises"))
        .collect();
    let n = records.len() as f64;
    let records = interned(records);
    let base = size(&records);
    let count = |f: fn(&PersonRecord) -> usize| records.iter().map(f).sum::<usize>() as f64 / n;
    println!("{} persons in shard 0: {base} bytes, {:.1} bytes/person", records.len(), base as f64 / n);
    println!(
        "per person: {:.3} certificates, {:.3} insurance, {:.3} assistance, {:.3} tickets, {:.3} references, {:.3} consents",
        count(|r| r.certificates.len()),
        count(|r| r.insurance.len()),
        count(|r| r.assistance.len()),
        count(|r| r.assistance.iter().map(|a| a.tickets.len()).sum()),
        count(|r| r.reference_numbers.len()),
        count(|r| r.consents.len()),
    );
    println!(
        "inline sizes: PersonRecord {}, Certificate {}, Insurance {}, Assistance {}, Ticket {}, ReferenceNumber {}, Consent {}, Elderly {}, Limit {}",
        size_of::<ArchivedPersonRecord>(),
        size_of::<ArchivedCertificate>(),
        size_of::<ArchivedInsurance>(),
        size_of::<ArchivedAssistance>(),
        size_of::<ArchivedTicket>(),
        size_of::<ArchivedReferenceNumber>(),
        size_of::<ArchivedConsent>(),
        size_of::<ArchivedElderly>(),
        size_of::<ArchivedLimit>(),
    );
    let fields: Vec<(&str, Edit)> = vec![
        ("person_id", |r| r.person_id.clear()),
        ("name", |r| r.name.clear()),
        ("name_kana", |r| r.name_kana.clear()),
        ("other_name", |r| r.other_name = None),
        ("address", |r| r.address = Address::default()),
        ("post_number", |r| r.post_number.clear()),
        ("certificates (all)", |r| r.certificates.clear()),
        ("certificate serial", |r| r.certificates.iter_mut().for_each(|c| c.serial_number.clear())),
        ("certificate processing", |r| r.certificates.iter_mut().for_each(|c| c.processing_number.clear())),
        ("insurance (all)", |r| r.insurance.clear()),
        ("insurance qualification_id", |r| r.insurance.iter_mut().for_each(|i| i.qualification_id.clear())),
        ("insurance insurer_number", |r| r.insurance.iter_mut().for_each(|i| i.insurer_number.clear())),
        ("insurance card_symbol", |r| r.insurance.iter_mut().for_each(|i| i.card_symbol.clear())),
        ("insurance card_number", |r| r.insurance.iter_mut().for_each(|i| i.card_number.clear())),
        ("insurance branch_number", |r| r.insurance.iter_mut().for_each(|i| i.branch_number.clear())),
        ("insurance insured_name", |r| r.insurance.iter_mut().for_each(|i| i.insured_name = Arc::from(""))),
        ("insurance insurer_name", |r| r.insurance.iter_mut().for_each(|i| i.insurer_name = Arc::from(""))),
        ("insurance elderly", |r| r.insurance.iter_mut().for_each(|i| i.elderly = None)),
        ("insurance limit", |r| r.insurance.iter_mut().for_each(|i| i.limit = None)),
        ("insurance specific_diseases", |r| r.insurance.iter_mut().for_each(|i| i.specific_diseases.clear())),
        ("assistance (all)", |r| r.assistance.clear()),
        ("assistance tickets", |r| r.assistance.iter_mut().for_each(|a| a.tickets.clear())),
        ("reference_numbers", |r| r.reference_numbers.clear()),
        ("consents", |r| r.consents.clear()),
    ];
    println!("{:32} {:>14} {:>12}", "field emptied", "bytes saved", "per person");
    for (name, edit) in fields {
        let mut edited = records.clone();
        edited.iter_mut().for_each(edit);
        let saved = base - size(&interned(edited));
        println!("{name:32} {saved:>14} {:>12.1}", saved as f64 / n);
    }
    let persons = m.persons as f64;
    let shards: u64 = m.shards.iter().map(|s| s.bytes).sum();
    println!("whole snapshot, {} persons: shards {shards} bytes ({:.1}/person)", m.persons, shards as f64 / persons);
    for (name, e) in &m.indexes {
        println!("  index {:18} {:>12} bytes {:>10} keys {:>6.1}/person", name.name(), e.bytes, e.count, e.bytes as f64 / persons);
    }
    let all: u64 = shards + m.indexes.iter().map(|(_, e)| e.bytes).sum::<u64>();
    println!("  total {all} bytes, {:.1} bytes/person", all as f64 / persons);
}
