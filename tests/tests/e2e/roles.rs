//! The role matrix: who may ask what, and how a refused client hears it.

use elig_client::{Client, ClientError};
use elig_server::core::role::Role;
use elig_server::dev::certs::{issue_client, issue_client_with_usages, DevPki};
use elig_tests::{fixture, As, TestServer};

fn text(e: ClientError) -> String {
    e.to_string()
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let srv = TestServer::start().await;
    let q = fixture().keys.valid_card_query(fixture().keys.institution(), "x");
    let err = text(srv.try_lookup(None, &q).await.unwrap_err());
    assert!(err.contains("certificate required"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let srv = TestServer::start().await;
    let other = DevPki::generate("3410712362", &["localhost"]).unwrap();
    let q = fixture().keys.valid_card_query(fixture().keys.institution(), "x");
    let err = text(srv.try_lookup(Some(&other.central), &q).await.unwrap_err());
    assert!(err.contains("unknown CA"), "{err}");
    assert!(err.contains("refused the TLS handshake"), "{err}");
}

#[tokio::test]
async fn a_certificate_without_the_client_auth_usage_is_refused() {
    let srv = TestServer::start().await;
    let q = fixture().keys.valid_card_query(fixture().keys.institution(), "x");
    // The role URI is right; only the extended key usage extension is missing.
    let no_eku = issue_client_with_usages(&srv.pki, &[Role::Central], "no usage", &[]).unwrap();
    let err = text(srv.try_lookup(Some(&no_eku), &q).await.unwrap_err());
    assert!(
        err.contains("refused this client certificate")
            && err.contains("the client certificate is not for TLS client authentication: it has no extended key usage extension; client certificates need the extended key usage clientAuth (1.3.6.1.5.5.7.3.2)"),
        "{err}"
    );
    // The same role with clientAuth is served.
    let good = issue_client(&srv.pki, &[Role::Central], "with usage").unwrap();
    assert_eq!(srv.try_lookup(Some(&good), &q).await.unwrap().validity(), Some("1"));
}

#[tokio::test]
async fn a_certificate_without_a_role_is_refused() {
    let srv = TestServer::start().await;
    let nobody = issue_client(&srv.pki, &[], "nobody").unwrap();
    let q = fixture().keys.valid_card_query(fixture().keys.institution(), "x");
    let err = text(srv.try_lookup(Some(&nobody), &q).await.unwrap_err());
    assert!(err.contains("refused this client certificate") && err.contains("carries no role"), "{err}");
    let two = issue_client(&srv.pki, &[Role::Central, Role::Operator], "greedy").unwrap();
    let err = text(srv.try_lookup(Some(&two), &q).await.unwrap_err());
    assert!(err.contains("several roles"), "{err}");
}

#[tokio::test]
async fn an_institution_queries_only_as_itself() {
    let srv = TestServer::start().await;
    let keys = &fixture().keys;
    let client = srv.client(As::Institution).await;

    // As another institution: a permission error answer, nothing looked up.
    let a = client.lookup(keys.valid_card_query(&keys.other_institution, "x").as_bytes()).await.unwrap();
    assert_eq!(a.message_body.processing_result_status, "2");
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EP01"));
    let msg = a.message_body.processing_result_message.unwrap();
    assert!(msg.contains(&keys.other_institution) && msg.contains(keys.institution()), "{msg}");
    assert_eq!(a.message_header.medical_institution_code, keys.institution());
    assert!(a.message_body.result_list.is_empty());

    // As itself, or without naming an institution: answered.
    let a = client.lookup(keys.valid_card_query(keys.institution(), "y").as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
    let unnamed =
        keys.valid_card_query(keys.institution(), "z").replace(&format!("\"MedicalInstitutionCode\":\"{}\",", keys.institution()), "");
    assert!(!unnamed.contains("MedicalInstitutionCode"));
    let a = client.lookup(unnamed.as_bytes()).await.unwrap();
    assert_eq!(a.validity(), Some("1"));
    assert_eq!(a.message_header.medical_institution_code, keys.institution());

    // The same holds inside a bulk inquiry, item by item.
    let items = vec![
        keys.valid_card_query(keys.institution(), "b-0").into_bytes(),
        keys.valid_card_query(&keys.other_institution, "b-1").into_bytes(),
    ];
    let (answers, summary) = client.bulk(items).await.unwrap().collect().await.unwrap();
    assert_eq!(answers[0].validity(), Some("1"));
    assert_eq!(answers[1].message_body.processing_result_code.as_deref(), Some("EP01"));
    assert_eq!((summary.normal, summary.errors), (1, 1));

    // And for ticket fetches.
    let month = (elig_tests::TODAY / 100).to_string();
    let doc = client.tickets(&Client::tickets_query(Some(&keys.other_institution), &month, None)).await.unwrap().collect().await.unwrap();
    assert_eq!(doc.message_body.processing_result_code.as_deref(), Some("EP01"));
}

#[tokio::test]
async fn only_operators_run_operator_commands() {
    let srv = TestServer::start().await;
    for who in [As::Central, As::Institution] {
        let client = srv.client(who).await;
        let err = client.status().await.unwrap_err();
        assert_eq!(err.code(), Some("EP01"), "{err}");
        assert!(err.to_string().contains("status needs an operator certificate"), "{err}");
        let err = client.usage().await.unwrap_err();
        assert_eq!(err.code(), Some("EP01"), "{err}");
        let frames = client.exchange_raw(&elig_wire::frame::encode(elig_wire::frame::Kind::Swap, b"{}")).await.unwrap();
        assert_eq!(frames.len(), 1);
        assert!(String::from_utf8_lossy(&frames[0].payload).contains("EP01"));
    }
    let op = srv.client(As::Operator).await;
    let status = op.status().await.unwrap();
    assert_eq!(status.engine.generation, fixture().engine.pin().id());
    assert_eq!(status.engine.persons, elig_tests::PERSONS);
    assert_eq!(status.protocol, "elig/1");
    op.usage().await.unwrap();
    // This server's engine has no delta log: a batch is refused, not applied without durability.
    let err = op.delta(&elig_tests::batch(1, &[])).await.unwrap_err();
    assert_eq!(err.code(), Some("ED03"), "{err}");
    assert!(err.to_string().contains("without a delta log"), "{err}");
    // An operator certificate does not query eligibility.
    let a = op.lookup(fixture().keys.valid_card_query(fixture().keys.institution(), "x").as_bytes()).await.unwrap();
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EP01"));
    let err = op.bulk(vec![b"{}".to_vec()]).await.unwrap().collect().await.unwrap_err();
    assert_eq!(err.code(), Some("EP01"), "{err}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_and_the_first_keeps_working() {
    let limits = elig_server::config::Limits { max_connections: 1, ..Default::default() };
    let srv = TestServer::start_with(limits, false, false).await;
    let first = srv.client(As::Central).await;
    let q = fixture().keys.valid_card_query(fixture().keys.institution(), "x");
    first.lookup(q.as_bytes()).await.expect("the first connection is served");
    let err = srv.try_lookup(Some(srv.pem(As::Central)), &q).await.expect_err("a second connection is over the limit");
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    first.lookup(q.as_bytes()).await.expect("the first connection still works");
}
