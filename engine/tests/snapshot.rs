//! The snapshot reader on bytes in memory: the checked-in golden snapshots
//! (`loader/tests/golden/vN`, 60 generated persons, `elig-loader gen
//! --persons 60 --seed 3 --today 20261122`, compiled with `--generation 1
//! --today 20261122`) are read, answered from, and refused with a clear
//! error once any byte of them is wrong. No loader, no files written.

use std::path::{Path, PathBuf};

use elig_engine::envelope::{FOOTER_LEN, FORMAT_VERSION};
use elig_engine::lookup::{Clock, View};
use elig_engine::manifest::{Manifest, ANOMALIES_FILE, MANIFEST_FILE};
use elig_engine::snapshot::{Snapshot, SnapshotError, SnapshotFiles};
use elig_engine::source::MemoryFiles;

fn golden_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../loader/tests/golden/v{version}"))
}

/// Every file of a golden snapshot, read into memory.
fn golden(version: u32) -> MemoryFiles {
    std::fs::read_dir(golden_dir(version))
        .unwrap()
        .map(|f| {
            let path = f.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

fn label() -> &'static Path {
    Path::new("golden")
}

fn load(files: &MemoryFiles) -> Result<Snapshot, SnapshotError> {
    Snapshot::from_memory(label(), files)
}

/// Edit the manifest and give it a fresh checksum, as a loader would have
/// written it: for what lies beyond the manifest's own check.
fn reseal_manifest(files: &mut MemoryFiles, edit: impl FnOnce(&mut Manifest)) {
    let mut m: Manifest = serde_json::from_slice(&files[MANIFEST_FILE]).unwrap();
    edit(&mut m);
    files.insert(MANIFEST_FILE.into(), m.encode());
}

fn card(insurer: &str, symbol: &str, number: &str, branch: &str, birth: &str) -> serde_json::Value {
    serde_json::json!({"MedicalInstitutionCode": "1310000011", "QualificationConfirmationDate": "20261122",
        "InsuranceCard": {"InsurerNumber": insurer, "InsuredCardSymbol": symbol, "InsuredIdentificationNumber": number,
                          "InsuredBranchNumber": branch, "Birthdate": birth}})
}

#[test]
fn the_golden_snapshot_of_this_version_is_read_from_memory_and_answers() {
    let snap = load(&golden(FORMAT_VERSION)).expect("the golden snapshot of this build's version");
    assert_eq!((snap.generation(), snap.persons(), snap.dir()), (1, 60, label()));
    let view = View::new(&snap);
    let mut asked = 0;
    for (_, p) in snap.iter_persons() {
        for i in p.insurance.iter() {
            let birth = p.birth_date.to_native().to_string();
            let q = card(&i.insurer_number.to_string(), &i.card_symbol, &i.card_number, &i.branch_number.to_string(), &birth);
            let a = view.answer_document(q.to_string().as_bytes(), Clock::at(20261122100000));
            assert!(matches!(a.validity(), Some("1" | "2" | "3")), "{a:?}");
            let e = &a.message_body.result_list[0];
            assert_eq!(e.name.as_deref(), Some(p.name.as_str()));
            // Half-width katakana and spaces, read back from the archived form.
            let kana = e.name_kana.as_deref().unwrap_or_default();
            assert!(!kana.is_empty() && kana.chars().all(|c| c == ' ' || ('\u{FF61}'..='\u{FF9F}').contains(&c)), "{kana:?}");
            asked += 1;
        }
    }
    assert!(asked >= 60);
}

#[test]
fn memory_and_the_directory_read_the_same_snapshot() {
    let from_disk = Snapshot::load(&golden_dir(FORMAT_VERSION)).unwrap();
    let in_memory = load(&golden(FORMAT_VERSION)).unwrap();
    assert_eq!(from_disk.manifest(), in_memory.manifest());
    assert_eq!(from_disk.mapped_bytes(), in_memory.mapped_bytes());
    let ids = |s: &Snapshot| s.iter_persons().map(|(_, p)| p.person_id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&from_disk), ids(&in_memory));
}

#[test]
fn a_version_1_snapshot_is_refused_by_version() {
    match load(&golden(1)) {
        Err(SnapshotError::Version { found: 1, expected }) => assert_eq!(expected, FORMAT_VERSION),
        Err(other) => panic!("the version 1 fixture must be refused by version: {other}"),
        Ok(_) => panic!("the version 1 fixture was read by a version {FORMAT_VERSION} build"),
    }
}

#[test]
fn a_flipped_byte_is_a_checksum_mismatch() {
    let mut files = golden(FORMAT_VERSION);
    files.get_mut("persons-00000.rkyv").unwrap()[100] ^= 0xAA;
    let opened = SnapshotFiles::from_memory(label(), &files).expect("cheap open does not read payloads");
    let err = opened.verify().unwrap_err();
    assert!(matches!(err, SnapshotError::Envelope { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch") && err.to_string().contains("persons-00000.rkyv"), "{err}");
}

#[test]
fn a_truncated_file_is_refused_at_open() {
    let mut files = golden(FORMAT_VERSION);
    let file = files.get_mut("index-insurance.rkyv").unwrap();
    file.truncate(file.len() - 9);
    let err = SnapshotFiles::from_memory(label(), &files).unwrap_err();
    assert!(err.to_string().contains("index-insurance.rkyv"), "{err}");
}

#[test]
fn a_wrong_format_version_is_refused() {
    let mut files = golden(FORMAT_VERSION);
    let now = format!("\"format_version\": {FORMAT_VERSION}");
    let text = String::from_utf8(files[MANIFEST_FILE].clone()).unwrap().replace(&now, "\"format_version\": 9");
    files.insert(MANIFEST_FILE.into(), text.into_bytes());
    let err = load(&files).unwrap_err();
    assert!(matches!(err, SnapshotError::Version { found: 9, expected: FORMAT_VERSION }), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let mut files = golden(FORMAT_VERSION);
    files.remove("index-serial.rkyv");
    let err = load(&files).unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }) && err.to_string().contains("index-serial.rkyv"), "{err}");
}

#[test]
fn the_manifest_checksums_must_match_the_files() {
    let mut files = golden(FORMAT_VERSION);
    reseal_manifest(&mut files, |m| m.shards[0].checksum = "0000000000000000".into());
    let err = load(&files).unwrap_err();
    assert!(matches!(err, SnapshotError::Mismatch { what: "checksum", .. }), "{err}");
}

#[test]
fn indexes_are_checked_against_their_own_manifest_entries_in_any_order() {
    let mut files = golden(FORMAT_VERSION);
    reseal_manifest(&mut files, |m| m.indexes.reverse());
    load(&files).expect("the same files, listed in another order, verify");
    // A wrong checksum is still caught, and named on the index it belongs to.
    let mut file = String::new();
    reseal_manifest(&mut files, |m| {
        m.indexes[0].1.checksum = "0000000000000000".into();
        file = m.indexes[0].1.file.clone();
    });
    match load(&files).unwrap_err() {
        SnapshotError::Mismatch { path, what: "checksum", .. } => assert!(path.ends_with(&file), "{}", path.display()),
        other => panic!("expected a checksum mismatch on {file}, got {other}"),
    }
}

/// A raised `delta_seq` would have a restarted server skip acknowledged
/// batches: the manifest's own checksum refuses it.
#[test]
fn an_edited_delta_seq_is_refused() {
    let mut files = golden(FORMAT_VERSION);
    let text = String::from_utf8(files[MANIFEST_FILE].clone()).unwrap();
    assert!(text.contains("\"delta_seq\": 0"), "{text}");
    files.insert(MANIFEST_FILE.into(), text.replace("\"delta_seq\": 0", "\"delta_seq\": 4").into_bytes());
    let err = load(&files).unwrap_err();
    assert!(matches!(err, SnapshotError::Manifest { .. }) && err.to_string().contains("manifest checksum mismatch"), "{err}");
}

#[test]
fn an_edited_anomaly_report_is_refused() {
    let mut files = golden(FORMAT_VERSION);
    files.insert(ANOMALIES_FILE.into(), b"kind,person_ids\nshared_serial,P1 P2\n".to_vec());
    let err = load(&files).unwrap_err();
    assert!(matches!(err, SnapshotError::Mismatch { .. }) && err.to_string().contains(ANOMALIES_FILE), "{err}");
    files.remove(ANOMALIES_FILE);
    let err = load(&files).unwrap_err();
    assert!(err.to_string().contains(ANOMALIES_FILE), "{err}");
}

/// Byte offsets to flip in a file of `len` bytes: every byte of small files
/// (the manifest, the anomaly report, the indexes, every footer), a stride
/// through a large payload.
fn offsets(file: &str, len: usize) -> Vec<usize> {
    if !file.ends_with(".rkyv") || len <= 4096 {
        return (0..len).collect();
    }
    let footer = len - FOOTER_LEN;
    (0..footer).step_by(61).chain(footer..len).collect()
}

/// A flipped byte anywhere in any file, manifest and anomaly report
/// included, is refused by open or verify (the start-up path over files is
/// `loader/tests/it/snapshot_files.rs`).
#[test]
fn a_flipped_byte_in_every_file_is_refused() {
    let original = golden(FORMAT_VERSION);
    assert!(original.contains_key(MANIFEST_FILE) && original.contains_key(ANOMALIES_FILE), "{:?}", original.keys());
    assert!(original.len() >= 12, "manifest, anomalies, a shard and nine indexes: {:?}", original.keys());
    let mut flipped = 0;
    for (file, bytes) in &original {
        for at in offsets(file, bytes.len()) {
            let mut files = original.clone();
            files.get_mut(file).unwrap()[at] ^= 0x29; // a space becomes a tab, a digit a letter or a sign
            assert!(load(&files).is_err(), "{file}: byte {at} flipped passes verify");
            flipped += 1;
        }
    }
    assert!(flipped > 5000, "{flipped}");
    load(&original).expect("the untouched files verify");
}
