//! Corruption of a published snapshot on disk is refused by verify and at
//! start. The reader's checks one by one run on bytes in memory in the
//! engine's own tests (`engine/tests/snapshot.rs`).

use crate::fixture::*;
use elig_engine::engine::Engine;
use elig_engine::manifest::{ANOMALIES_FILE, MANIFEST_FILE};
use elig_engine::snapshot::{Snapshot, SnapshotError};

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
