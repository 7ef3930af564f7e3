//! Every request kind, end to end, with concrete answers.

use elig_client::cli::Format;
use elig_client::Client;
use elig_tests::{fixture, As, Keys, TestServer, NOW, TODAY};

#[tokio::test]
async fn insurance_card_my_number_and_ticket_lookups() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let gen = fixture().engine.pin().id().to_string();
    let client = srv.client(As::Central).await;
    let inst = keys.institution();

    let a = client.lookup(keys.valid_card_query(inst, "p-1").as_bytes()).await.unwrap();
    assert_eq!(a.message_body.processing_result_status, "1");
    assert_eq!(a.validity(), Some("1"));
    assert_eq!(a.message_header.snapshot_generation, gen);
    assert_eq!(a.message_header.medical_institution_code, inst);
    assert_eq!(a.message_header.process_execution_time, NOW.to_string());
    assert_eq!(a.message_header.reference_classification, "2");
    let entry = &a.message_body.result_list[0];
    assert_eq!(entry.insurer_number, elig_engine::values::insurer(&keys.card_valid.0), "NHI numbers right-aligned in 8");
    assert_eq!(entry.insured_identification_number.as_deref(), Some(keys.card_valid.2.as_str()));
    assert_eq!(entry.birthdate.as_deref(), Some(keys.card_valid.4.to_string().as_str()));
    let echo = a.message_body.qualification_confirm_search_info.as_ref().unwrap();
    assert_eq!(echo.arbitrary_identifier.as_deref(), Some("p-1"));

    let mut wrong_birth = keys.card_valid.clone();
    wrong_birth.4 = 19000101;
    let a = client.lookup(Keys::card_query(&wrong_birth, inst, "p-2").as_bytes()).await.unwrap();
    assert_eq!((a.message_body.processing_result_status.as_str(), a.validity()), ("1", Some("4")));
    assert!(a.message_body.result_list.is_empty(), "a birth date mismatch never leaks the record");

    if let Some(lost) = &keys.card_lost {
        let a = client.lookup(Keys::card_query(lost, inst, "p-3").as_bytes()).await.unwrap();
        assert_eq!(a.validity(), Some("2"));
    }

    for q in [keys.serial_query(inst), keys.processing_query(inst)] {
        let a = client.lookup(q.as_bytes()).await.unwrap();
        assert_eq!(a.validity(), Some("1"), "{q}");
        assert_eq!(a.message_header.reference_classification, "1");
        assert!(!a.message_body.result_list.is_empty());
    }

    // The delegated institution sees the ticket; another one gets code 6 and no numbers.
    let a = client.lookup(keys.ticket_query(inst, "t-1").as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
    let entry = &a.message_body.result_list[0];
    assert_eq!(entry.insured_card_classification.as_deref(), Some("A1"));
    assert_eq!(entry.insurer_number.as_deref(), Some(keys.ticket.0.as_str()));
    let tickets = entry.public_expense_result_list.as_ref().unwrap();
    assert!(tickets.iter().all(|t| t.designated_medical_institution_code.as_deref() == Some(inst)));
    let a = client.lookup(keys.ticket_query(&keys.other_institution, "t-2").as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("6"));
    assert_eq!(a.message_body.result_list[0].insurer_number, None, "payer number withheld when not delegated");

    // Malformed: an error answer that names the field, never "no such qualification".
    let bad = keys.valid_card_query(inst, "p-9").replace(&keys.card_valid.0, "06130489");
    let a = client.lookup(bad.as_bytes()).await.unwrap();
    assert_eq!(a.message_body.processing_result_status, "2");
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EQ04"));
    assert!(a.message_body.processing_result_message.as_deref().unwrap().contains("InsuranceCard.InsurerNumber"));
    assert_eq!(a.validity(), None);
    let a = client.lookup(b"not json").await.unwrap();
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EQ01"));
    client.close().await;
}

#[tokio::test]
async fn delegated_ticket_fetch_streams_units_then_summary() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let month = (TODAY / 100).to_string();
    let want = keys.tickets_of_institution;

    // The central system names the institution.
    let central = srv.client(As::Central).await;
    let mut stream = central.tickets(&Client::tickets_query(Some(keys.institution()), &month, None)).await.unwrap();
    let mut units = Vec::new();
    while let Some(u) = stream.next().await.unwrap() {
        units.push(u);
    }
    assert_eq!(units.len(), want);
    let summary = stream.summary().unwrap();
    assert_eq!(summary.message_header.number_of_processing_result.as_deref(), Some(want.to_string().as_str()));
    assert_eq!(summary.message_header.number_of_error.as_deref(), Some("0"));
    assert!(summary.message_body.bulk_confirm_unit_list.is_empty(), "units come as their own frames");
    for u in &units {
        let r = u.result_of_qualification_confirmation.as_ref().unwrap();
        let t = &r.public_expense_result_list.as_ref().unwrap()[0];
        assert_eq!(t.designated_medical_institution_code.as_deref(), Some(keys.institution()));
        assert_eq!(t.medical_treatment_month.as_deref(), Some(month.as_str()));
    }

    // The institution itself, without naming itself: the same units.
    let inst = srv.client(As::Institution).await;
    let answer = inst.tickets(&Client::tickets_query(None, &month, None)).await.unwrap().collect().await.unwrap();
    assert_eq!(answer.message_body.bulk_confirm_unit_list, units);
    assert_eq!(answer.message_header.medical_institution_code, keys.institution());

    // As one document through a single lookup, counts included.
    let doc = central.lookup(&Client::tickets_query(Some(keys.institution()), &month, None)).await.unwrap();
    assert_eq!(doc.message_body.bulk_confirm_unit_list.len(), want);
    assert_eq!(doc.message_header.number_of_normal_processing.as_deref(), Some(want.to_string().as_str()));

    // An institution no ticket names: zero units, a normal summary.
    let none = central.tickets(&Client::tickets_query(Some(&keys.other_institution), &month, None)).await.unwrap().collect().await.unwrap();
    assert!(none.message_body.bulk_confirm_unit_list.is_empty());
    assert_eq!(none.message_header.number_of_processing_result.as_deref(), Some("0"));

    // A ticket fetch takes only a DelegatedTickets query.
    let wrong = central.tickets(keys.valid_card_query(keys.institution(), "x").as_bytes()).await.unwrap().collect().await.unwrap();
    assert_eq!(wrong.message_body.processing_result_code.as_deref(), Some("EB01"));
}

#[tokio::test]
async fn many_concurrent_requests_share_one_connection() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let client = srv.client(As::Central).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = client.clone();
        let q = keys.valid_card_query(keys.institution(), &format!("c-{i}"));
        tasks.push(tokio::spawn(async move { c.lookup(q.as_bytes()).await }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let a = t.await.unwrap().unwrap();
        assert_eq!(a.validity(), Some("1"));
        // Each answer pairs with its query by the echoed identifier.
        let echo = a.message_body.qualification_confirm_search_info.as_ref().and_then(|s| s.arbitrary_identifier.as_deref());
        assert_eq!(echo, Some(format!("c-{i}").as_str()));
        assert_eq!(a.message_header.arbitrary_file_identifier, None, "the file identifier is not the query's");
    }
    assert_eq!(srv.server.usage().row(keys.institution(), "insurance_card").unwrap().requests, 200);
}

#[tokio::test]
async fn answers_render_as_xmlmsg_in_both_encodings() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let client = srv.client(As::Central).await;
    let a = client.lookup(keys.valid_card_query(keys.institution(), "x-1").as_bytes()).await.unwrap();
    let utf8 = String::from_utf8(Format::Xml { shift_jis: false }.render(&a, false)).unwrap();
    assert!(utf8.contains("<XmlMsg>") && utf8.contains("<QualificationValidity>1</QualificationValidity>"), "{utf8}");
    let insurer = elig_engine::values::insurer(&keys.card_valid.0).unwrap();
    assert!(utf8.contains(&format!("<InsurerNumber>{insurer}</InsurerNumber>")), "{utf8}");
    let sjis = Format::Xml { shift_jis: true }.render(&a, false);
    let back = elig_client::xml::parse(&sjis).unwrap();
    assert_eq!(back.message_body.result_list[0].name, a.message_body.result_list[0].name);
}

/// The client reads each response's stream to its end: a stream dropped
/// early costs a STOP_SENDING frame per request, both sides processing it.
#[tokio::test]
async fn single_requests_leave_no_stream_half_read() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let client = srv.client(As::Central).await;
    let inst = keys.institution();
    for i in 0..20 {
        let a = client.lookup(keys.valid_card_query(inst, &format!("s-{i}")).as_bytes()).await.unwrap();
        assert_eq!(a.validity(), Some("1"));
    }
    let stats = client.connection().stats();
    assert_eq!(stats.frame_tx.stop_sending, 0, "STOP_SENDING frames sent for 20 lookups");
    assert!(stats.frame_tx.stream >= 20, "the lookups went over the connection: {:?}", stats.frame_tx);
}
