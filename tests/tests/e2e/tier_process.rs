//! A following `eligd` as a process: killed with SIGKILL mid-feed and
//! restarted, it catches up with nothing lost or applied twice; `GET /ready`
//! says when it may take traffic. Real `eligd` binaries, a real
//! three-server NATS JetStream cluster, 127.0.0.1 only.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use elig_client::{Client, ClientOptions};
use elig_server::dev::certs::DevPki;
use elig_server::ops::jetstream::{self, StreamNames};
use elig_tests::nats::NatsCluster;
use elig_tests::tier::Node;
use elig_tests::{batch, fixture, insurance_row, upsert};
use elig_wire::report::FeedStatus;

/// `GET path` on a metrics address: (status code, body).
fn get(metrics: &str, path: &str) -> (u16, String) {
    let mut sock = std::net::TcpStream::connect(metrics).expect("metrics endpoint");
    write!(sock, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    sock.read_to_string(&mut text).unwrap();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The node's feed, asked with the operator certificate.
async fn feed(node: &Node, certs: &Path) -> FeedStatus {
    let identity = Some((certs.join("operator.pem"), certs.join("operator.key")));
    let identity = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let opts = ClientOptions::from_files(node.addr, "localhost", &certs.join("ca.pem"), identity).unwrap();
    let c = Client::connect(&opts).await.expect("connect");
    let s = c.status().await.expect("status").runtime.feed.expect("feed status");
    c.close().await;
    s
}

fn numbered_batch(seq: u64) -> Vec<u8> {
    let person = &fixture().keys.card_valid_person;
    batch(seq, &[upsert("insurance", insurance_row(&format!("QK{seq}"), person, "06130488", "K", &format!("K{seq}")))])
}

async fn wait_for(node: &Node, certs: &Path, what: &str, check: impl Fn(&FeedStatus) -> bool) -> FeedStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = feed(node, certs).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never got to: {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_feed_catches_up_with_nothing_lost_or_applied_twice() {
    let cluster = NatsCluster::start(3);
    let names = StreamNames::new(cluster.urls());
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    DevPki::generate(fixture().keys.institution(), &["localhost"]).unwrap().write(&certs).unwrap();
    let log = dir.path().join("deltas.log");
    let servers: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config = dir.path().join("eligd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nsnapshot_dir = \"{snap}\"\ndelta_log = \"{log}\"\n\
             [tls]\nca = \"{c}/ca.pem\"\ncert = \"{c}/server.pem\"\nkey = \"{c}/server.key\"\n\
             [feed]\nservers = [{servers}]\nconsumer = \"proc-1\"\nfollow_store = false\nready_max_lag = 0\n",
            snap = fixture().snapshot.display(),
            log = log.display(),
            c = certs.display(),
            servers = servers.join(", "),
        ),
    )
    .unwrap();

    let js = jetstream::connect(&names).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match jetstream::ensure_stream(&js, &names, 3).await {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "no stream: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let node = Node::start(&config);
    let metrics = node.metrics_addr();
    wait_for(&node, &certs, "joined", |s| s.joined).await;
    assert_eq!(get(&metrics, "/ready").0, 200, "an idle node caught up with an empty stream is ready");

    // Batches flow; the node dies with SIGKILL in the middle of them, and
    // more are published while it is down.
    const TOTAL: u64 = 80;
    let mut running = Some(node);
    for seq in 1..=TOTAL {
        jetstream::publish(&js, &mut stream, &names, &numbered_batch(seq)).await.expect("publish");
        if let (30, Some(n)) = (seq, &running) {
            wait_for(n, &certs, "some batches applied", |s| s.applied_seq >= 10).await;
        }
        if seq == 60 {
            running.take().expect("the node").kill(); // SIGKILL
        }
    }
    let (engine, replay) = elig_engine::engine::Engine::open_with_log(&fixture().snapshot, &log).expect("the log after the crash");
    let durable = replay.replayed as u64;
    drop(engine);
    assert!((10..=60).contains(&durable), "what was acknowledged is in the log, and nothing after the kill: {durable}");

    // Restarted on the same log: it replays its own log, then takes only what it missed.
    let node = Node::start(&config);
    let metrics = node.metrics_addr();
    let s = wait_for(&node, &certs, "caught up", |s| s.applied_seq == TOTAL && s.lag_batches == 0).await;
    assert_eq!(s.applied_from_stream, TOTAL - durable, "only the batches missing from its log came from the stream");
    assert!(s.ready && s.alarm.is_none(), "{s:?}");
    let (code, body) = get(&metrics, "/ready");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("batch {TOTAL} of {TOTAL}")), "{body}");

    // A batch every node refuses: the feed stops, /ready says why with 503.
    let orphan = batch(TOTAL + 1, &[upsert("insurance", insurance_row("QO", "NO-SUCH-PERSON", "06130488", "K", "O"))]);
    jetstream::publish(&js, &mut stream, &names, &orphan).await.unwrap();
    wait_for(&node, &certs, "stopped", |s| s.alarm.is_some() && !s.ready).await;
    let (code, body) = get(&metrics, "/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("stopped") && body.contains(&format!("batch {}", TOTAL + 1)), "{body}");
    assert_eq!(get(&metrics, "/health").0, 200, "still serving");
    assert_eq!(get(&metrics, "/nope").0, 404);
    let mut node = node;
    node.kill();

    // Exactly once: the log holds every batch once, in order.
    let (_, replay) = elig_engine::engine::Engine::open_with_log(&fixture().snapshot, &log).expect("the log at the end");
    assert_eq!(replay.replayed as u64, TOTAL);
}
