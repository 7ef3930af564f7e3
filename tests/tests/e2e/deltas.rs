//! Delta batches over QUIC (issue 4): acknowledged batches are visible to
//! the next request, with the answer's DeltaSequence; gaps, repeats and bad
//! lines are answered with clear errors and change nothing.

use elig_client::{Client, ClientError};
use elig_engine::answer::Answer;
use elig_server::config::Limits;
use elig_tests::{batch, delete, fixture, insurance_row, upsert, As, Keys, TestServer, Writable};
use serde_json::json;

/// A query for a new card of the fixture's valid-card person.
fn new_card(number: &str) -> String {
    let k = &fixture().keys;
    Keys::card_query(&(k.card_valid.0.clone(), "Z".into(), number.into(), "01".into(), k.card_valid.4), k.institution(), number)
}

/// An insurance row giving the fixture's valid-card person the card `number`.
fn new_card_row(qualification_id: &str, number: &str) -> serde_json::Value {
    let k = &fixture().keys;
    insurance_row(qualification_id, &k.card_valid_person, &k.card_valid.0, "Z", number)
}

async fn ask(client: &Client, query: &str) -> Answer {
    client.lookup(query.as_bytes()).await.unwrap()
}

fn refused(e: ClientError) -> (String, String) {
    match e {
        ClientError::Refused { code, message } => (code, message),
        other => panic!("a refusal expected, got {other}"),
    }
}

#[tokio::test]
async fn an_acknowledged_batch_is_seen_by_the_next_lookup() {
    let w = Writable::fixture();
    let srv = TestServer::start_writable(&w).await;
    let keys = &fixture().keys;
    let op = srv.client(As::Operator).await;
    let central = srv.client(As::Central).await;

    let before = ask(&central, &new_card("900001")).await;
    assert_ne!(before.validity(), Some("1"));
    assert_eq!(before.message_header.delta_sequence, "0");

    let ack = op.delta(&batch(1, &[upsert("insurance", new_card_row("Q-D1", "900001"))])).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate, ack.rows, ack.generation), (1, false, 1, w.engine.pin().id()));
    // Seen at once, by another connection, with the sequence in the header.
    let a = ask(&central, &new_card("900001")).await;
    assert_eq!(a.validity(), Some("1"), "{a:?}");
    assert_eq!(a.message_header.delta_sequence, "1");
    let (answers, summary) = central.bulk(vec![new_card("900001").into_bytes()]).await.unwrap().collect().await.unwrap();
    assert_eq!((answers[0].validity(), summary.delta_seq), (Some("1"), 1));

    // Batch 2: rename the person, take the new card away again.
    let rename = upsert(
        "persons",
        json!({"person_id": keys.card_valid_person, "name": "差分　太郎", "sex": "1", "birth_date": keys.card_valid.4.to_string()}),
    );
    let ack = op.delta(&batch(2, &[rename, delete("insurance", json!({"qualification_id": "Q-D1"}))])).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate, ack.rows), (2, false, 2));
    let gone = ask(&central, &new_card("900001")).await;
    assert_ne!(gone.validity(), Some("1"));
    let a = ask(&central, &keys.valid_card_query(keys.institution(), "renamed")).await;
    assert_eq!(a.validity(), Some("1"));
    assert_eq!(a.message_body.result_list[0].name.as_deref(), Some("差分　太郎"));
    assert_eq!(a.message_header.delta_sequence, "2");

    let s = op.status().await.unwrap().engine;
    assert_eq!((s.delta_seq, s.snapshot_delta_seq, s.overlay.changed_rows, s.overlay.persons), (2, 0, 3, 1));
    assert!(s.overlay.bytes > 0);
    assert_eq!(s.delta_log.as_deref(), Some(w.log.to_str().unwrap()));
    // The shared fixture engine was not touched.
    assert_eq!(fixture().engine.pin().overlay.visible(), 0);
}

#[tokio::test]
async fn gaps_repeats_and_bad_lines_change_nothing() {
    let w = Writable::fixture();
    let srv = TestServer::start_writable(&w).await;
    let op = srv.client(As::Operator).await;
    let central = srv.client(As::Central).await;
    let b1 = batch(1, &[upsert("insurance", new_card_row("Q-G1", "910001"))]);
    op.delta(&b1).await.unwrap();

    // A repeat is acknowledged again without effect.
    let again = op.delta(&b1).await.unwrap();
    assert_eq!((again.seq, again.duplicate, again.rows), (1, true, 1));
    let status = |s: elig_wire::report::StatusReport| (s.engine.delta_seq, s.engine.overlay.changed_rows);
    assert_eq!(status(op.status().await.unwrap()), (1, 1));

    // A different batch under seq 1 is refused (ED04), naming both digests; it is not applied.
    let other = batch(1, &[upsert("insurance", new_card_row("Q-G5", "910005"))]);
    let (code, message) = refused(op.delta(&other).await.unwrap_err());
    assert_eq!(code, "ED04");
    let digest = |b: &[u8]| elig_engine::delta::Digest::of_batch(b).unwrap();
    assert_eq!(
        message,
        format!(
            "batch 1 refused: a different batch was applied under seq 1 (applied digest {}, this batch's digest {}); send new changes under a new seq; nothing of it was applied",
            digest(&b1),
            digest(&other)
        )
    );
    assert_ne!(ask(&central, &new_card("910005")).await.validity(), Some("1"));
    assert_eq!(status(op.status().await.unwrap()), (1, 1));

    // A gap.
    let (code, message) = refused(op.delta(&batch(3, &[upsert("insurance", new_card_row("Q-G3", "910003"))])).await.unwrap_err());
    assert_eq!(code, "ED02");
    assert!(message.contains("batch 3 refused: sequence gap, expected 2") && message.contains("nothing of it was applied"), "{message}");

    // One bad line refuses the whole batch: its good line 2 is not applied.
    let bad = batch(
        2,
        &[
            upsert("insurance", new_card_row("Q-G2", "910002")),
            upsert("insurance", insurance_row("Q-G4", "NO-SUCH-PERSON", &fixture().keys.card_valid.0, "Z", "910004")),
        ],
    );
    let (code, message) = refused(op.delta(&bad).await.unwrap_err());
    assert_eq!(code, "ED01");
    assert!(message.contains("line 3") && message.contains("'NO-SUCH-PERSON' does not exist"), "{message}");
    let mut invalid_row = new_card_row("Q-G2", "910002");
    invalid_row["insurer_number"] = json!("06130489");
    let (code, message) = refused(op.delta(&batch(2, &[upsert("insurance", invalid_row)])).await.unwrap_err());
    assert_eq!(code, "ED01");
    assert!(message.contains("line 2") && message.contains("insurer_number"), "{message}");
    let (code, message) = refused(op.delta(b"not json\n").await.unwrap_err());
    assert_eq!(code, "ED01");
    assert!(message.contains("line 1"), "{message}");

    assert_eq!(status(op.status().await.unwrap()), (1, 1));
    for card in ["910002", "910003", "910004"] {
        assert_ne!(ask(&central, &new_card(card)).await.validity(), Some("1"), "{card} must not be applied");
    }
    assert_eq!(ask(&central, &new_card("910001")).await.message_header.delta_sequence, "1");

    // The sequence did not move: batch 2 is the next one.
    let ack = op.delta(&batch(2, &[upsert("insurance", new_card_row("Q-G2", "910002"))])).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate), (2, false));
    assert_eq!(ask(&central, &new_card("910002")).await.validity(), Some("1"));
}

#[tokio::test]
async fn only_operators_send_deltas_and_swaps() {
    let w = Writable::fixture();
    let srv = TestServer::start_writable(&w).await;
    let b1 = batch(1, &[upsert("insurance", new_card_row("Q-R1", "920001"))]);
    let snapshot = fixture().snapshot.display().to_string();
    for who in [As::Central, As::Institution] {
        let client = srv.client(who).await;
        let (code, message) = refused(client.delta(&b1).await.unwrap_err());
        assert_eq!(code, "EP01");
        assert!(message.contains("delta needs an operator certificate"), "{message}");
        let (code, message) = refused(client.swap(&snapshot).await.unwrap_err());
        assert_eq!(code, "EP01");
        assert!(message.contains("swap needs an operator certificate"), "{message}");
    }
    assert_eq!(w.engine.pin().overlay.visible(), 0);
    let op = srv.client(As::Operator).await;
    assert_eq!(op.delta(&b1).await.unwrap().seq, 1);
}

#[tokio::test]
async fn batches_larger_than_a_query_frame_are_taken_up_to_their_own_limit() {
    let w = Writable::fixture();
    let limits = Limits { max_delta_bytes: 256 * 1024, ..Limits::default() };
    let srv = TestServer::start_on(w.engine.clone(), Some(w.log.clone()), limits, false, false).await;
    let op = srv.client(As::Operator).await;
    // 1500 new persons: about 150 KB, over the 64 KiB query frame limit.
    let persons: Vec<_> = (0..1500)
        .map(|i| upsert("persons", json!({"person_id": format!("NEW-{i:05}"), "name": "新規　花子", "sex": "2", "birth_date": "19900101"})))
        .collect();
    let big = batch(1, &persons);
    assert!(big.len() > 100 * 1024);
    let ack = op.delta(&big).await.unwrap();
    assert_eq!((ack.seq, ack.rows), (1, 1500));
    // Over max_delta_bytes: refused from the frame header.
    let more: Vec<_> = persons.iter().cycle().take(3000).cloned().collect();
    let (code, message) = refused(op.delta(&batch(2, &more)).await.unwrap_err());
    assert_eq!(code, "EF02");
    assert!(message.contains("exceeds the limit of 262144 bytes"), "{message}");
    // A non-operator's delta frame is held to the query limit.
    let central = srv.client(As::Central).await;
    let (code, _) = refused(central.delta(&big).await.unwrap_err());
    assert_eq!(code, "EF02");
    assert_eq!(w.engine.pin().overlay.visible(), 1);
}
