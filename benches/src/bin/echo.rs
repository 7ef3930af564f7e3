//! The transport's own figure: a bare quinn echo with eligd's TLS setup
//! (TLS 1.3, mutual certificates from a development PKI, ALPN `elig/1`),
//! 64-byte requests and 300-byte answers, one bidirectional stream per
//! request, so every throughput figure of `eligd` can be given beside what
//! QUIC alone does on the same machine in the same run.
//!
//! `cargo run --release -p elig-benches --bin echo -- --concurrency 64 --duration 20 --warmup 5`
//!
//! The server runs on a current-thread runtime of its own thread (as
//! eligd's one worker), the client on another: on this 2-core machine the
//! two share the cores as `eligd` and `elig bench` do.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use elig_server::dev::certs::DevPki;
use elig_server::quic::tls::{self, Identity};

#[derive(Parser, Debug)]
struct Args {
    /// Requests in flight at once, on one connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds run before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Request bytes.
    #[arg(long, default_value_t = 64)]
    request_bytes: usize,
    /// Answer bytes.
    #[arg(long, default_value_t = 300)]
    answer_bytes: usize,
}

fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(256));
    t
}

async fn serve(endpoint: quinn::Endpoint, answer: Arc<Vec<u8>>) {
    while let Some(incoming) = endpoint.accept().await {
        let answer = answer.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    if recv.read_to_end(64 * 1024).await.is_ok() && send.write_all(&answer).await.is_ok() {
                        let _ = send.finish();
                    }
                });
            }
        });
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let pki = DevPki::generate("1310000011", &["localhost"])?;
    let roots = tls::roots(pki.ca.cert_pem.as_bytes(), "ca")?;
    let server_id = Identity::from_pem(pki.server.cert_pem.as_bytes(), pki.server.key_pem.as_bytes(), "server")?;
    let client_id = Identity::from_pem(pki.central.cert_pem.as_bytes(), pki.central.key_pem.as_bytes(), "client")?;
    let mut server_config = quinn::ServerConfig::with_crypto(tls::quic_server(tls::server_config(roots.clone(), server_id)?)?);
    server_config.transport_config(Arc::new(transport()));
    let mut client_config = quinn::ClientConfig::new(tls::quic_client(tls::client_config(roots, Some(client_id))?)?);
    client_config.transport_config(Arc::new(transport()));

    // The server on a thread of its own, one current-thread runtime.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let answer = Arc::new(vec![b'a'; args.answer_bytes]);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("server runtime");
        rt.block_on(async move {
            let endpoint = quinn::Endpoint::server(server_config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind 127.0.0.1");
            let _ = addr_tx.send(endpoint.local_addr().expect("bound address"));
            serve(endpoint, answer).await;
        });
    });
    let addr: SocketAddr = addr_rx.recv().context("the echo server did not start")?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        endpoint.set_default_client_config(client_config);
        let conn = endpoint.connect(addr, "localhost")?.await.context("connecting to the echo server")?;
        let request = Arc::new(vec![b'q'; args.request_bytes]);
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..args.concurrency {
            let (conn, request, measuring, stop) = (conn.clone(), request.clone(), measuring.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
                let mut failed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let done = async {
                        let (mut send, mut recv) = conn.open_bi().await?;
                        send.write_all(&request).await?;
                        send.finish()?;
                        let got = recv.read_to_end(64 * 1024).await?;
                        anyhow::Ok(got.len())
                    }
                    .await;
                    if measuring.load(Ordering::Relaxed) {
                        match done {
                            Ok(_) => h.record(t.elapsed().as_micros().max(1) as u64).unwrap_or(()),
                            Err(_) => failed += 1,
                        }
                    }
                }
                (h, failed)
            }));
        }
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.duration)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut failed = 0;
        for t in tasks {
            let (h, f) = t.await?;
            all.add(h)?;
            failed += f;
        }
        println!(
            "echo: concurrency {}, {} B requests, {} B answers: {:.0} requests/s, p50 {} µs, p99 {} µs, p99.9 {} µs, {} failed, {:.1} s",
            args.concurrency,
            args.request_bytes,
            args.answer_bytes,
            all.len() as f64 / elapsed.as_secs_f64(),
            all.value_at_quantile(0.5),
            all.value_at_quantile(0.99),
            all.value_at_quantile(0.999),
            failed,
            elapsed.as_secs_f64()
        );
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        anyhow::Ok(())
    })
}
