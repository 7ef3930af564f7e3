//! Several real `eligd` processes on the fixture snapshot, one PKI, each
//! with its own delta log, started and killed (SIGKILL) by their process
//! ids and restarted on the same port: the nodes a client fails over
//! between.
//!
//! [`RefusingNode`] stands in for a node that refuses every request with
//! one code (`EN01`, `EN02`), in process.
//!
//! The `eligd` binary is the server crate's, built beside the test binary
//! (`cargo test --workspace` builds it; alone: `cargo build -p elig-server
//! --bin eligd`), or the one `ELIGD` names.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use elig_client::frames::FrameStream;
use elig_client::tls::Identity;
use elig_client::wire::frame::{self, Kind};
use elig_client::wire::request::ErrorBody;
use elig_client::{ClientOptions, TierOptions};
use elig_server::dev::certs::{DevPki, Pem};

use crate::{fixture, As, NOW};

/// The `eligd` binary.
pub fn eligd_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ELIGD") {
        return PathBuf::from(p);
    }
    // The test binary is target/<profile>/deps/e2e-<hash>; eligd is target/<profile>/eligd.
    let exe = std::env::current_exe().expect("the test binary's path");
    let eligd = exe.parent().and_then(Path::parent).map(|d| d.join("eligd")).unwrap_or_default();
    assert!(
        eligd.is_file(),
        "{} is missing: build it with `cargo build -p elig-server --bin eligd` (cargo test --workspace does), or set ELIGD",
        eligd.display()
    );
    eligd
}

/// One `eligd serve` process and what it was started with.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    /// Its QUIC address: the same across restarts.
    pub addr: SocketAddr,
    config: PathBuf,
    _log: Option<Receiver<String>>,
}

impl Node {
    /// Start `eligd serve --config config` (any configuration: a node that
    /// follows the stream, serves metrics, ...) and wait for it to listen.
    pub fn start(config: &Path) -> Node {
        let (child, addr, log) = Node::spawn(config);
        Node { child: Some(child), addr, config: config.to_path_buf(), _log: Some(log) }
    }

    /// The metrics address it logs once listening (with `metrics_listen`).
    pub fn metrics_addr(&self) -> String {
        let log = self._log.as_ref().expect("a running node");
        loop {
            let line = log.recv_timeout(Duration::from_secs(60)).expect("eligd logs its metrics address");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"].as_str().is_some_and(|m| m.starts_with("metrics on")) {
                return v["fields"]["m"].as_str().unwrap_or_default().to_string();
            }
        }
    }

    /// Start `eligd serve --config config` and wait for it to listen.
    fn spawn(config: &Path) -> (Child, SocketAddr, Receiver<String>) {
        let mut child = Command::new(eligd_binary())
            .args(["--log-json", "serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eligd serve");
        let (tx, rx) = channel();
        let stderr = child.stderr.take().expect("piped stderr");
        // Keep draining the log so eligd never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else { break None };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "eligd listening" {
                break v["fields"]["local_addr"].as_str().and_then(|a| a.parse().ok());
            }
            seen.push(line);
        };
        match addr {
            Some(addr) => (child, addr, rx),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("eligd did not start listening: {seen:#?}");
            }
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, nothing said to the clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL eligd");
            c.wait().expect("reap eligd");
        }
    }

    /// Start it again on the same address, snapshot and delta log.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the node first");
        let (child, addr, log) = Node::spawn(&self.config);
        assert_eq!(addr, self.addr, "restarted on its address");
        self.child = Some(child);
        self._log = Some(log);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` nodes serving the fixture snapshot.
#[derive(Debug)]
pub struct Tier {
    pub nodes: Vec<Node>,
    pub pki: DevPki,
    pub dir: tempfile::TempDir,
}

impl Tier {
    pub fn start(n: usize) -> Tier {
        Tier::start_configured(n, |_| String::new())
    }

    /// `n` nodes, node `i`'s `eligd.toml` ending with `extra(i)` (a `[feed]`
    /// table, say).
    pub fn start_configured(n: usize, extra: impl Fn(usize) -> String) -> Tier {
        let fx = fixture();
        let dir = tempfile::Builder::new().prefix("elig-tier-").tempdir().expect("temporary directory");
        let pki = DevPki::generate(fx.keys.institution(), &["localhost"]).expect("dev PKI");
        let certs = dir.path().join("certs");
        pki.write(&certs).expect("write the PKI");
        let nodes = (0..n)
            .map(|i| {
                let home = dir.path().join(format!("node-{i}"));
                std::fs::create_dir_all(&home).expect("node directory");
                let config = home.join("eligd.toml");
                let write = |listen: &str| {
                    let c = |f: &str| certs.join(f).display().to_string();
                    let text = format!(
                        "listen = \"{listen}\"\nsnapshot_dir = \"{}\"\ndelta_log = \"{}\"\nfixed_clock = \"{NOW}\"\n\
                         [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{}",
                        fx.snapshot.display(),
                        home.join("deltas.log").display(),
                        c("ca.pem"),
                        c("server.pem"),
                        c("server.key"),
                        extra(i),
                    );
                    std::fs::write(&config, text).expect("write eligd.toml");
                };
                write("127.0.0.1:0");
                let (child, addr, log) = Node::spawn(&config);
                // Restarts take the same port.
                write(&addr.to_string());
                Node { child: Some(child), addr, config, _log: Some(log) }
            })
            .collect();
        Tier { nodes, pki, dir }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    pub fn pem(&self, who: As) -> &Pem {
        match who {
            As::Central => &self.pki.central,
            As::Institution => &self.pki.institution,
            As::Operator => &self.pki.operator,
        }
    }

    /// Options for one node, presenting `who`'s certificate.
    pub fn options(&self, node: usize, who: As) -> ClientOptions {
        let p = self.pem(who);
        let identity = Identity::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes(), "test").expect("test identity");
        ClientOptions::new(self.nodes[node].addr, "localhost", self.pki.ca.cert_pem.clone().into_bytes(), Some(identity))
    }

    /// Options for every node, presenting `who`'s certificate.
    pub fn tier_options(&self, who: As) -> TierOptions {
        TierOptions::new(&self.addrs(), &self.options(0, who))
    }
}

/// A stand-in node that refuses every request with one error code (as a
/// joining node answers `EN01`, or one behind `EN02`, for as long as a test
/// wants): a QUIC
/// endpoint with the tier's server certificate, one `Error` frame per
/// request stream.
#[derive(Debug)]
pub struct RefusingNode {
    pub addr: SocketAddr,
    refused: Arc<AtomicU64>,
    endpoint: quinn::Endpoint,
}

impl RefusingNode {
    pub fn start(pki: &DevPki, code: &str) -> RefusingNode {
        let identity =
            Identity::from_pem(pki.server.cert_pem.as_bytes(), pki.server.key_pem.as_bytes(), "server").expect("server identity");
        let roots = elig_client::tls::roots(pki.ca.cert_pem.as_bytes(), "CA").expect("CA");
        let tls = elig_server::quic::tls::server_config(roots, identity).expect("server TLS");
        let config = quinn::ServerConfig::with_crypto(elig_server::quic::tls::quic_server(tls).expect("QUIC TLS"));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("constant address")).expect("bind");
        let addr = endpoint.local_addr().expect("bound");
        let refused = Arc::new(AtomicU64::new(0));
        let body =
            serde_json::to_vec(&ErrorBody { code: code.into(), message: format!("{code}: refused by a stand-in node") }).expect("json");
        let (ep, count) = (endpoint.clone(), refused.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                let (body, count) = (body.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    while let Ok((mut send, recv)) = conn.accept_bi().await {
                        let (body, count) = (body.clone(), count.clone());
                        tokio::spawn(async move {
                            // The request's first frame, then the refusal.
                            let mut frames = FrameStream::new(recv);
                            if let Ok(Some(_)) = frames.next_frame(1 << 20, Duration::from_secs(5)).await {
                                count.fetch_add(1, Ordering::Relaxed);
                                let _ = send.write_all(&frame::encode(Kind::Error, &body)).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            }
                        });
                    }
                });
            }
        });
        RefusingNode { addr, refused, endpoint }
    }

    /// Requests refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for RefusingNode {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
    }
}
