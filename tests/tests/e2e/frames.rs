//! Malformed, oversized, unknown and misplaced frames: an error answer on
//! that stream; the connection and the server stay up.

use std::time::Duration;

use elig_server::config::Limits;
use elig_tests::{fixture, As, TestServer};
use elig_wire::frame::{encode, Frame, Kind};
use elig_wire::request::ErrorBody;

fn error_of(frames: &[Frame]) -> ErrorBody {
    assert_eq!(frames.len(), 1, "one error frame expected, got {frames:?}");
    assert_eq!(frames[0].kind, Kind::Error);
    serde_json::from_slice(&frames[0].payload).unwrap()
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_connection_survives() {
    let srv = TestServer::start().await;
    let client = srv.client(As::Central).await;
    let keys = &fixture().keys;
    let good = keys.valid_card_query(keys.institution(), "ok");

    // Over the 64 KiB frame limit: refused from the header alone.
    let big = encode(Kind::Lookup, &vec![b' '; 100 * 1024]);
    let e = error_of(&client.exchange_raw(&big).await.unwrap());
    assert_eq!(e.code, "EF02");
    assert_eq!(e.message, "frame payload of 102400 bytes exceeds the limit of 65536 bytes");

    // A header announcing 4 GiB.
    let e = error_of(&client.exchange_raw(&[0xff, 0xff, 0xff, 0xff, 0x01]).await.unwrap());
    assert_eq!(e.code, "EF02");

    // Unknown kind.
    let mut unknown = encode(Kind::Lookup, good.as_bytes());
    unknown[4] = 0x7a;
    let e = error_of(&client.exchange_raw(&unknown).await.unwrap());
    assert_eq!((e.code.as_str(), e.message.as_str()), ("EF03", "unknown frame kind 0x7a"));

    // Truncated: the stream ends inside the payload, or inside the header.
    let full = encode(Kind::Lookup, good.as_bytes());
    let e = error_of(&client.exchange_raw(&full[..full.len() - 10]).await.unwrap());
    assert_eq!(e.code, "EF01");
    assert!(e.message.starts_with("truncated frame"), "{}", e.message);
    let e = error_of(&client.exchange_raw(&full[..3]).await.unwrap());
    assert_eq!((e.code.as_str(), e.message.as_str()), ("EF01", "truncated frame: 3 of 5 bytes"));

    // An empty stream.
    let e = error_of(&client.exchange_raw(b"").await.unwrap());
    assert_eq!(e.code, "EF01");

    // Frames where they do not belong.
    let e = error_of(&client.exchange_raw(&encode(Kind::BulkItem, good.as_bytes())).await.unwrap());
    assert_eq!(e.code, "EF04");
    let e = error_of(&client.exchange_raw(&encode(Kind::Answer, b"{}")).await.unwrap());
    assert_eq!(e.code, "EF04");
    assert!(e.message.contains("sent by servers"), "{}", e.message);

    // A bulk header that is not {"items": N}.
    let e = error_of(&client.exchange_raw(&encode(Kind::BulkBegin, b"[1,2]")).await.unwrap());
    assert_eq!(e.code, "EF05");

    // A lookup frame followed by a second request frame: the first is
    // answered, the second gets a frame-order error after that answer.
    let mut two = encode(Kind::Lookup, good.as_bytes());
    two.extend_from_slice(&encode(Kind::Lookup, good.as_bytes()));
    let frames = client.exchange_raw(&two).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Answer, Kind::Error]);
    let answer: serde_json::Value = serde_json::from_slice(&frames[0].payload).unwrap();
    assert_eq!(answer["MessageBody"]["QualificationValidity"], "1", "the first request is answered");
    let e = error_of(&frames[1..]);
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "EF04",
            "one request per stream: a 'lookup' frame followed the 'lookup' request and was not answered; open a new stream for each request"
        )
    );
    // Bytes after the request that are not a whole frame: refused likewise.
    let mut tail = encode(Kind::Lookup, good.as_bytes());
    tail.extend_from_slice(b"xyz");
    let frames = client.exchange_raw(&tail).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Answer, Kind::Error]);
    assert_eq!(error_of(&frames[1..]).message, "truncated frame: 3 of 5 bytes");

    // After all that, the same connection still answers.
    let a = client.lookup(good.as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
    assert!(client.connection().close_reason().is_none());
}

#[tokio::test]
async fn bulk_counts_and_limits_are_enforced() {
    let limits = Limits { max_bulk_items: 5, ..Limits::default() };
    let srv = TestServer::start_with(limits, false, false).await;
    let client = srv.client(As::Central).await;
    let keys = &fixture().keys;
    let q = keys.valid_card_query(keys.institution(), "b").into_bytes();

    // Over the limit: refused before any answer.
    let err = client.bulk(vec![q.clone(); 6]).await.unwrap().collect().await.unwrap_err();
    assert_eq!(err.code(), Some("EL01"));
    assert!(err.to_string().contains("bulk inquiry of 6 items exceeds the limit of 5 items"), "{err}");

    // Exactly at the limit: fine.
    let (answers, summary) = client.bulk(vec![q.clone(); 5]).await.unwrap().collect().await.unwrap();
    assert_eq!((answers.len(), summary.items, summary.normal), (5, 5, 5));

    // Fewer items than declared.
    let mut raw = encode(Kind::BulkBegin, br#"{"items":3}"#);
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    let frames = client.exchange_raw(&raw).await.unwrap();
    assert_eq!(frames.iter().filter(|f| f.kind == Kind::Answer).count(), 2);
    let e = error_of(&frames[2..]);
    assert_eq!((e.code.as_str(), e.message.as_str()), ("EL02", "bulk inquiry ended after 2 of 3 declared items"));

    // More items than declared.
    let mut raw = encode(Kind::BulkBegin, br#"{"items":1}"#);
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    let frames = client.exchange_raw(&raw).await.unwrap();
    assert_eq!(frames[0].kind, Kind::Answer);
    let e = error_of(&frames[1..]);
    assert_eq!(e.code, "EL02");
    assert!(e.message.starts_with("more items than the 1 declared"), "{}", e.message);

    // Another frame kind inside a bulk.
    let mut raw = encode(Kind::BulkBegin, br#"{"items":2}"#);
    raw.extend_from_slice(&encode(Kind::Status, b""));
    let e = error_of(&client.exchange_raw(&raw).await.unwrap());
    assert_eq!(e.code, "EF04");

    // An oversized item in a bulk gets its error answer in place; the bulk
    // goes on to its summary, and what follows the skipped bytes is read as
    // frames again (here: one item too many).
    let mut raw = encode(Kind::BulkBegin, br#"{"items":2}"#);
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    raw.extend_from_slice(&encode(Kind::BulkItem, &vec![b' '; 70_000]));
    let frames = client.exchange_raw(&raw).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Answer, Kind::Answer, Kind::Summary]);
    let big: serde_json::Value = serde_json::from_slice(&frames[1].payload).unwrap();
    assert_eq!(big["MessageBody"]["ProcessingResultCode"], "EF02");
    raw.extend_from_slice(&encode(Kind::BulkItem, &q));
    let frames = client.exchange_raw(&raw).await.unwrap();
    assert_eq!(frames.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Answer, Kind::Answer, Kind::Error]);
    assert_eq!(error_of(&frames[2..]).code, "EL02");

    assert_eq!(client.lookup(&q).await.unwrap().validity(), Some("1"));
}

#[tokio::test]
async fn a_silent_stream_times_out_with_an_error_frame() {
    let limits = Limits { frame_timeout_secs: 1, ..Limits::default() };
    let srv = TestServer::start_with(limits, false, false).await;
    let client = srv.client(As::Central).await;
    let (mut send, recv) = client.connection().open_bi().await.unwrap();
    // Half a header, then nothing (but the stream stays open).
    send.write_all(&[1, 0]).await.unwrap();
    let mut recv = elig_client::frames::FrameStream::new(recv);
    let frame = recv.next_frame(1 << 20, Duration::from_secs(30)).await.unwrap().unwrap();
    assert_eq!(frame.kind, Kind::Error);
    let e: ErrorBody = serde_json::from_slice(&frame.payload).unwrap();
    assert_eq!(e.code, "EL03");
    // Keep-alives kept the connection itself up.
    let keys = &fixture().keys;
    let a = client.lookup(keys.valid_card_query(keys.institution(), "after").as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
}
