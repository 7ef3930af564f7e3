//! The checked-in snapshots (`loader/tests/golden/vN`, 60 generated persons,
//! `elig-loader gen --persons 60 --seed 3 --today 20261122`, compiled with
//! `--generation 1 --today 20261122`): this build reads the one of its own
//! format version and answers from it, and refuses the older one with a clear
//! `Version` error.

use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::lookup::{Clock, View};
use elig_engine::snapshot::{Snapshot, SnapshotError};

fn golden(version: u32) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}"))
}

#[test]
fn the_golden_snapshot_of_this_version_is_read_and_answers() {
    let snap = Snapshot::load(&golden(FORMAT_VERSION)).expect("the golden snapshot of this build's version");
    assert_eq!((snap.generation(), snap.persons()), (1, 60));
    // Ask for every insurance card the fixture holds: each must be found.
    let view = View::new(&snap);
    let mut asked = 0;
    for (_, p) in snap.iter_persons() {
        for i in p.insurance.iter() {
            let birth = p.birth_date.to_native().to_string();
            let q =
                crate::fixture::card(&i.insurer_number.to_string(), &i.card_symbol, &i.card_number, &i.branch_number.to_string(), &birth);
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
fn a_version_1_snapshot_is_refused_by_version() {
    match Snapshot::load(&golden(1)) {
        Err(SnapshotError::Version { found: 1, expected }) => assert_eq!(expected, FORMAT_VERSION),
        Err(other) => panic!("the version 1 fixture must be refused by version: {other}"),
        Ok(_) => panic!("the version 1 fixture was read by a version {FORMAT_VERSION} build"),
    }
}
