//! A flood of QUIC Initial packets from a party without a certificate
//! (issue 12): 5,000 real Initials, each a new connection attempt, sent
//! from one raw UDP socket, must leave a legitimate client connecting and
//! answered within 1 s. Bounded: 5,000 datagrams, every wait has a timeout.

use std::collections::HashSet;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_client::Client;
use elig_server::dev::certs::DevPki;
use elig_server::quic::tls;
use elig_tests::{fixture, As, TestServer};

const INITIALS: usize = 5_000;

/// `n` distinct Initial datagrams (each a new connection's first packet,
/// with its own destination connection ID), as a real quinn client sends
/// them: its connection attempts go to a plain UDP socket that keeps them.
/// On a thread and runtime of their own, all gone before the flood starts.
fn capture_initials(n: usize) -> Vec<Vec<u8>> {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = sink.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut seen, mut out) = (HashSet::new(), Vec::new());
        let mut buf = [0u8; 2048];
        while out.len() < n {
            let Ok(len) = sink.recv(&mut buf) else { break };
            let d = &buf[..len];
            // Long header: flags, version (4), DCID length, DCID.
            let dcid = d.get(6..6 + *d.get(5).unwrap_or(&0) as usize).map(<[u8]>::to_vec);
            if d[0] & 0xf0 == 0xc0 && dcid.is_some_and(|c| seen.insert(c)) {
                out.push(d.to_vec());
            }
        }
        out
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // The server's name and CA do not matter: nothing ever answers these.
        let pki = DevPki::generate("3410712362", &["localhost"]).unwrap();
        let roots = tls::roots(pki.ca.cert_pem.as_bytes(), "ca").unwrap();
        let crypto = tls::quic_client(tls::client_config(roots, None).unwrap()).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(crypto));
        let mut attempts = Vec::with_capacity(n);
        for _ in 0..n {
            attempts.push(endpoint.connect(target, "localhost").unwrap());
            if attempts.len() % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let initials = tokio::task::spawn_blocking(move || reader.join().unwrap()).await.unwrap();
        drop(attempts);
        endpoint.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(10), endpoint.wait_idle()).await;
        assert_eq!(initials.len(), n, "captured Initials");
        initials
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_flood_leaves_a_legitimate_client_answered_within_a_second() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let query = keys.valid_card_query(keys.institution(), "after-flood");
    // The same without a flood, for the report.
    let started = Instant::now();
    let client = Client::connect(&srv.options(Some(srv.pem(As::Central)))).await.unwrap();
    let connected = started.elapsed();
    client.lookup(query.as_bytes()).await.unwrap();
    let quiet = (connected, started.elapsed());
    client.close().await;
    let initials = tokio::task::spawn_blocking(|| capture_initials(INITIALS)).await.unwrap();
    assert!(initials.iter().all(|d| d.len() >= 1200), "Initials are padded to 1200 bytes");

    // The flood: one socket, no certificate, never answers; in rounds as the
    // issue's probe sent them, each as fast as the socket takes them.
    let flood = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let sent = {
        let (flood, target, initials) = (flood.clone(), srv.addr, initials.clone());
        tokio::task::spawn_blocking(move || {
            let mut sent = 0;
            for round in initials.chunks(INITIALS / 5) {
                for d in round {
                    sent += usize::from(flood.send_to(d, target).is_ok());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            sent
        })
        .await
        .unwrap()
    };
    assert_eq!(sent, INITIALS);

    // Right after it: a legitimate client connects and is answered.
    let started = Instant::now();
    let (mut connected, mut took) = (Duration::ZERO, Duration::ZERO);
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let client = Client::connect(&srv.options(Some(srv.pem(As::Central)))).await?;
        connected = started.elapsed();
        let answer = client.lookup(query.as_bytes()).await;
        took = started.elapsed();
        client.close().await;
        answer
    })
    .await
    .expect("the legitimate lookup did not finish within 10 s");
    let answer = answered.expect("the legitimate client connects and is answered");
    assert_eq!(answer.validity(), Some("1"));
    let counts = srv.server.handshakes();
    eprintln!(
        "flood of {INITIALS} Initials: a legitimate client connected in {connected:?} and was answered {took:?} after the flood \
         (without a flood: {:?} and {:?}); handshakes {counts:?}",
        quiet.0, quiet.1
    );
    assert!(took < Duration::from_secs(1), "connect + lookup after the flood took {took:?}");
    // The flood held at most max_handshakes_per_address handshakes (one
    // source IP, unvalidated); the rest of it was answered with Retry.
    let limits = srv.config.limits;
    // (Plus the two legitimate clients.)
    assert!(counts.accepted <= limits.max_handshakes_per_address as u64 + 2, "{counts:?}");
    assert!(counts.retried >= 1, "{counts:?}");
    // Connections already open are unaffected, and a second client too.
    assert_eq!(srv.client(As::Institution).await.lookup(query.as_bytes()).await.unwrap().validity(), Some("1"));
}
