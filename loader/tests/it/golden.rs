//! The checked-in snapshot of format version 1 (`loader/tests/golden/v1`,
//! 60 generated persons): a build must read it, or refuse it with a clear
//! `Version` error once the format moves on (then add `golden/v2`).

use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::lookup::{Clock, View};
use elig_engine::snapshot::{Snapshot, SnapshotError};

fn golden() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

#[test]
fn version_1_snapshot_is_read_or_refused_by_version() {
    match Snapshot::load(&golden()) {
        Ok(snap) => {
            assert_eq!(FORMAT_VERSION, 1);
            assert_eq!((snap.generation(), snap.persons()), (1, 60));
            // Ask for every insurance card the fixture holds: each must be found.
            let view = View::new(&snap);
            let mut asked = 0;
            for (_, p) in snap.iter_persons() {
                for i in p.insurance.iter() {
                    let birth = p.birth_date.to_native().to_string();
                    let q = crate::fixture::card(&i.insurer_number, &i.card_symbol, &i.card_number, &i.branch_number, &birth);
                    let a = view.answer_document(q.to_string().as_bytes(), Clock::at(20261122100000));
                    assert!(matches!(a.validity(), Some("1" | "2" | "3")), "{a:?}");
                    assert_eq!(a.message_body.result_list[0].name.as_deref(), Some(p.name.as_str()));
                    asked += 1;
                }
            }
            assert!(asked >= 60);
        }
        Err(SnapshotError::Version { found: 1, expected }) => assert_ne!(expected, 1),
        Err(other) => panic!("the version 1 fixture must load or be refused by version: {other}"),
    }
}
