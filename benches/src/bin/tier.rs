//! The replicated tier, measured (issue 13): two `eligd` nodes in this
//! process on the bench snapshot (1M persons by default), following one
//! delta stream on a real three-server NATS JetStream cluster on 127.0.0.1
//! (`sync_interval: always`, three replicas), over real QUIC.
//!
//! 1. Rows per second through the stream to every node: `--batches`
//!    batches of 1,000 rows published back to back (each acknowledged by a
//!    quorum, on disk), timed until both nodes have applied the last one
//!    (each batch validated, fsynced to the node's delta log, then visible).
//! 2. Publish-to-visible latency on both nodes: `--latency` batches, one at
//!    a time, from the start of the publish to the batch being visible on
//!    each node; p50, p99, max.
//! 3. Lookup latency on node A, idle and while following the stream (batches
//!    published back to back), same keys, same run: p50, p99.
//! 4. A new node joining from the snapshot store: the snapshot published to
//!    the bucket, then download and verify, open, replay of the stream, ready.
//!
//! Run: `cargo run --release -p elig-benches --bin tier -- --batches 100 --latency 200`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use elig_benches::batches::{Batches, ROWS};
use elig_benches::{bench_snapshot, sample_keys, KeyKind, SEED};
use elig_client::{Client, ClientOptions};
use elig_engine::engine::{Engine, EngineOptions};
use elig_engine::snapshot::Snapshot;
use elig_server::config::{Config, RawConfig};
use elig_server::dev::certs::DevPki;
use elig_server::ops::jetstream::{self, StreamNames};
use elig_server::ops::{snapshots, state};
use elig_server::quic::server::Server;
use elig_tests::nats::NatsCluster;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(about = "The replicated tier: stream throughput, publish-to-visible latency, lookups while following, joining")]
struct Args {
    /// Batches of 1,000 rows for the throughput run.
    #[arg(long, default_value_t = 100)]
    batches: u64,
    /// Batches published one at a time for the latency run.
    #[arg(long, default_value_t = 200)]
    latency: u64,
    /// Seconds of lookups, idle and then while following.
    #[arg(long, default_value_t = 10)]
    lookup_secs: u64,
    /// Lookups in flight on node A.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Batches of 1,000 rows a second published while node A answers lookups (0: back to back).
    #[arg(long, default_value_t = 5.0)]
    follow_rate: f64,
}

/// A node started on a thread of its own with a current-thread runtime (its
/// feed and store watcher run there, its QUIC workers on threads of their own
/// as in `eligd`, `workers` defaulting to the cores), so the bench's
/// publisher and clients do not share its runtimes.
struct Node {
    engine: Arc<Engine>,
    stop: tokio_util::sync::CancellationToken,
    options: ClientOptions,
    _dir: tempfile::TempDir,
}

/// A node's configuration, as `eligd.toml` would give it.
fn config(dir: &Path, snapshot: &Path, urls: &[String], consumer: &str, follow_store: bool) -> anyhow::Result<Config> {
    let servers: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let c = dir.join("certs");
    let text = format!(
        "listen = \"127.0.0.1:0\"\nsnapshot_dir = \"{}\"\ndelta_log = \"{}\"\nlock_memory = false\n\
         [tls]\nca = \"{c}/ca.pem\"\ncert = \"{c}/server.pem\"\nkey = \"{c}/server.key\"\n\
         [feed]\nservers = [{}]\nconsumer = \"{consumer}\"\nfollow_store = {follow_store}\nbucket = \"BENCH\"\n",
        snapshot.display(),
        dir.join("deltas.log").display(),
        servers.join(", "),
        c = c.display(),
    );
    let path = dir.join("eligd.toml");
    std::fs::write(&path, text)?;
    Ok(RawConfig::from_file(&path)?.validate()?)
}

fn start(pki: &DevPki, snapshot: &Path, urls: &[String], consumer: &str) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    pki.write(&dir.path().join("certs"))?;
    let config = config(dir.path(), snapshot, urls, consumer, false)?;
    let options = EngineOptions { lock_memory: false, ..EngineOptions::default() };
    let opened = state::open_engine(&config.snapshot_dir, &config.delta_log, options)?;
    serve(Arc::new(opened.engine), config, dir)
}

/// Serve `engine` on a thread of its own until the node's stop token.
fn serve(engine: Arc<Engine>, config: Config, dir: tempfile::TempDir) -> anyhow::Result<Node> {
    let (tx, rx) = std::sync::mpsc::channel();
    let served = engine.clone();
    let certs = dir.path().join("certs");
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return drop(tx.send(Err(anyhow::Error::from(e)))),
        };
        rt.block_on(async move {
            match Server::start(&config, served).await {
                Ok(server) => {
                    let options = client_options(&server, &certs, "central");
                    let _ = tx.send(options.map(|o| (o, server.stop_token())));
                    server.run().await;
                }
                Err(e) => drop(tx.send(Err(e.into()))),
            }
        });
    });
    let (options, stop) = rx.recv()??;
    Ok(Node { engine, stop, options, _dir: dir })
}

fn client_options(server: &Server, certs: &Path, who: &str) -> anyhow::Result<ClientOptions> {
    let (cert, key) = (certs.join(format!("{who}.pem")), certs.join(format!("{who}.key")));
    Ok(ClientOptions::from_files(server.local_addr(), "localhost", &certs.join("ca.pem"), Some((&cert, &key)))?)
}

fn seq_of(e: &Engine) -> u64 {
    e.pin().view().delta_seq
}

/// Publish batch `text` as `eligd publish` does, retrying while JetStream
/// elects a leader.
async fn publish(
    p: &mut jetstream::Publisher,
    js: &jetstream::Context,
    stream: &mut jetstream::Stream,
    names: &StreamNames,
    text: &[u8],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match p.publish(js, stream, names, text).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                eprintln!("tier bench: publish retried: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn wait_seq(nodes: &[&Engine], seq: u64, bound: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    while nodes.iter().any(|e| seq_of(e) < seq) {
        anyhow::ensure!(Instant::now() < deadline, "nodes did not reach batch {seq} within {bound:?}");
        tokio::task::yield_now().await;
    }
    Ok(())
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64
}

/// Lookups on `client` for `secs` at `concurrency`: latency in µs.
async fn lookups(options: &ClientOptions, queries: &Arc<Vec<String>>, concurrency: usize, secs: u64) -> anyhow::Result<Histogram<u64>> {
    let client = Client::connect(options).await?;
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, queries) = (client.clone(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut i = w;
            while Instant::now() < until {
                let t = Instant::now();
                client.lookup(queries[i % queries.len()].as_bytes()).await?;
                h.record(t.elapsed().as_micros() as u64).ok();
                i += concurrency;
            }
            Ok::<_, elig_client::ClientError>(h)
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    client.close().await;
    Ok(all)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let snapshot_dir = bench_snapshot();
    let snapshot = Snapshot::load(&snapshot_dir).with_context(|| format!("opening {}", snapshot_dir.display()))?;
    eprintln!("tier bench: {} persons in {}", snapshot.persons(), snapshot_dir.display());
    let cluster = NatsCluster::start(3);
    let urls = cluster.urls();
    let names = StreamNames::new(urls.clone());
    let js = jetstream::connect(&names).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match jetstream::ensure_stream(&js, &names, 3).await {
            Ok(s) => break s,
            Err(e) => anyhow::ensure!(Instant::now() < deadline, "no stream: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pki = DevPki::generate(elig_benches::CLINIC, &["localhost"])?;
    let a = start(&pki, &snapshot_dir, &urls, "bench-a")?;
    let b = start(&pki, &snapshot_dir, &urls, "bench-b")?;
    let engines = [&*a.engine, &*b.engine];
    let mut publisher = jetstream::Publisher::new(&mut stream, &names).await?;
    let mut batches = Batches::new(&snapshot);
    let mut seq = 0u64;

    // 1. Throughput to every node.
    let texts: Vec<Vec<u8>> = (1..=args.batches).map(|s| batches.next(&snapshot, s)).collect();
    let t = Instant::now();
    for text in &texts {
        publish(&mut publisher, &js, &mut stream, &names, text).await?;
    }
    let published = t.elapsed();
    seq += args.batches;
    wait_seq(&engines, seq, Duration::from_secs(600)).await?;
    let all = t.elapsed();
    let rows = (args.batches as usize * ROWS) as f64;
    println!("throughput: {} batches of {ROWS} rows", args.batches);
    println!("  published (quorum on disk): {:.0} rows/s ({:.2} s)", rows / published.as_secs_f64(), published.as_secs_f64());
    println!("  applied on both nodes (each fsynced): {:.0} rows/s ({:.2} s)", rows / all.as_secs_f64(), all.as_secs_f64());

    // 2. Publish-to-visible latency, one batch at a time.
    let mut vis = [Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?];
    let mut acked = Histogram::<u64>::new(3)?;
    for _ in 0..args.latency {
        seq += 1;
        let text = batches.next(&snapshot, seq);
        let t = Instant::now();
        publish(&mut publisher, &js, &mut stream, &names, &text).await?;
        acked.record(t.elapsed().as_micros() as u64)?;
        let mut seen = [None, None];
        while seen.iter().any(Option::is_none) {
            for (i, e) in engines.iter().enumerate() {
                if seen[i].is_none() && seq_of(e) >= seq {
                    seen[i] = Some(t.elapsed());
                }
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "batch {seq} never became visible");
            tokio::task::yield_now().await;
        }
        for (h, s) in vis.iter_mut().zip(seen) {
            h.record(s.unwrap_or_default().as_micros() as u64)?;
        }
    }
    println!("publish-to-visible, {} batches of {ROWS} rows, one at a time (ms):", args.latency);
    let shown = [("publish acknowledged", &acked), ("visible on node A", &vis[0]), ("visible on node B", &vis[1])];
    for (name, h) in shown {
        println!("  {name}: p50 {:.1}  p99 {:.1}  max {:.1}", micros(h, 0.5) / 1000.0, micros(h, 0.99) / 1000.0, h.max() as f64 / 1000.0);
    }

    // 3. Lookups on node A, idle and then while it follows.
    let keys = sample_keys(&snapshot, 2048, SEED);
    let queries = Arc::new(keys.get(KeyKind::Card).present.clone());
    let idle = lookups(&a.options, &queries, args.concurrency, args.lookup_secs).await?;
    let following = Arc::new(AtomicBool::new(true));
    let feeder = {
        let (js, names, following) = (js.clone(), names.clone(), following.clone());
        let mut stream = jetstream::ensure_stream(&js, &names, 3).await?;
        let mut publisher = publisher;
        let texts: Vec<Vec<u8>> = (seq + 1..=seq + 600).map(|s| batches.next(&snapshot, s)).collect();
        let pace = (args.follow_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.follow_rate));
        tokio::spawn(async move {
            let mut sent = 0u64;
            let started = Instant::now();
            for text in &texts {
                if !following.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(p) = pace {
                    tokio::time::sleep_until((started + p * sent as u32).into()).await;
                }
                if publish(&mut publisher, &js, &mut stream, &names, text).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    let busy = lookups(&a.options, &queries, args.concurrency, args.lookup_secs).await?;
    following.store(false, Ordering::Relaxed);
    let sent = feeder.await?;
    seq += sent;
    wait_seq(&engines, seq, Duration::from_secs(600)).await?;
    println!("lookups on node A, concurrency {}, {} s each (µs):", args.concurrency, args.lookup_secs);
    println!("  idle:      {} lookups, p50 {:.0}  p99 {:.0}", idle.len(), micros(&idle, 0.5), micros(&idle, 0.99));
    println!(
        "  following: {} lookups, p50 {:.0}  p99 {:.0}  ({sent} batches of {ROWS} rows applied meanwhile, {} a second asked)",
        busy.len(),
        micros(&busy, 0.5),
        micros(&busy, 0.99),
        if args.follow_rate > 0.0 { format!("{}", args.follow_rate) } else { "back to back".into() }
    );
    println!("  p99 following / idle: {:.2}x", micros(&busy, 0.99) / micros(&idle, 0.99).max(1.0));

    // 4. A new node joins from the store.
    let bucket = elig_loader::store::open(&urls.join(","), "BENCH", Some(3)).await?;
    let t = Instant::now();
    elig_loader::store::publish(&bucket, &snapshot_dir).await?;
    let upload = t.elapsed();
    let dir = tempfile::tempdir()?;
    pki.write(&dir.path().join("certs"))?;
    let empty: PathBuf = dir.path().join("snapshot");
    let config = config(dir.path(), &empty, &urls, "bench-new", true)?;
    let feed = config.feed.clone().context("[feed]")?;
    let t = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    snapshots::join(&feed, &config.snapshot_dir, &config.delta_log, &stop).await.context("joined")?;
    let downloaded = t.elapsed();
    let options = EngineOptions { lock_memory: false, ..EngineOptions::default() };
    let opened = state::open_engine(&config.snapshot_dir, &config.delta_log, options)?;
    let opened_at = t.elapsed();
    let joined = serve(Arc::new(opened.engine), config, dir)?;
    wait_seq(&[&joined.engine], seq, Duration::from_secs(600)).await?;
    let ready = t.elapsed();
    println!("a new node joins from the store ({} persons, {seq} batches in the stream):", snapshot.persons());
    println!("  (publishing the snapshot to the bucket: {:.1} s)", upload.as_secs_f64());
    println!(
        "  download + verify {:.1} s, open {:.1} s, replay to batch {seq} {:.1} s: ready after {:.1} s",
        downloaded.as_secs_f64(),
        (opened_at - downloaded).as_secs_f64(),
        (ready - opened_at).as_secs_f64(),
        ready.as_secs_f64()
    );
    for n in [&joined, &a, &b] {
        n.stop.cancel();
    }
    Ok(())
}
