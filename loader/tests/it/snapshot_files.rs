//! Corruption of a published snapshot is refused by verify with a clear error.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use crate::fixture::*;
use elig_engine::engine::Engine;
use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::manifest::{ANOMALIES_FILE, MANIFEST_FILE};
use elig_engine::snapshot::{Snapshot, SnapshotError, SnapshotFiles};

fn small() -> Compiled {
    let mut e = Export::default();
    for i in 0..50 {
        e.person(&format!("P{i}"), "山田　太郎", &format!("1980{:02}01", i % 12 + 1));
    }
    build(&e)
}

/// Copy the snapshot to a scratch directory so the original stays intact.
fn copy(c: &Compiled) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(c.path()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
    }
    d
}

#[test]
fn a_flipped_byte_is_a_checksum_mismatch() {
    let c = small();
    let d = copy(&c);
    let path = d.path().join("persons-00000.rkyv");
    let mut f = OpenOptions::new().write(true).read(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(&[0xAA]).unwrap();
    drop(f);
    let opened = SnapshotFiles::open(d.path()).expect("cheap open does not read payloads");
    let err = opened.verify().unwrap_err();
    assert!(matches!(err, SnapshotError::Envelope { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch") && err.to_string().contains("persons-00000.rkyv"), "{err}");
}

#[test]
fn a_truncated_file_is_refused_at_open() {
    let c = small();
    let d = copy(&c);
    let path = d.path().join("index-insurance.rkyv");
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 9).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(err.to_string().contains("index-insurance.rkyv"), "{err}");
}

#[test]
fn a_wrong_format_version_is_refused() {
    let c = small();
    let d = copy(&c);
    let manifest = d.path().join("manifest.json");
    let now = format!("\"format_version\": {FORMAT_VERSION}");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(&now, "\"format_version\": 9");
    std::fs::write(&manifest, text).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Version { found: 9, expected: FORMAT_VERSION }), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let c = small();
    let d = copy(&c);
    std::fs::remove_file(d.path().join("index-serial.rkyv")).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(err.to_string().contains("index-serial.rkyv"), "{err}");
}

#[test]
fn the_manifest_checksums_must_match_the_files() {
    let c = small();
    let d = copy(&c);
    reseal_manifest(d.path(), |m| m.shards[0].checksum = "0000000000000000".into());
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Mismatch { what: "checksum", .. }), "{err}");
}

#[test]
fn indexes_are_checked_against_their_own_manifest_entries_in_any_order() {
    let c = small();
    let d = copy(&c);
    reseal_manifest(d.path(), |m| m.indexes.reverse());
    Snapshot::load(d.path()).expect("the same files, listed in another order, verify");
    // A wrong checksum is still caught, and named on the index it belongs to.
    let mut file = String::new();
    reseal_manifest(d.path(), |m| {
        m.indexes[0].1.checksum = "0000000000000000".into();
        file = m.indexes[0].1.file.clone();
    });
    match Snapshot::load(d.path()).unwrap_err() {
        SnapshotError::Mismatch { path, what: "checksum", .. } => assert!(path.ends_with(&file), "{}", path.display()),
        other => panic!("expected a checksum mismatch on {file}, got {other}"),
    }
}

#[test]
fn a_verified_snapshot_reads_every_record() {
    let c = small();
    assert_eq!(c.snapshot.persons(), 50);
    let ids: Vec<String> = c.snapshot.iter_persons().map(|(_, p)| p.person_id.to_string()).collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(ids[7], "P7");
}

/// Byte offsets to flip in a file of `len` bytes: every byte of small files
/// (the manifest, the anomaly report, the indexes, every footer), a stride
/// through a large payload.
fn offsets(file: &str, len: usize) -> Vec<usize> {
    if !file.ends_with(".rkyv") || len <= 4096 {
        return (0..len).collect();
    }
    let footer = len - elig_engine::envelope::FOOTER_LEN;
    (0..footer).step_by(61).chain(footer..len).collect()
}

/// The acceptance test: a flipped byte anywhere in any file of a
/// snapshot, manifest and anomaly report included, is refused by verify and
/// by the start-up path (open with a delta log), before anything serves.
#[test]
fn a_flipped_byte_in_every_file_is_refused_by_verify_and_at_start() {
    let mut e = Export::default();
    for i in 0..20 {
        e.person(&format!("P{i}"), "山田　太郎", &format!("1980{:02}01", i % 12 + 1));
    }
    let c = build(&e);
    let d = copy(&c);
    let mut files: Vec<String> =
        std::fs::read_dir(d.path()).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert!(files.iter().any(|f| f == MANIFEST_FILE) && files.iter().any(|f| f == ANOMALIES_FILE), "{files:?}");
    assert!(files.len() >= 12, "manifest, anomalies, a shard and nine indexes: {files:?}");
    let log_dir = tempfile::tempdir().unwrap();
    let mut flipped = 0;
    for file in &files {
        let path = d.path().join(file);
        let original = std::fs::read(&path).unwrap();
        for at in offsets(file, original.len()) {
            let mut bytes = original.clone();
            bytes[at] ^= 0x29; // a space becomes a tab, a digit a letter or a sign
            std::fs::write(&path, &bytes).unwrap();
            assert!(Snapshot::load(d.path()).is_err(), "{file}: byte {at} flipped passes verify");
            flipped += 1;
        }
        // At start only a sample: each start creates and locks a delta log.
        for at in [0, original.len() / 2, original.len() - 1] {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let log = log_dir.path().join(format!("{file}-{at}.log"));
            assert!(Engine::open_with_log(d.path(), &log).is_err(), "{file}: byte {at} flipped passes start-up");
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(flipped > 5000, "{flipped}");
    Snapshot::load(d.path()).expect("the restored files verify");
}

/// The example: a manifest whose `delta_seq` was raised would have a
/// restarted server skip acknowledged batches. It is refused.
#[test]
fn an_edited_delta_seq_is_refused() {
    let c = small();
    let d = copy(&c);
    let manifest = d.path().join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("\"delta_seq\": 0"), "{text}");
    std::fs::write(&manifest, text.replace("\"delta_seq\": 0", "\"delta_seq\": 4")).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Manifest { .. }) && err.to_string().contains("manifest checksum mismatch"), "{err}");
    let logs = tempfile::tempdir().unwrap();
    assert!(Engine::open_with_log(d.path(), &logs.path().join("deltas.log")).is_err());
}

#[test]
fn an_edited_anomaly_report_is_refused() {
    let c = small();
    let d = copy(&c);
    let report = d.path().join(ANOMALIES_FILE);
    std::fs::write(&report, "kind,person_ids\nshared_serial,P1 P2\n").unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Mismatch { .. }) && err.to_string().contains(ANOMALIES_FILE), "{err}");
    std::fs::remove_file(&report).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(err.to_string().contains(ANOMALIES_FILE), "{err}");
}
