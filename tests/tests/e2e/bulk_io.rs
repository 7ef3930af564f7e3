//! The bulk path's batched I/O: items read in whatever pieces they arrive,
//! answers written in batches yet streamed as computed, in order, with the
//! summary last.

use std::time::Duration;

use elig_client::frames::FrameStream;
use elig_engine::answer::Answer;
use elig_tests::{fixture, As, TestServer};
use elig_wire::frame::{decode_all, encode, Frame, Kind, CLIENT_MAX_FRAME};
use elig_wire::report::BulkSummary;

/// The item an answer frame is for: its echoed identifier, or for a refused
/// item (no echo: its key cannot be read whole) its error code.
fn id_of(f: &Frame) -> String {
    assert_eq!(f.kind, Kind::Answer, "{}", String::from_utf8_lossy(&f.payload));
    let a: Answer = serde_json::from_slice(&f.payload).unwrap();
    match a.message_body.qualification_confirm_search_info.and_then(|s| s.arbitrary_identifier) {
        Some(id) => id.to_string(),
        None => a.message_body.processing_result_code.map(|c| c.to_string()).unwrap_or_default(),
    }
}

/// What `id_of` gives for item `i` of [`items`].
fn expected_id(i: usize) -> String {
    if i % 7 == 3 {
        "EQ04".to_string()
    } else {
        format!("io-{i}")
    }
}

/// Items `0..n`, every 7th malformed (an error answer in its place).
fn items(n: usize) -> Vec<Vec<u8>> {
    let keys = &fixture().keys;
    let inst = keys.institution();
    (0..n)
        .map(|i| {
            let id = format!("io-{i}");
            if i % 7 == 3 {
                format!(
                    r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"{id}","InsuranceCard":{{"InsurerNumber":"06130489"}}}}"#
                )
            } else {
                keys.valid_card_query(inst, &id)
            }
            .into_bytes()
        })
        .collect()
}

fn bulk_bytes(items: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = encode(Kind::BulkBegin, format!(r#"{{"items":{}}}"#, items.len()).as_bytes());
    for q in items {
        raw.extend_from_slice(&encode(Kind::BulkItem, q));
    }
    raw
}

#[tokio::test]
async fn items_in_odd_pieces_are_answered_in_order_over_several_batches() {
    let srv = TestServer::start().await;
    let client = srv.client(As::Central).await;
    // 2,000 answers are several 64 KiB write batches.
    const N: usize = 2_000;
    let raw = bulk_bytes(&items(N));
    let (mut send, mut recv) = client.connection().open_bi().await.unwrap();
    // Pieces that cut headers and payloads anywhere, some sent apart.
    let mut at = 0;
    for (k, size) in [1usize, 2, 3, 4, 5, 6, 7, 300, 1, 4096, 13].iter().cycle().enumerate() {
        let end = (at + size).min(raw.len());
        send.write_all(&raw[at..end]).await.unwrap();
        at = end;
        if at == raw.len() {
            break;
        }
        if k % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    send.finish().unwrap();
    let bytes = recv.read_to_end(64 << 20).await.unwrap();
    let frames = decode_all(&bytes, CLIENT_MAX_FRAME).unwrap();
    assert_eq!(frames.len(), N + 1);
    for (i, f) in frames[..N].iter().enumerate() {
        assert_eq!(id_of(f), expected_id(i), "answer {i} out of order");
    }
    assert_eq!(frames[N].kind, Kind::Summary);
    let s: BulkSummary = serde_json::from_slice(&frames[N].payload).unwrap();
    let errors = (0..N).filter(|i| i % 7 == 3).count() as u64;
    assert_eq!((s.items, s.normal, s.errors), (N as u64, N as u64 - errors, errors));
    assert_eq!(s.generation, fixture().engine.pin().id());
}

#[tokio::test]
async fn answers_stream_while_the_client_is_still_sending() {
    let srv = TestServer::start().await;
    let client = srv.client(As::Central).await;
    let queries = items(20);
    let raw = bulk_bytes(&queries);
    let half = raw.len() - queries[10..].iter().map(|q| q.len() + elig_wire::HEADER_LEN).sum::<usize>();
    let (mut send, recv) = client.connection().open_bi().await.unwrap();
    let mut recv = FrameStream::new(recv);
    let wait = Duration::from_secs(10);
    send.write_all(&raw[..half]).await.unwrap();
    // The first ten answers come before the other ten items are sent: the
    // server does not hold a partial batch while it waits for input.
    for i in 0..10 {
        let f = recv.next_frame(CLIENT_MAX_FRAME, wait).await.unwrap().unwrap();
        assert_eq!(id_of(&f), expected_id(i));
    }
    send.write_all(&raw[half..]).await.unwrap();
    send.finish().unwrap();
    let mut frames = Vec::new();
    while let Some(f) = recv.next_frame(CLIENT_MAX_FRAME, wait).await.unwrap() {
        frames.push(f);
    }
    assert_eq!(frames.len(), 11);
    for (i, f) in frames[..10].iter().enumerate() {
        assert_eq!(id_of(f), expected_id(i + 10));
    }
    let s: BulkSummary = serde_json::from_slice(&frames[10].payload).unwrap();
    assert_eq!((s.items, s.errors), (20, 3));
}

#[tokio::test]
async fn an_oversized_item_gets_its_error_answer_in_place_and_the_bulk_goes_on() {
    let srv = TestServer::start().await;
    let client = srv.client(As::Central).await;
    let mut queries = items(6);
    // Item 3 (of 6): 70 KB, over the 64 KiB max_frame_bytes.
    queries[2] = vec![b' '; 70 * 1024];
    // Sent in small pieces, so the skipped payload arrives over many reads.
    let raw = bulk_bytes(&queries);
    let (mut send, mut recv) = client.connection().open_bi().await.unwrap();
    for piece in raw.chunks(1000) {
        send.write_all(piece).await.unwrap();
    }
    send.finish().unwrap();
    let frames = decode_all(&recv.read_to_end(1 << 20).await.unwrap(), CLIENT_MAX_FRAME).unwrap();
    assert_eq!(frames.len(), 7, "one answer per item, then the summary");
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(id_of(&frames[i]), expected_id(i), "item {i} is answered in its place");
    }
    let big: Answer = serde_json::from_slice(&frames[2].payload).unwrap();
    assert_eq!(big.message_body.processing_result_status, "2");
    assert_eq!(big.message_body.processing_result_code.as_deref(), Some("EF02"));
    assert_eq!(
        big.message_body.processing_result_message.as_deref(),
        Some(
            "bulk item 3 of 71680 bytes exceeds the limit of 65536 bytes (max_frame_bytes) and was not read; the other items are answered"
        )
    );
    let s: BulkSummary = serde_json::from_slice(&frames[6].payload).unwrap();
    // io-3 is malformed by design (every 7th from 3), plus the oversized one.
    assert_eq!((s.items, s.normal, s.errors), (6, 4, 2));

    // A header announcing more than 16 MiB is no query: the bulk ends with EF02 after the answers before it.
    let mut raw = encode(Kind::BulkBegin, br#"{"items":3}"#);
    for q in &items(2) {
        raw.extend_from_slice(&encode(Kind::BulkItem, q));
    }
    raw.extend_from_slice(&[0x00, 0x00, 0x00, 0x02, Kind::BulkItem as u8]);
    let frames = client.exchange_raw(&raw).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Answer, Kind::Answer, Kind::Error]);
    let e: elig_wire::request::ErrorBody = serde_json::from_slice(&frames[2].payload).unwrap();
    assert_eq!((e.code.as_str(), e.message.as_str()), ("EF02", "frame payload of 33554432 bytes exceeds the limit of 65536 bytes"));
}

/// The path MTU bulks reached on a connection (and no packet of the
/// client's was lost: oversized GSO batches are dropped without an error).
async fn mtu_after_a_bulk(server_payload: u16, client_payload: u16) -> u16 {
    let udp = elig_server::config::Udp { max_payload: server_payload, ..Default::default() };
    let srv = TestServer::start_with_udp(udp).await;
    let mut options = srv.options(Some(srv.pem(As::Central)));
    options.max_udp_payload = client_payload;
    let client = elig_client::Client::connect(&options).await.unwrap();
    // Discovery probes one size at a time, each confirmed by an ACK.
    for _ in 0..30 {
        let (answers, summary) = client.bulk(items(300)).await.unwrap().collect().await.unwrap();
        assert_eq!((answers.len(), summary.items), (300, 300));
        if client.connection().stats().path.current_mtu > 8000 {
            break;
        }
    }
    let path = client.connection().stats().path;
    assert_eq!(path.lost_packets, 0, "server {server_payload}, client {client_payload}");
    path.current_mtu
}

#[tokio::test]
async fn datagrams_grow_past_ethernet_size_only_when_both_sides_allow_it() {
    // Loopback carries 64 KiB datagrams; MTU discovery finds out by probing.
    assert!(mtu_after_a_bulk(65527, 65527).await > 8000);
    assert!(mtu_after_a_bulk(1452, 65527).await <= 1452);
    assert!(mtu_after_a_bulk(65527, 1452).await <= 1452);
}
