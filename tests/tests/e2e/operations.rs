//! Usage accounting, the audit log, metrics and graceful shutdown.

use elig_server::config::Limits;
use elig_tests::{fixture, As, TestServer, NOW, TODAY};
use elig_wire::report::CSV_HEADER;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn usage_counts_follow_a_known_sequence_of_requests() {
    let srv = TestServer::start_with(Limits::default(), true, false).await;
    let keys = &fixture().keys;
    let inst = keys.institution();
    let other = &keys.other_institution;
    let central = srv.client(As::Central).await;
    let institution = srv.client(As::Institution).await;

    // central: 2 cards for inst, 1 card for other, 1 serial, 1 processing number, 1 malformed
    for id in ["a", "b"] {
        central.lookup(keys.valid_card_query(inst, id).as_bytes()).await.unwrap();
    }
    central.lookup(keys.valid_card_query(other, "c").as_bytes()).await.unwrap();
    central.lookup(keys.serial_query(inst).as_bytes()).await.unwrap();
    central.lookup(keys.processing_query(inst).as_bytes()).await.unwrap();
    central.lookup(keys.valid_card_query(inst, "d").replace(&keys.card_valid.0, "0613048").as_bytes()).await.unwrap();
    // institution: a bulk of 2 cards + 1 ticket, one ticket fetch, one query as another institution
    let items = vec![
        keys.valid_card_query(inst, "e").into_bytes(),
        keys.valid_card_query(inst, "f").into_bytes(),
        keys.ticket_query(inst, "g").into_bytes(),
    ];
    institution.bulk(items).await.unwrap().collect().await.unwrap();
    let month = (TODAY / 100).to_string();
    institution.tickets(&elig_client::Client::tickets_query(None, &month, None)).await.unwrap().collect().await.unwrap();
    institution.lookup(keys.valid_card_query(other, "h").as_bytes()).await.unwrap();

    let op = srv.client(As::Operator).await;
    let report = op.usage().await.unwrap();
    assert_eq!(report.since, NOW);
    let row = |i: &str, k: &str| {
        let r = report.row(i, k).unwrap_or_else(|| panic!("no row {i} {k} in {:?}", report.rows));
        (r.requests, r.normal, r.errors, r.certificate_checks)
    };
    assert_eq!(row(inst, "insurance_card"), (4, 4, 0, 0));
    assert_eq!(row(other, "insurance_card"), (1, 1, 0, 0));
    assert_eq!(row(inst, "certificate_serial"), (1, 1, 0, 1));
    assert_eq!(row(inst, "processing_number"), (1, 1, 0, 1));
    assert_eq!(row(inst, "malformed"), (1, 0, 1, 0));
    assert_eq!(row(inst, "medical_ticket"), (1, 1, 0, 0));
    assert_eq!(row(inst, "delegated_tickets"), (1, 1, 0, 0));
    assert_eq!(row(inst, "refused"), (1, 0, 1, 0));
    assert_eq!(report.rows.len(), 8);

    let csv = report.to_csv();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    assert!(csv.contains(&format!("\n{inst},certificate_serial,1,1,0,1\n")), "{csv}");
    assert_eq!(csv.lines().count(), 9);

    // One audit line per answered query (the bulk: one per item), keys hashed.
    drop((central, institution, op));
    srv.server.shutdown().await;
    let audit = std::fs::read_to_string(srv.dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 11);
    let bulk: Vec<&serde_json::Value> = lines.iter().filter(|l| l["request"] == "bulk").collect();
    assert_eq!(bulk.len(), 3);
    assert_eq!(bulk.iter().map(|l| l["item"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(bulk.iter().all(|l| l["role"] == "institution" && l["institution"] == inst && l["validity"] == "1"));
    let serial = lines.iter().find(|l| l["kind"] == "certificate_serial").unwrap();
    assert_eq!(serial["key_hash"], elig_server::ops::audit::key_hash("e2e", &keys.serial_valid));
    assert_eq!(serial["generation"], fixture().engine.pin().id());
    assert_eq!(serial["time"], NOW.to_string());
    assert!(!audit.contains(&keys.serial_valid), "keys are never written as they are");
}

#[tokio::test]
async fn metrics_are_served_on_the_management_address() {
    let srv = TestServer::start_with(Limits::default(), false, true).await;
    let keys = &fixture().keys;
    let client = srv.client(As::Central).await;
    client.lookup(keys.valid_card_query(keys.institution(), "m").as_bytes()).await.unwrap();
    client.bulk(vec![keys.valid_card_query(keys.institution(), "n").into_bytes()]).await.unwrap().collect().await.unwrap();
    let addr = srv.server.metrics_addr().unwrap();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    // One request: the exporter keeps a connection open unless told otherwise.
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for name in [
        "elig_requests_total{request=\"lookup\",kind=\"insurance_card\",outcome=\"normal\"}",
        "elig_request_duration_seconds_bucket{request=\"lookup\",kind=\"insurance_card\",outcome=\"normal\",le=",
        "elig_bulk_items_total{kind=\"insurance_card\",outcome=\"normal\"}",
        "elig_connections_total{role=\"central\"}",
        "elig_connections_active",
        "elig_snapshot_generation",
        "elig_snapshot_mapped_bytes",
        "elig_snapshot_memory_locked",
        "elig_delta_sequence",
        "elig_overlay_changed_rows",
        "elig_overlay_persons",
        "elig_overlay_bytes",
    ] {
        assert!(body.contains(name), "{name} missing from\n{body}");
    }
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let client = srv.client(As::Central).await;
    let n = 2000;
    let queries = (0..n).map(|i| keys.valid_card_query(keys.institution(), &format!("s-{i}")).into_bytes()).collect();
    let mut results = client.bulk(queries).await.unwrap();
    // The bulk is in flight once its first answer is here.
    let first = results.next().await.unwrap().unwrap();
    assert_eq!(first.validity(), Some("1"));
    let stopping = tokio::spawn(srv.server.shutdown());
    let mut count = 1;
    while let Some(a) = results.next().await.unwrap() {
        assert_eq!(a.validity(), Some("1"));
        count += 1;
    }
    assert_eq!(count, n);
    assert_eq!(results.summary().unwrap().items, n as u64);
    stopping.await.unwrap();
    // Then the server is gone, with a clear reason.
    let err = client.lookup(keys.valid_card_query(keys.institution(), "late").as_bytes()).await.unwrap_err();
    assert!(err.to_string().contains("server shutting down"), "{err}");
}
