//! Bulk inquiries: answers in order, one per query, from one generation.

use elig_tests::{fixture, As, TestServer};

#[tokio::test]
async fn ten_thousand_items_are_answered_in_order() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let inst = keys.institution();
    let client = srv.client(As::Central).await;
    const N: usize = 10_000;
    // Cards and tickets, every 97th item malformed, every 101st a My Number query (not taken in bulk).
    let item = |i: usize| -> Vec<u8> {
        let id = format!("item-{i}");
        if i.is_multiple_of(97) {
            format!(r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"{id}","InsuranceCard":{{"InsurerNumber":"06130489"}}}}"#)
        } else if i.is_multiple_of(101) {
            format!(
                r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"{id}","MyNumberCard":{{"CertificateSerialNumber":"{}"}}}}"#,
                keys.serial_valid
            )
        } else if i.is_multiple_of(2) {
            keys.valid_card_query(inst, &id)
        } else {
            keys.ticket_query(inst, &id)
        }
        .into_bytes()
    };
    let queries: Vec<Vec<u8>> = (0..N).map(item).collect();
    let mut results = client.bulk(queries).await.unwrap();
    let generation = fixture().engine.pin().id().to_string();
    let mut i: usize = 0;
    let mut errors = 0;
    while let Some(a) = results.next().await.unwrap() {
        let echoed = a.message_body.qualification_confirm_search_info.as_ref().and_then(|s| s.arbitrary_identifier.clone());
        // A refused item whose card-data key cannot be read whole has no
        // echo (real clients refuse a partial one; a My Number key is not
        // card data): it pairs with its query by position.
        let want = (!i.is_multiple_of(97) && !i.is_multiple_of(101)).then(|| format!("item-{i}"));
        assert_eq!(echoed.as_deref(), want.as_deref(), "answer {i} out of order");
        assert_eq!(a.message_header.snapshot_generation, generation);
        if i.is_multiple_of(97) {
            assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EQ04"), "item {i}");
            errors += 1;
        } else if i.is_multiple_of(101) {
            assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EB01"), "item {i}");
            errors += 1;
        } else {
            assert_eq!(a.validity(), Some("1"), "item {i}");
            let want = if i.is_multiple_of(2) { &keys.card_valid.0 } else { &keys.ticket.0 };
            assert_eq!(a.message_body.result_list[0].insurer_number, elig_engine::values::insurer(want));
        }
        i += 1;
    }
    assert_eq!(i, N);
    let s = results.summary().unwrap();
    assert_eq!((s.items, s.errors, s.normal), (N as u64, errors, N as u64 - errors));
    assert_eq!(s.generation.to_string(), generation);
    let usage = srv.server.usage();
    let cards = usage.row(inst, "insurance_card").unwrap();
    assert_eq!(cards.requests, (0..N).filter(|i| i % 97 != 0 && i % 101 != 0 && i % 2 == 0).count() as u64);
}

#[tokio::test]
async fn an_empty_bulk_has_a_summary_only() {
    let srv = TestServer::start().await;
    let client = srv.client(As::Institution).await;
    let (answers, summary) = client.bulk(Vec::new()).await.unwrap().collect().await.unwrap();
    assert!(answers.is_empty());
    assert_eq!((summary.items, summary.normal, summary.errors), (0, 0, 0));
}
