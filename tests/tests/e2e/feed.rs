//! The replicated tier: nodes follow one delta stream on a real
//! three-server NATS JetStream cluster (`contract.md` section 2b).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_client::Client;
use elig_server::ops::feed::{FeedConfig, FeedState, FeedStatus};
use elig_server::ops::jetstream::{self, PublishError, StreamNames};
use elig_tests::nats::{publish_retrying, NatsCluster};
use elig_tests::{batch, clock, fixture, insurance_row, upsert, As, Keys, TestServer, Writable};

fn feed_config(names: &StreamNames, consumer: &str) -> FeedConfig {
    FeedConfig { follow_store: false, ..FeedConfig::new(names.clone(), consumer) }
}

/// Batch `seq`: a new qualification on the valid card's person, under a card number of its own.
fn numbered_batch(seq: u64) -> Vec<u8> {
    let person = &fixture().keys.card_valid_person;
    batch(seq, &[upsert("insurance", insurance_row(&format!("QF{seq}"), person, "06130488", "F", &format!("F{seq}")))])
}

fn card_query(number: &str) -> String {
    let keys = &fixture().keys;
    let card = ("06130488".to_string(), "F".to_string(), number.to_string(), "01".to_string(), keys.card_valid.4);
    Keys::card_query(&card, keys.institution(), "feed")
}

async fn feed_status(srv: &TestServer) -> FeedStatus {
    let op = srv.client(As::Operator).await;
    let s = op.status().await.expect("status").runtime.feed.expect("a following node reports its feed");
    op.close().await;
    s
}

/// Wait until every node reports `want` as its feed's state and applied seq.
async fn wait_for(nodes: &[&TestServer], state: FeedState, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in nodes {
        loop {
            let s = feed_status(n).await;
            if s.state == state && s.applied_seq == seq {
                break;
            }
            assert!(Instant::now() < deadline, "node did not reach {state:?} at {seq}: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Wait until every node has looked at the stream and answers lookups
/// (a following node refuses them `EN01` until then).
async fn wait_joined(nodes: &[&TestServer]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in nodes {
        while !feed_status(n).await.joined {
            assert!(Instant::now() < deadline, "node did not join: {:?}", feed_status(n).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The stream, once the new cluster has elected its JetStream leader.
async fn stream_when_ready(names: &StreamNames) -> (jetstream::Context, jetstream::Stream) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let js = jetstream::connect(names).await?;
            let stream = jetstream::ensure_stream(&js, names, 3).await?;
            Ok::<_, PublishError>((js, stream))
        };
        match attempt.await {
            Ok(r) => return r,
            Err(e) => {
                assert!(Instant::now() < deadline, "the cluster never offered the stream: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The answer text of `q` on a node, without the processing time.
async fn answer_of(c: &Client, q: &str) -> String {
    let mut a = c.lookup(q.as_bytes()).await.expect("an answer");
    a.message_header.process_execution_time = Default::default();
    serde_json::to_string(&a).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_follow_200_batches_under_load_and_answer_alike() {
    let mut cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let writables: Vec<Writable> = (0..3).map(|_| Writable::fixture()).collect();
    let mut nodes = Vec::new();
    for (i, w) in writables.iter().enumerate() {
        nodes.push(TestServer::start_following(w, feed_config(&names, &format!("node-{i}"))).await);
    }
    wait_joined(&nodes.iter().collect::<Vec<_>>()).await;
    // Lookups and bulk inquiries against every node while the batches flow.
    let failures = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for n in &nodes {
        let c = n.client(As::Central).await;
        let (failures, answered, stop) = (failures.clone(), answered.clone(), stop.clone());
        let q = fixture().keys.valid_card_query(fixture().keys.institution(), "load");
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = match c.lookup(q.as_bytes()).await {
                    Ok(a) => a.validity() == Some("1"),
                    Err(_) => false,
                };
                let bulk_ok = match c.bulk(vec![q.clone().into_bytes(); 20]).await {
                    Ok(b) => b.collect().await.is_ok_and(|(a, s)| a.len() == 20 && s.errors == 0),
                    Err(_) => false,
                };
                let ok = ok && bulk_ok;
                if ok { &answered } else { &failures }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for seq in 1..=200u64 {
        if seq == 100 {
            // One NATS server dies mid-feed: publishing and consumption go on.
            cluster.kill(1);
        }
        publish_retrying(&names, &numbered_batch(seq)).await;
    }
    let refs: Vec<&TestServer> = nodes.iter().collect();
    wait_for(&refs, FeedState::Following, 200).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "lookups and bulks failed while the feed ran");
    assert!(answered.load(Ordering::Relaxed) > 0);
    cluster.restart(1);

    // A single node fed the same batches by `elig delta`'s path.
    let single = Writable::fixture();
    for seq in 1..=200 {
        single.engine.apply(&numbered_batch(seq)).unwrap();
    }
    let mut sample: Vec<String> = [1u64, 57, 100, 101, 150, 200].iter().map(|s| card_query(&format!("F{s}"))).collect();
    sample.push(card_query("F201")); // never published
    sample.push(fixture().keys.valid_card_query(fixture().keys.institution(), "same"));
    let clients: Vec<Client> = clients_of(&nodes).await;
    for q in &sample {
        let mut want = single.engine.pin().view().answer_document(q.as_bytes(), clock());
        want.message_header.process_execution_time = Default::default();
        let want = serde_json::to_string(&want).unwrap();
        for c in &clients {
            assert_eq!(answer_of(c, q).await, want, "{q}");
        }
    }
    for n in &nodes {
        let s = feed_status(n).await;
        assert_eq!((s.applied_from_stream, s.lag_batches, s.alarm), (200, 0, None), "each batch applied exactly once");
    }

    // A node stopped for a while catches up, nothing lost or applied twice.
    let mut writables = writables;
    nodes[2].server.stop_token().cancel();
    drop(nodes.pop());
    let Writable { dir, engine, log } = writables.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&engine) > 1 {
        assert!(Instant::now() < deadline, "the stopped node still holds its engine");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(engine);
    for seq in 201..=210 {
        publish_retrying(&names, &numbered_batch(seq)).await;
    }
    let (engine, replay) = elig_engine::engine::Engine::open_with_log(&fixture().snapshot, &log).expect("reopen the node's log");
    assert_eq!(replay.replayed, 200, "the node's own log holds what it acknowledged");
    let again = Writable { dir, engine: Arc::new(engine), log };
    let back = TestServer::start_following(&again, feed_config(&names, "node-2")).await;
    wait_for(&[&nodes[0], &nodes[1], &back], FeedState::Following, 210).await;
    assert_eq!(feed_status(&back).await.applied_from_stream, 10, "only the batches it missed");
}

async fn clients_of(nodes: &[TestServer]) -> Vec<Client> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.client(As::Central).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_stops_every_node_until_the_operator_replaces_it() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let (js, mut stream) = stream_when_ready(&names).await;
    let writables: Vec<Writable> = (0..2).map(|_| Writable::fixture()).collect();
    let mut nodes = Vec::new();
    for (i, w) in writables.iter().enumerate() {
        nodes.push(TestServer::start_following(w, feed_config(&names, &format!("node-{i}"))).await);
    }
    let first = jetstream::publish(&js, &mut stream, &names, &numbered_batch(1)).await.unwrap();
    assert!(!first.duplicate);

    // The publisher's own checks, before any node sees a batch.
    let again = jetstream::publish(&js, &mut stream, &names, &numbered_batch(1)).await.unwrap();
    assert_eq!((again.duplicate, again.stream_sequence), (true, first.stream_sequence), "the same batch twice is one message");
    let other = batch(1, &[upsert("insurance", insurance_row("QX", &fixture().keys.card_valid_person, "06130488", "F", "X"))]);
    match jetstream::publish(&js, &mut stream, &names, &other).await {
        Err(PublishError::Different { seq: 1, .. }) => {}
        r => panic!("another batch under seq 1 must be refused: {r:?}"),
    }
    let bad_line = b"{\"seq\": 2, \"created\": \"20261122101500\"}\n{\"op\": \"upsert\", \"table\": \"nope\", \"row\": {}}\n";
    match jetstream::publish(&js, &mut stream, &names, bad_line).await {
        Err(PublishError::Batch(e)) => assert!(e.to_string().contains("line 2"), "{e}"),
        r => panic!("a bad line refuses the batch: {r:?}"),
    }
    match jetstream::publish(&js, &mut stream, &names, &numbered_batch(3)).await {
        Err(PublishError::Gap { seq: 3, last: 1 }) => {}
        r => panic!("a gap is refused: {r:?}"),
    }

    // A batch that reads well but cannot apply (no such person) reaches the stream:
    // every node stops at it, answers at seq 1, and says why.
    let orphan = batch(2, &[upsert("insurance", insurance_row("QO", "NO-SUCH-PERSON", "06130488", "F", "O"))]);
    jetstream::publish(&js, &mut stream, &names, &orphan).await.unwrap();
    let refs: Vec<&TestServer> = nodes.iter().collect();
    wait_for(&refs, FeedState::Stopped, 1).await;
    let mut alarms = Vec::new();
    for n in &nodes {
        let s = feed_status(n).await;
        alarms.push(s.alarm.clone().expect("an alarm"));
        let c = n.client(As::Central).await;
        assert_eq!(c.lookup(card_query("F1").as_bytes()).await.unwrap().validity(), Some("1"), "still answering");
    }
    assert!(alarms[0].contains("batch 2"), "{}", alarms[0]);
    assert_eq!(alarms[0], alarms[1], "every node reaches the same verdict");

    // The operator's replacement: every node resumes, and goes on.
    jetstream::replace(&js, &mut stream, &names, &numbered_batch(2)).await.unwrap();
    wait_for(&refs, FeedState::Following, 2).await;
    jetstream::publish(&js, &mut stream, &names, &numbered_batch(3)).await.unwrap();
    wait_for(&refs, FeedState::Following, 3).await;
    for n in &nodes {
        let c = n.client(As::Central).await;
        assert_eq!(c.lookup(card_query("F2").as_bytes()).await.unwrap().validity(), Some("1"));
        assert_eq!(c.lookup(card_query("O").as_bytes()).await.unwrap().validity(), Some("4"), "the refused batch left nothing");
    }
}
