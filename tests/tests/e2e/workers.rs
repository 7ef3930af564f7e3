//! One endpoint per core (issue 14): the workers of one server share one
//! snapshot and delta state, and a connection stays with its worker when
//! the client's address changes (packets steered by connection ID).

use elig_client::Client;
use elig_tests::{batch, fixture, insurance_row, upsert, As, Keys, TestServer, Writable};

/// A query for a new card of the fixture's valid-card person.
fn new_card(number: &str) -> String {
    let k = &fixture().keys;
    Keys::card_query(&(k.card_valid.0.clone(), "W".into(), number.into(), "01".into(), k.card_valid.4), k.institution(), number)
}

/// Connections open on each worker, as the server reports them.
async fn per_worker(op: &Client) -> Vec<u64> {
    op.status().await.expect("status").runtime.worker_connections
}

/// Open central connections until one sits on each worker; the operator's
/// status tells on which worker each new one arrived. The others are kept
/// open too (returned after those): one closing would lower the counts
/// while the next is opened.
async fn one_on_each_worker(srv: &TestServer, op: &Client) -> (Vec<Client>, Vec<Client>) {
    let workers = op.status().await.unwrap().runtime.worker_connections.len();
    let mut on: Vec<Option<Client>> = (0..workers).map(|_| None).collect();
    let mut spare = Vec::new();
    for _ in 0..64 {
        if on.iter().all(Option::is_some) {
            break;
        }
        let before = per_worker(op).await;
        let c = srv.client(As::Central).await;
        // The role is checked after the handshake: wait for it to count.
        let q = fixture().keys.valid_card_query(fixture().keys.institution(), "worker");
        c.lookup(q.as_bytes()).await.expect("a first answer");
        let after = per_worker(op).await;
        let grew: Vec<usize> = (0..workers).filter(|w| after[*w] > before[*w]).collect();
        assert_eq!(grew.len(), 1, "one connection more, on one worker: {before:?} -> {after:?}");
        if on[grew[0]].is_none() {
            on[grew[0]] = Some(c);
        } else {
            spare.push(c);
        }
    }
    let on =
        on.into_iter().enumerate().map(|(w, c)| c.unwrap_or_else(|| panic!("no connection landed on worker {w} in 64 tries"))).collect();
    (on, spare)
}

#[tokio::test]
async fn every_worker_sees_a_delta_and_a_status_names_its_worker() {
    let w = Writable::fixture();
    let srv = TestServer::start_writable(&w).await;
    let op = srv.client(As::Operator).await;
    let status = op.status().await.unwrap().runtime;
    assert_eq!(status.worker_connections.len(), 2, "two workers");
    assert!(status.worker.is_some_and(|i| i < 2), "{status:?}");
    let (clients, _spare) = one_on_each_worker(&srv, &op).await;
    for c in &clients {
        assert_ne!(c.lookup(new_card("700001").as_bytes()).await.unwrap().validity(), Some("1"));
    }
    let k = &fixture().keys;
    let row = insurance_row("Q-W1", &k.card_valid_person, &k.card_valid.0, "W", "700001");
    op.delta(&batch(1, &[upsert("insurance", row)])).await.unwrap();
    // The next lookup on every worker sees it, and a bulk inquiry too.
    for c in &clients {
        let a = c.lookup(new_card("700001").as_bytes()).await.unwrap();
        assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "1"), "{a:?}");
        let (answers, summary) = c.bulk(vec![new_card("700001").into_bytes(); 3]).await.unwrap().collect().await.unwrap();
        assert!(answers.iter().all(|a| a.validity() == Some("1")) && summary.delta_seq == 1);
    }
}

#[tokio::test]
async fn a_connection_survives_its_clients_new_source_port() {
    let srv = TestServer::start().await;
    let op = srv.client(As::Operator).await;
    let (clients, _spare) = one_on_each_worker(&srv, &op).await;
    let query = fixture().keys.valid_card_query(fixture().keys.institution(), "rebind");
    let before = per_worker(&op).await;
    for round in 0..6 {
        for c in &clients {
            c.rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
            let a = c.lookup(query.as_bytes()).await.unwrap_or_else(|e| panic!("round {round}: the lookup after a new port failed: {e}"));
            assert_eq!(a.validity(), Some("1"));
        }
    }
    // The same connections, on the same workers: none was lost and re-made.
    assert_eq!(per_worker(&op).await, before);
}
