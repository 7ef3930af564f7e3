//! The replicated tier beyond the delta feed (`contract.md` section 2b):
//! read-your-writes with `MinimumDeltaSequence`, a new node joining from
//! the snapshot store, nodes swapping to a newer generation from the bucket
//! under load, a corrupt generation refused by every node, and a gap in the
//! stream stopping every node until the operator fills it. Real servers on
//! 127.0.0.1 and a real three-server NATS JetStream cluster.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_client::{Client, ClientError};
use elig_loader::store;
use elig_server::ops::feed::{FeedConfig, FeedState, FeedStatus};
use elig_server::ops::jetstream::{self, StreamNames};
use elig_server::ops::{snapshots, state};
use elig_tests::nats::{publish_retrying as publish, NatsCluster};
use elig_tests::{batch, compile_generation, fixture, insurance_row, upsert, As, Keys, TestServer, Writable};
use elig_wire::codes;
use elig_wire::report::Limits;

/// Batch `seq`: a new qualification on the valid card's person, card number `T<seq>`.
fn numbered_batch(seq: u64) -> Vec<u8> {
    let person = &fixture().keys.card_valid_person;
    batch(seq, &[upsert("insurance", insurance_row(&format!("QT{seq}"), person, "06130488", "T", &format!("T{seq}")))])
}

fn card_query(number: &str, extra: &str) -> String {
    let keys = &fixture().keys;
    let card = ("06130488".to_string(), "T".to_string(), number.to_string(), "01".to_string(), keys.card_valid.4);
    let q = Keys::card_query(&card, keys.institution(), "tier");
    match extra {
        "" => q,
        e => format!("{{{e},{}", &q[1..]),
    }
}

fn with_min_seq(q: &str, seq: u64) -> String {
    format!("{{\"MinimumDeltaSequence\":\"{seq}\",{}", &q[1..])
}

async fn feed_status(srv: &TestServer) -> FeedStatus {
    let op = srv.client(As::Operator).await;
    let s = op.status().await.expect("status").runtime.feed.expect("a following node reports its feed");
    op.close().await;
    s
}

/// Wait until `check` holds for every node's feed.
async fn wait_until(nodes: &[&TestServer], what: &str, check: impl Fn(&FeedStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for n in nodes {
        loop {
            let s = feed_status(n).await;
            if check(&s) {
                break;
            }
            assert!(Instant::now() < deadline, "a node never got to: {what}: {s:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The answer without its execution time, as JSON.
async fn answer_of(c: &Client, q: &str) -> String {
    let mut a = c.lookup(q.as_bytes()).await.expect("lookup");
    a.message_header.process_execution_time = Default::default();
    serde_json::to_string(&a).unwrap()
}

fn following(names: &StreamNames, consumer: &str, bucket: &str) -> FeedConfig {
    FeedConfig { bucket: bucket.into(), store_poll_ms: 200, ..FeedConfig::new(names.clone(), consumer) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimum_delta_sequence_waits_for_the_batch_then_refuses_retryably() {
    let w = Writable::fixture();
    let limits = Limits { min_seq_wait_ms: 600, ..Limits::default() };
    let srv = TestServer::start_on(w.engine.clone(), Some(w.log.clone()), limits, false, false).await;
    let c = srv.client(As::Central).await;
    let op = srv.client(As::Operator).await;
    op.delta(&numbered_batch(1)).await.expect("batch 1");

    // At or under the node's seq: answered at once.
    let a = c.lookup(with_min_seq(&card_query("T1", ""), 1).as_bytes()).await.unwrap();
    assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "1"));

    // One ahead: the lookup waits, the batch arrives, the answer has it.
    let asked = with_min_seq(&card_query("T2", ""), 2);
    let c2 = srv.client(As::Central).await;
    let waiting = tokio::spawn(async move { c2.lookup(asked.as_bytes()).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished(), "a lookup ahead of the node must wait, not answer from seq 1");
    op.delta(&numbered_batch(2)).await.expect("batch 2");
    let a = waiting.await.unwrap().expect("answered once batch 2 is in");
    assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "2"), "never an answer from before the seq");

    // Never reached within the bound: the retryable error naming the node's seq.
    let started = Instant::now();
    match c.lookup(with_min_seq(&card_query("T2", ""), 5).as_bytes()).await {
        Err(ClientError::Refused { code, message }) => {
            assert_eq!(code, codes::BEHIND);
            assert!(message.contains("'5'") && message.contains("up to 2"), "{message}");
        }
        other => panic!("a node behind the asked seq refuses EN02: {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(600), "it waited the bound first: {:?}", started.elapsed());

    // In a bulk inquiry the item is refused in its place, the others answered.
    let items = vec![card_query("T1", "").into_bytes(), with_min_seq(&card_query("T1", ""), 9).into_bytes()];
    let (answers, summary) = c.bulk(items).await.unwrap().collect().await.unwrap();
    assert_eq!(answers[0].validity(), Some("1"));
    assert_eq!(answers[1].message_body.processing_result_code.as_deref(), Some(codes::BEHIND));
    assert_eq!(summary.errors, 1);

    // A value that is not a seq is the caller's error, not a wait.
    let a = c.lookup(card_query("T1", "\"MinimumDeltaSequence\":\"soon\"").as_bytes()).await.unwrap();
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some(codes::INVALID_VALUE));
    assert!(a.message_body.processing_result_message.as_deref().unwrap_or_default().contains("MinimumDeltaSequence 'soon'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_joins_from_the_store_replays_the_stream_and_answers_as_the_others() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let servers = cluster.urls().join(",");
    let bucket = store::open(&servers, "JOIN", Some(3)).await.expect("bucket");
    store::publish(&bucket, &fixture().snapshot).await.expect("publish the fixture snapshot");
    for seq in 1..=5 {
        publish(&names, &numbered_batch(seq)).await;
    }
    let old = Writable::fixture();
    let a = TestServer::start_following(&old, following(&names, "node-a", "JOIN")).await;
    wait_until(&[&a], "node a at batch 5", |s| s.joined && s.applied_seq == 5).await;

    // A new node: an empty directory, no snapshot.
    let empty = tempfile::tempdir().unwrap();
    let snapshot_dir = empty.path().join("snapshot");
    let log = empty.path().join("deltas.log");
    let feed = following(&names, "node-new", "JOIN");
    let stop = tokio_util::sync::CancellationToken::new();
    let joined = snapshots::join(&feed, &snapshot_dir, &log, &stop).await.expect("joined from the store");
    assert_eq!(joined.generation, fixture().engine.pin().id());
    assert_eq!(joined.dir, feed.store_dir(&log).join(joined.generation.to_string()));
    let opened = state::open_engine(&snapshot_dir, &log, Default::default()).expect("opens the downloaded snapshot");
    assert!(opened.from_record, "the live snapshot record names the download");
    let fresh = Writable { dir: empty, engine: Arc::new(opened.engine), log };
    let b = TestServer::start_following(&fresh, feed).await;
    wait_until(&[&b], "the new node caught up", |s| s.joined && s.applied_seq == 5 && s.applied_from_stream == 5).await;
    let s = feed_status(&b).await;
    assert!(s.ready && s.snapshot_source.starts_with("store JOIN generation"), "{s:?}");

    let (ca, cb) = (a.client(As::Central).await, b.client(As::Central).await);
    for q in [
        card_query("T1", ""),
        card_query("T5", ""),
        card_query("T6", ""),
        fixture().keys.valid_card_query(fixture().keys.institution(), "j"),
    ] {
        assert_eq!(answer_of(&ca, &q).await, answer_of(&cb, &q).await, "{q}");
    }
    // A second join on the same directory finds the local snapshot.
    assert_eq!(snapshots::join(&following(&names, "node-new", "JOIN"), &snapshot_dir, &fresh.log, &stop).await, None);
}

/// Put a snapshot's files in the bucket by hand, one byte of `corrupt`
/// flipped, manifest last (as a broken publisher or disk would).
async fn put_corrupt(cluster: &NatsCluster, bucket: &str, dir: &std::path::Path, generation: u64, corrupt: &str) {
    let client = async_nats::connect(cluster.urls()).await.unwrap();
    let objects = async_nats::jetstream::new(client).get_object_store(bucket).await.unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort_by_key(|n| n == "manifest.json");
    for name in names {
        let mut bytes = std::fs::read(dir.join(&name)).unwrap();
        if name == corrupt {
            bytes[200] ^= 0x01;
        }
        objects.put(format!("{generation}/{name}").as_str(), &mut bytes.as_slice()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_swaps_to_a_newer_store_generation_under_load_and_refuses_a_corrupt_one() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let servers = cluster.urls().join(",");
    let bucket = store::open(&servers, "SWAP", Some(3)).await.expect("bucket");
    let live = fixture().engine.pin().id();
    let writables: Vec<Writable> = (0..2).map(|_| Writable::fixture()).collect();
    let mut nodes = Vec::new();
    for (i, w) in writables.iter().enumerate() {
        // Node 0 keeps no older download, node 1 the default one.
        let keep = if i == 0 { 0 } else { FeedConfig::new(names.clone(), "").store_keep_older };
        let f = FeedConfig { store_keep_older: keep, ..following(&names, &format!("swap-{i}"), "SWAP") };
        nodes.push(TestServer::start_following(w, f).await);
    }
    for seq in 1..=3 {
        publish(&names, &numbered_batch(seq)).await;
    }
    let refs: Vec<&TestServer> = nodes.iter().collect();
    wait_until(&refs, "batch 3", |s| s.joined && s.applied_seq == 3).await;

    // Lookups and bulk inquiries on both nodes while they swap.
    let (failures, answered, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let mut load = Vec::new();
    for n in &nodes {
        let c = n.client(As::Central).await;
        let (failures, answered, stop) = (failures.clone(), answered.clone(), stop.clone());
        let q = card_query("T3", "");
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let one = c.lookup(q.as_bytes()).await.is_ok_and(|a| a.validity() == Some("1"));
                let bulk = match c.bulk(vec![q.clone().into_bytes(); 10]).await {
                    Ok(b) => b.collect().await.is_ok_and(|(a, s)| a.len() == 10 && s.errors == 0),
                    Err(_) => false,
                };
                if one && bulk { &answered } else { &failures }.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let work = tempfile::tempdir().unwrap();
    let newer = compile_generation(&work.path().join("newer"), live + 1);
    store::publish(&bucket, &newer).await.expect("publish the newer generation");
    wait_until(&refs, "generation live+1 from the store", |s| s.snapshot_source == format!("store SWAP generation {}", live + 1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "requests failed during the swap");
    assert!(answered.load(Ordering::Relaxed) > 0);
    let (c0, c1) = (nodes[0].client(As::Central).await, nodes[1].client(As::Central).await);
    for q in [card_query("T3", ""), card_query("T1", "")] {
        let (a0, a1) = (answer_of(&c0, &q).await, answer_of(&c1, &q).await);
        assert_eq!(a0, a1, "{q}");
        assert!(a0.contains(&format!("\"SnapshotGeneration\":\"{}\"", live + 1)) && a0.contains("\"DeltaSequence\":\"3\""), "{a0}");
    }

    // A corrupt generation: every node refuses it, the live one serves on.
    let bad = compile_generation(&work.path().join("bad"), live + 2);
    put_corrupt(&cluster, "SWAP", &bad, live + 2, "persons-00000.rkyv").await;
    wait_until(&refs, "the corrupt generation refused", |s| s.store.refused.contains(&(live + 2))).await;
    for n in &nodes {
        let s = feed_status(n).await;
        let alarm = s.store.alarm.clone().unwrap_or_default();
        assert!(alarm.contains("persons-00000.rkyv") && alarm.contains(&format!("generation {} keeps serving", live + 1)), "{alarm}");
        assert_eq!(s.store.newest_generation, Some(live + 2));
        let c = n.client(As::Central).await;
        let a = c.lookup(card_query("T3", "").as_bytes()).await.unwrap();
        assert_eq!((a.validity(), a.message_header.snapshot_generation.to_string()), (Some("1"), (live + 1).to_string()));
        let entries: Vec<String> = std::fs::read_dir(n.config.feed.as_ref().unwrap().store_dir(&n.config.delta_log))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!entries.contains(&(live + 2).to_string()), "nothing of the corrupt generation kept: {entries:?}");
    }

    // A third good generation: each node deletes the downloads it no
    // longer needs (and one a crashed process left half done).
    let store_dirs: Vec<std::path::PathBuf> =
        nodes.iter().map(|n| n.config.feed.as_ref().unwrap().store_dir(&n.config.delta_log)).collect();
    std::fs::create_dir(store_dirs[0].join(format!(".{}.download-4294967295", live + 3))).unwrap();
    let third = compile_generation(&work.path().join("third"), live + 3);
    store::publish(&bucket, &third).await.expect("publish the third generation");
    wait_until(&refs, "generation live+3 from the store", |s| s.snapshot_source == format!("store SWAP generation {}", live + 3)).await;
    let listing = |dir: &std::path::Path| {
        let mut n: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        n.sort();
        n
    };
    let want = [vec![(live + 3).to_string()], vec![(live + 1).to_string(), (live + 3).to_string()]];
    let deadline = Instant::now() + Duration::from_secs(10);
    while store_dirs.iter().map(|d| listing(d)).collect::<Vec<_>>() != want {
        assert!(Instant::now() < deadline, "store dirs {:?} and {:?}, want {want:?}", listing(&store_dirs[0]), listing(&store_dirs[1]));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = c0.lookup(card_query("T3", "").as_bytes()).await.unwrap();
    assert_eq!(a.message_header.snapshot_generation.to_string(), (live + 3).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_stream_stops_every_node_until_the_missing_batch_is_published() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let writables: Vec<Writable> = (0..2).map(|_| Writable::fixture()).collect();
    let mut nodes = Vec::new();
    for (i, w) in writables.iter().enumerate() {
        let f = FeedConfig { follow_store: false, ..FeedConfig::new(names.clone(), &format!("gap-{i}")) };
        nodes.push(TestServer::start_following(w, f).await);
    }
    publish(&names, &numbered_batch(1)).await;
    let refs: Vec<&TestServer> = nodes.iter().collect();
    wait_until(&refs, "batch 1", |s| s.applied_seq == 1 && s.state == FeedState::Following).await;

    // A publisher that skips the checks puts batch 3 where 2 belongs.
    let client = async_nats::connect(cluster.urls()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(names.subject(3), numbered_batch(3).into()).await.unwrap().await.expect("stored");
    wait_until(&refs, "stopped at the gap", |s| s.state == FeedState::Stopped).await;
    let mut alarms = Vec::new();
    for n in &nodes {
        let s = feed_status(n).await;
        assert_eq!(s.applied_seq, 1, "nothing skipped, nothing applied past the gap");
        assert!(!s.ready, "a stopped node is not ready: {s:?}");
        alarms.push(s.alarm.unwrap_or_default());
        let c = n.client(As::Central).await;
        let a = c.lookup(card_query("T1", "").as_bytes()).await.unwrap();
        assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "1"), "answers at the last good seq");
    }
    assert!(alarms[0].contains("gap") && alarms[0].contains("needs batch 2"), "{}", alarms[0]);
    assert_eq!(alarms[0], alarms[1], "every node reaches the same verdict");

    // The operator publishes the missing batch: every node resumes in order.
    let js = jetstream::connect(&names).await.unwrap();
    let mut stream = jetstream::ensure_stream(&js, &names, 3).await.unwrap();
    jetstream::replace(&js, &mut stream, &names, &numbered_batch(2)).await.expect("the missing batch goes in");
    wait_until(&refs, "resumed through batch 3", |s| s.applied_seq == 3 && s.state == FeedState::Following && s.alarm.is_none()).await;
    for n in &nodes {
        let c = n.client(As::Central).await;
        for seq in 1..=3 {
            assert_eq!(c.lookup(card_query(&format!("T{seq}"), "").as_bytes()).await.unwrap().validity(), Some("1"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_on_a_node_refuses_what_every_node_would_refuse_and_wait_sees_it_applied() {
    use elig_server::ops::publish::{dry_run, wait_applied, NodeCheckError};
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let w = Writable::fixture();
    let node = TestServer::start_following(&w, FeedConfig { follow_store: false, ..FeedConfig::new(names.clone(), "dry-0") }).await;
    publish(&names, &numbered_batch(1)).await;
    wait_until(&[&node], "batch 1", |s| s.applied_seq == 1 && s.joined).await;
    let js = jetstream::connect(&names).await.unwrap();
    let mut stream = jetstream::ensure_stream(&js, &names, 3).await.unwrap();
    let op = node.client(As::Operator).await;

    // Rows that read well but cannot apply: the node refuses, nothing reaches the stream or the node.
    let orphan = batch(2, &[upsert("insurance", insurance_row("QO", "NO-SUCH-PERSON", "06130488", "T", "O"))]);
    match dry_run(&op, &mut stream, &names, &orphan).await {
        Err(NodeCheckError::Refused { code, message }) => {
            assert_eq!(code, codes::DELTA_INVALID);
            assert!(message.contains("line 2") && message.contains("NO-SUCH-PERSON"), "{message}");
        }
        other => panic!("the dry run refuses a batch that cannot apply: {other:?}"),
    }
    assert_eq!(jetstream::last_batch(&mut stream, &names).await.unwrap().0, 1, "nothing published");
    // A good batch passes, and is not applied by the dry run.
    let checked = dry_run(&op, &mut stream, &names, &numbered_batch(2)).await.expect("batch 2 would apply");
    assert_eq!((checked.seq, checked.node_seq, checked.duplicate, checked.rows), (2, 1, false, 1));
    assert_eq!(op.status().await.unwrap().engine.delta_seq, 1, "a dry run applies nothing");
    // A gap is refused as the node would refuse it.
    match dry_run(&op, &mut stream, &names, &numbered_batch(4)).await {
        Err(NodeCheckError::Refused { code, .. }) => assert_eq!(code, codes::DELTA_GAP),
        other => panic!("{other:?}"),
    }

    let published = jetstream::publish(&js, &mut stream, &names, &numbered_batch(2)).await.unwrap();
    let applied = wait_applied(&mut stream, 2, published.stream_sequence, 1, Duration::from_secs(30)).await.expect("applied by the node");
    assert_eq!(applied, 1);
    assert_eq!(op.status().await.unwrap().engine.delta_seq, 2, "acknowledged by its consumer only once applied");
    // Two nodes were asked for, only one follows: the wait says so.
    match wait_applied(&mut stream, 2, published.stream_sequence, 2, Duration::from_millis(300)).await {
        Err(NodeCheckError::NotApplied { wanted: 2, applied: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_keeps_the_order_checks_with_one_round_trip_a_batch() {
    use elig_server::ops::jetstream::{PublishError, Publisher};
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    publish(&names, &numbered_batch(1)).await; // creates the stream once the cluster is up
    let js = jetstream::connect(&names).await.unwrap();
    let mut stream = jetstream::ensure_stream(&js, &names, 3).await.unwrap();
    let mut p = Publisher::new(&mut stream, &names).await.unwrap();
    for seq in 2..=3 {
        let got = p.publish(&js, &mut stream, &names, &numbered_batch(seq)).await.unwrap();
        assert_eq!((got.seq, got.duplicate), (seq, false));
    }
    assert!(p.publish(&js, &mut stream, &names, &numbered_batch(3)).await.unwrap().duplicate, "the same batch again is a duplicate");
    assert!(matches!(p.publish(&js, &mut stream, &names, &numbered_batch(5)).await, Err(PublishError::Gap { seq: 5, last: 3 })));
    // Another publisher puts batch 4 in: this one's view of the stream is stale, yet its own batch 4
    // is refused as different (never taken for a duplicate), and the order does not fork.
    let mut other = Publisher::new(&mut stream, &names).await.unwrap();
    other.publish(&js, &mut stream, &names, &numbered_batch(4)).await.unwrap();
    let mine = batch(4, &[upsert("insurance", insurance_row("QX4", &fixture().keys.card_valid_person, "06130488", "T", "X4"))]);
    assert!(matches!(p.publish(&js, &mut stream, &names, &mine).await, Err(PublishError::Different { seq: 4, .. })));
    // The other goes on to 5; this one, behind, reads the stream again and follows on with 6.
    other.publish(&js, &mut stream, &names, &numbered_batch(5)).await.unwrap();
    let six = p.publish(&js, &mut stream, &names, &batch(6, &[])).await.expect("6 follows 5");
    assert_eq!((six.seq, six.duplicate), (6, false));
    // A replacement appends batch 2 again at the end of the stream; the highest batch is still 6.
    jetstream::replace(&js, &mut stream, &names, &numbered_batch(2)).await.expect("batch 2 replaced");
    assert_eq!(jetstream::last_batch(&mut stream, &names).await.unwrap().0, 6, "not the replacement's seq");
    let mut fresh = Publisher::new(&mut stream, &names).await.unwrap();
    assert_eq!(fresh.publish(&js, &mut stream, &names, &batch(7, &[])).await.expect("7 follows 6").seq, 7);
    assert_eq!(jetstream::last_batch(&mut stream, &names).await.unwrap().0, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_a_new_tier_with_no_stream_yet_is_ready_and_answers() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let w = Writable::fixture();
    let node = TestServer::start_following(&w, FeedConfig { follow_store: false, ..FeedConfig::new(names.clone(), "new-0") }).await;
    wait_until(&[&node], "following an empty stream", |s| s.joined && s.ready && s.state == FeedState::Following && s.alarm.is_none())
        .await;
    let c = node.client(As::Central).await;
    let a = c.lookup(fixture().keys.valid_card_query(fixture().keys.institution(), "new").as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
    // The first publish creates the stream; the node follows it.
    publish(&names, &numbered_batch(1)).await;
    wait_until(&[&node], "batch 1", |s| s.applied_seq == 1 && s.applied_from_stream == 1).await;
}
