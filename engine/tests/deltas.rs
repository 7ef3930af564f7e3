//! Delta batches over the golden snapshot held in memory: what an apply
//! acknowledges, and every refusal as a typed error with its line, seq,
//! field and value. No loader, no files.

mod common;

use common::engine;
use elig_engine::delta::{BatchError, LineError};
use elig_engine::engine::DeltaError;
use elig_engine::overlay::ApplyError;
use elig_engine::table::Table;
use elig_wire::report::DeltaAck;

fn batch(seq: u64, lines: &[&str]) -> Vec<u8> {
    let mut text = format!("{{\"seq\": {seq}, \"created\": \"20261122101500\"}}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    text.into_bytes()
}

const NEW_PERSON: &str =
    r#"{"op": "upsert", "table": "persons", "row": {"person_id": "PNEW", "name": "山田　花子", "sex": "2", "birth_date": "19900101"}}"#;

#[test]
fn a_batch_is_acknowledged_once_and_a_repeat_as_a_duplicate() {
    let e = engine();
    let ack = e.apply(&batch(1, &[NEW_PERSON])).unwrap();
    assert_eq!(ack, DeltaAck { seq: 1, duplicate: false, rows: 1, generation: 1 });
    let status = e.status();
    assert_eq!((status.delta_seq, status.overlay.changed_rows, status.overlay.persons), (1, 1, 1));
    assert_eq!(e.apply(&batch(1, &[NEW_PERSON])).unwrap(), DeltaAck { duplicate: true, ..ack });
}

#[test]
fn refusals_are_typed_with_their_line_seq_field_and_value() {
    let e = engine();
    let missing = r#"{"op": "delete", "table": "persons", "key": {"person_id": "NOPE"}}"#;
    match e.apply(&batch(1, &[NEW_PERSON, missing])).unwrap_err() {
        DeltaError::Apply { seq: 1, source: ApplyError::Missing { line: 3, what: "person_id", key } } => assert_eq!(key, "NOPE"),
        other => panic!("expected a missing person on line 3: {other}"),
    }
    assert_eq!(e.status().delta_seq, 0, "nothing of a refused batch is applied");
    let bad_table = r#"{"op": "delete", "table": "people", "key": {}}"#;
    match e.apply(&batch(1, &[bad_table])).unwrap_err() {
        DeltaError::Parse(err) => {
            assert_eq!(err, BatchError { line: 2, reason: LineError::Table { value: "people".into() } });
            assert_eq!(err.to_string(), "line 2: field 'table' value 'people': unknown table");
        }
        other => panic!("expected an unknown table: {other}"),
    }
    let bad_key =
        r#"{"op": "delete", "table": "consents", "key": {"institution_code": "3410712362", "person_id": "P1", "kind": "dental"}}"#;
    match e.apply(&batch(1, &[bad_key])).unwrap_err() {
        DeltaError::Parse(BatchError { line: 2, reason: LineError::Key { table: Table::Consents, column: "kind", value, .. } }) => {
            assert_eq!(value, "dental")
        }
        other => panic!("expected an unknown consent kind: {other}"),
    }
    assert!(matches!(e.apply(&batch(2, &[NEW_PERSON])), Err(DeltaError::Gap { expected: 1, got: 2 })));
    e.apply(&batch(1, &[NEW_PERSON])).unwrap();
    let other = r#"{"op": "upsert", "table": "persons", "row": {"person_id": "POTHER", "name": "山田　花子", "sex": "2", "birth_date": "19900101"}}"#;
    assert!(matches!(e.apply(&batch(1, &[other])), Err(DeltaError::Conflict { seq: 1, .. })));
}

#[test]
fn a_wait_for_a_seq_is_woken_by_the_batch_and_gives_up_at_its_deadline() {
    use std::time::{Duration, Instant};
    let e = std::sync::Arc::new(engine());
    assert!(e.wait_for_seq(0, Instant::now()), "seq 0 is there already");
    assert!(!e.wait_for_seq(1, Instant::now() + Duration::from_millis(50)), "no batch: the deadline ends the wait");
    let applier = {
        let e = e.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            e.apply(&batch(1, &[NEW_PERSON])).unwrap();
        })
    };
    let started = Instant::now();
    assert!(e.wait_for_seq(1, started + Duration::from_secs(60)), "the batch arrived");
    // Woken by the batch, long before the deadline.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    applier.join().unwrap();
}
