//! Corruption of a published snapshot is refused by verify with a clear error.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use crate::fixture::*;
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
    let text = std::fs::read_to_string(&manifest).unwrap().replace("\"format_version\": 1", "\"format_version\": 2");
    std::fs::write(&manifest, text).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Version { found: 2, expected: 1 }), "{err}");
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
    let manifest = d.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["shards"][0]["checksum"] = serde_json::json!("0000000000000000");
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
    let err = Snapshot::load(d.path()).unwrap_err();
    assert!(matches!(err, SnapshotError::Mismatch { what: "checksum", .. }), "{err}");
}

#[test]
fn indexes_are_checked_against_their_own_manifest_entries_in_any_order() {
    let c = small();
    let d = copy(&c);
    let manifest = d.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let indexes = m["indexes"].as_array_mut().expect("indexes are a list");
    indexes.reverse();
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
    Snapshot::load(d.path()).expect("the same files, listed in another order, verify");
    // A wrong checksum is still caught, and named on the index it belongs to.
    m["indexes"][0][1]["checksum"] = serde_json::json!("0000000000000000");
    let file = m["indexes"][0][1]["file"].as_str().unwrap().to_string();
    std::fs::write(&manifest, serde_json::to_string(&m).unwrap()).unwrap();
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
