//! A following `eligd` as a process: killed with SIGKILL mid-feed and
//! restarted, it catches up with nothing lost or applied twice; `GET /ready`
//! says when it may take traffic. Real `eligd` binaries, a real
//! three-server NATS JetStream cluster, 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use elig_client::{Client, ClientOptions};
use elig_server::dev::certs::DevPki;
use elig_server::ops::jetstream::{self, StreamNames};
use elig_tests::nats::NatsCluster;
use elig_tests::{batch, fixture, insurance_row, upsert};
use elig_wire::report::FeedStatus;
use serde_json::Value;

/// The `eligd` binary beside this test's (`cargo test --workspace` builds
/// it; alone, this builds it).
fn eligd() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("eligd");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo).args(["build", "--locked", "-p", "elig-server", "--bin", "eligd"]).status().expect("cargo build");
        assert!(built.success(), "building eligd failed");
    }
    bin
}

struct Node {
    child: Child,
    addr: String,
    metrics: String,
    _log: Receiver<Value>,
}

impl Node {
    fn start(config: &Path) -> Node {
        let mut child = Command::new(eligd())
            .args(["--log-json", "serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eligd serve");
        let (tx, rx) = channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({"fields": {"message": line}}));
                let _ = tx.send(v);
            }
        });
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let v = rx.recv_timeout(Duration::from_secs(60)).expect("eligd did not start");
            let f = &v["fields"];
            match f["message"].as_str() {
                Some("eligd listening") => addr = f["local_addr"].as_str().map(str::to_string),
                Some(m) if m.starts_with("metrics on") => metrics = f["m"].as_str().map(str::to_string),
                _ => {}
            }
        }
        Node { child, addr: addr.unwrap_or_default(), metrics: metrics.unwrap_or_default(), _log: rx }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL eligd");
        self.child.wait().expect("reap eligd");
    }

    /// `GET path` on the metrics address: (status code, body).
    fn get(&self, path: &str) -> (u16, String) {
        let mut sock = std::net::TcpStream::connect(&self.metrics).expect("metrics endpoint");
        write!(sock, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        sock.read_to_string(&mut text).unwrap();
        let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    async fn feed(&self, certs: &Path) -> FeedStatus {
        let identity = Some((certs.join("operator.pem"), certs.join("operator.key")));
        let identity = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        let opts = ClientOptions::from_files(self.addr.parse().unwrap(), "localhost", &certs.join("ca.pem"), identity).unwrap();
        let c = Client::connect(&opts).await.expect("connect");
        let s = c.status().await.expect("status").runtime.feed.expect("feed status");
        c.close().await;
        s
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn numbered_batch(seq: u64) -> Vec<u8> {
    let person = &fixture().keys.card_valid_person;
    batch(seq, &[upsert("insurance", insurance_row(&format!("QK{seq}"), person, "06130488", "K", &format!("K{seq}")))])
}

async fn wait_for(node: &Node, certs: &Path, what: &str, check: impl Fn(&FeedStatus) -> bool) -> FeedStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = node.feed(certs).await;
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
    wait_for(&node, &certs, "joined", |s| s.joined).await;
    assert_eq!(node.get("/ready").0, 200, "an idle node caught up with an empty stream is ready");

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
            running.take().expect("the node").kill();
        }
    }
    let (engine, replay) = elig_engine::engine::Engine::open_with_log(&fixture().snapshot, &log).expect("the log after the crash");
    let durable = replay.replayed as u64;
    drop(engine);
    assert!((10..=60).contains(&durable), "what was acknowledged is in the log, and nothing after the kill: {durable}");

    // Restarted on the same log: it replays its own log, then takes only what it missed.
    let node = Node::start(&config);
    let s = wait_for(&node, &certs, "caught up", |s| s.applied_seq == TOTAL && s.lag_batches == 0).await;
    assert_eq!(s.applied_from_stream, TOTAL - durable, "only the batches missing from its log came from the stream");
    assert!(s.ready && s.alarm.is_none(), "{s:?}");
    let (code, body) = node.get("/ready");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&format!("batch {TOTAL} of {TOTAL}")), "{body}");

    // A batch every node refuses: the feed stops, /ready says why with 503.
    let orphan = batch(TOTAL + 1, &[upsert("insurance", insurance_row("QO", "NO-SUCH-PERSON", "06130488", "K", "O"))]);
    jetstream::publish(&js, &mut stream, &names, &orphan).await.unwrap();
    wait_for(&node, &certs, "stopped", |s| s.alarm.is_some() && !s.ready).await;
    let (code, body) = node.get("/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("stopped") && body.contains(&format!("batch {}", TOTAL + 1)), "{body}");
    assert_eq!(node.get("/health").0, 200, "still serving");
    assert_eq!(node.get("/nope").0, 404);
    node.kill();

    // Exactly once: the log holds every batch once, in order.
    let (_, replay) = elig_engine::engine::Engine::open_with_log(&fixture().snapshot, &log).expect("the log at the end");
    assert_eq!(replay.replayed as u64, TOTAL);
}
