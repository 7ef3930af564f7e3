//! The request machine's frame-order rules and refusals, without a
//! network; and the one refusal path: the offline answer (`elig-loader
//! lookup`, `View::answer_document`) and the server's are the same bytes.

use elig_engine::answer::{Answer, Status};
use elig_server::config::Limits;
use elig_server::core::{Asked, Role};
use elig_tests::{clock, fixture};
use elig_wire::frame::{encode, encode_into, Kind};
use elig_wire::report::BulkSummary;

use crate::machine::{bulk, json, kinds, refusal, run, run_with};

fn code_of(a: &Answer) -> Option<&str> {
    a.message_body.processing_result_code.as_deref()
}

#[test]
fn a_stream_that_is_no_request_is_refused() {
    let fx = fixture();
    let c = &Role::Central;
    assert_eq!(refusal(&run(&fx.engine, c, b"")), "EF01", "an empty stream");
    let lookup = encode(Kind::Lookup, b"{}");
    assert_eq!(refusal(&run(&fx.engine, c, &lookup[..3])), "EF01", "a truncated header");
    assert_eq!(refusal(&run(&fx.engine, c, &lookup[..lookup.len() - 1])), "EF01", "a truncated payload");
    let mut unknown = lookup.clone();
    unknown[4] = 0x7a;
    assert_eq!(refusal(&run(&fx.engine, c, &unknown)), "EF03");
    assert_eq!(refusal(&run(&fx.engine, c, &encode(Kind::BulkItem, b"{}"))), "EF04", "an item without a bulk");
    for server_kind in [Kind::Answer, Kind::Unit, Kind::Summary, Kind::Report, Kind::Error] {
        let s = run(&fx.engine, c, &encode(server_kind, b"{}"));
        assert_eq!(refusal(&s), "EF04", "{}", server_kind.name());
        assert_eq!(s.label.request_name(), "unknown");
        assert!(s.outcomes.is_empty());
    }
    let small = Limits { max_frame_bytes: 1024, ..Limits::default() };
    let s = run_with(&fx.engine, c, &small, &encode(Kind::Lookup, &[b' '; 2000]));
    assert_eq!(refusal(&s), "EF02", "over max_frame_bytes");
    assert_eq!(s.frames.len(), 1, "refused from its header: no answer");
}

#[test]
fn one_request_per_stream() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let mut two = encode(Kind::Lookup, fx.keys.valid_card_query(inst, "a").as_bytes());
    encode_into(&mut two, Kind::Lookup, fx.keys.valid_card_query(inst, "b").as_bytes());
    let s = run(&fx.engine, &Role::Central, &two);
    assert_eq!(kinds(&s), [Kind::Answer, Kind::Error], "the first is answered, the second refused after it");
    assert_eq!(refusal(&s), "EF04");
    assert_eq!(s.outcomes.len(), 1);
    // After an operator's request too, and a broken frame after a request is refused by its own code.
    let mut status = encode(Kind::Status, b"");
    encode_into(&mut status, Kind::Usage, b"");
    let s = run(&fx.engine, &Role::Operator, &status);
    assert_eq!((kinds(&s), refusal(&s)), (vec![Kind::Report, Kind::Error], "EF04".to_string()));
    let mut torn = encode(Kind::Lookup, fx.keys.serial_query(inst).as_bytes());
    torn.extend_from_slice(&[9, 0]);
    let s = run(&fx.engine, &Role::Central, &torn);
    assert_eq!((kinds(&s), refusal(&s)), (vec![Kind::Answer, Kind::Error], "EF01".to_string()));
}

#[test]
fn a_bulk_inquiry_holds_exactly_its_declared_items() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let item = |id: &str| fx.keys.valid_card_query(inst, id).into_bytes();
    let c = &Role::Central;

    // Fewer items than declared: the answers, then EL02.
    let mut short = encode(Kind::BulkBegin, br#"{"items":3}"#);
    encode_into(&mut short, Kind::BulkItem, &item("1"));
    let s = run(&fx.engine, c, &short);
    assert_eq!((kinds(&s), refusal(&s)), (vec![Kind::Answer, Kind::Error], "EL02".to_string()));
    assert_eq!(s.outcomes.len(), 1);
    assert_eq!((s.label.request_name(), s.label.kind_name()), ("bulk", "bulk"));

    // More: every declared item answered, then EL02 instead of a summary.
    let mut long = bulk(&[item("1"), item("2")]);
    encode_into(&mut long, Kind::BulkItem, &item("3"));
    let s = run(&fx.engine, c, &long);
    assert_eq!((kinds(&s), refusal(&s)), (vec![Kind::Answer, Kind::Answer, Kind::Error], "EL02".to_string()));

    // Another frame kind inside a bulk.
    let mut mixed = encode(Kind::BulkBegin, br#"{"items":2}"#);
    encode_into(&mut mixed, Kind::BulkItem, &item("1"));
    encode_into(&mut mixed, Kind::Lookup, &item("2"));
    let s = run(&fx.engine, c, &mixed);
    assert_eq!((kinds(&s), refusal(&s)), (vec![Kind::Answer, Kind::Error], "EF04".to_string()));

    // An item over max_frame_bytes is answered in its place and skipped; the bulk goes on.
    let limits = Limits { max_frame_bytes: 1024, ..Limits::default() };
    let s = run_with(&fx.engine, c, &limits, &bulk(&[item("1"), vec![b' '; 5000], item("3")]));
    assert_eq!(kinds(&s), [Kind::Answer, Kind::Answer, Kind::Answer, Kind::Summary]);
    let big: Answer = json(&s.frames[1]);
    assert_eq!(code_of(&big), Some("EF02"));
    assert!(big.message_body.qualification_confirm_search_info.is_none(), "nothing of it was read: no echo");
    assert_eq!((s.outcomes[1].asked, s.outcomes[1].item), (Asked::Malformed, Some(1)));
    let sum: BulkSummary = json(&s.frames[3]);
    assert_eq!((sum.items, sum.normal, sum.errors), (3, 2, 1));

    // My Number and delegated queries are not bulk items.
    let s = run(&fx.engine, c, &bulk(&[fx.keys.serial_query(inst).into_bytes()]));
    assert_eq!(code_of(&json(&s.frames[0])), Some("EB01"));
}

#[test]
fn bulk_headers_and_limits_are_checked_first() {
    let fx = fixture();
    let c = &Role::Central;
    assert_eq!(refusal(&run(&fx.engine, c, &encode(Kind::BulkBegin, b"{\"items\":-1}"))), "EF05");
    assert_eq!(refusal(&run(&fx.engine, c, &encode(Kind::BulkBegin, b"{\"items\":1,\"x\":2}"))), "EF05");
    let small = Limits { max_bulk_items: 2, ..Limits::default() };
    let s = run_with(&fx.engine, c, &small, &bulk(&[b"{}".to_vec(), b"{}".to_vec(), b"{}".to_vec()]));
    assert_eq!(refusal(&s), "EL01");
    assert!(s.outcomes.is_empty(), "refused before any item");
    assert_eq!(refusal(&run(&fx.engine, &Role::Operator, &bulk(&[b"{}".to_vec()]))), "EP01");
}

#[test]
fn operator_requests_need_an_operator_and_a_good_payload() {
    let fx = fixture();
    let inst = Role::Institution(fx.keys.institution().to_string());
    for role in [Role::Central, inst] {
        for (kind, payload) in [(Kind::Status, &b""[..]), (Kind::Usage, b""), (Kind::Delta, b"{}"), (Kind::Swap, b"{}")] {
            let s = run(&fx.engine, &role, &encode(kind, payload));
            assert_eq!(refusal(&s), "EP01", "{} as {role}", kind.name());
            assert!(json::<elig_wire::request::ErrorBody>(&s.frames[0]).message.contains("needs an operator certificate"));
        }
    }
    let op = &Role::Operator;
    assert_eq!(refusal(&run(&fx.engine, op, &encode(Kind::Swap, b""))), "EF05");
    assert_eq!(refusal(&run(&fx.engine, op, &encode(Kind::Swap, br#"{"snapshot_dir":"relative/dir"}"#))), "EF05");
    // A delta batch may be larger than max_frame_bytes, from an operator only.
    let limits = Limits { max_frame_bytes: 1024, max_delta_bytes: 1 << 20, ..Limits::default() };
    let big = elig_tests::batch(1, &vec![serde_json::json!({"op": "delete", "table": "insurance", "key": {"x": 1}}); 100]);
    assert!(big.len() > 1024);
    let s = run_with(&fx.engine, op, &limits, &encode(Kind::Delta, &big));
    assert_eq!(refusal(&s), "ED03", "read whole and given to the engine (which has no log here)");
    let s = run_with(&fx.engine, &Role::Central, &limits, &encode(Kind::Delta, &big));
    assert_eq!(refusal(&s), "EF02", "another role's delta frame is held to max_frame_bytes");
}

#[test]
fn queries_the_role_may_not_ask_get_error_answers() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let q = fx.keys.valid_card_query(inst, "r");
    let s = run(&fx.engine, &Role::Operator, &encode(Kind::Lookup, q.as_bytes()));
    assert_eq!(kinds(&s), [Kind::Answer]);
    let a: Answer = json(&s.frames[0]);
    assert_eq!((a.status(), code_of(&a)), (Status::Error, Some("EP01")));
    assert_eq!((s.outcomes[0].asked, s.outcomes[0].status), (Asked::Refused, Status::Error));
    assert_eq!((s.label.kind_name(), s.label.verdict.name()), ("refused", "refused"));

    let other = Role::Institution(fx.keys.other_institution.clone());
    let s = run(&fx.engine, &other, &encode(Kind::Lookup, q.as_bytes()));
    let a: Answer = json(&s.frames[0]);
    assert_eq!(code_of(&a), Some("EP01"));
    assert_eq!(a.message_header.medical_institution_code, fx.keys.other_institution.as_str(), "the certificate's institution");
}

#[test]
fn junk_never_panics_and_is_always_answered_or_refused() {
    let fx = fixture();
    let junk: [&[u8]; 8] =
        [b"", b"null", b"[]", b"\xff\xfe", b"{\"MedicalInstitutionCode\":null}", b"{\"DelegatedTickets\":1}", b"1e999", b"{\"a\":"];
    for role in [Role::Central, Role::Institution(fx.keys.institution().to_string()), Role::Operator] {
        for j in junk {
            for kind in [Kind::Lookup, Kind::Tickets] {
                let s = run(&fx.engine, &role, &encode(kind, j));
                assert_eq!(s.frames.len(), 1);
                let a: Answer = json(&s.frames[0]);
                assert_eq!(a.status(), Status::Error, "{role} {:?}", String::from_utf8_lossy(j));
            }
            let s = run(&fx.engine, &role, &bulk(&[j.to_vec()]));
            if role == Role::Operator {
                assert_eq!(refusal(&s), "EP01");
            } else {
                assert_eq!(kinds(&s), [Kind::Answer, Kind::Summary]);
            }
        }
    }
    // Random bytes as a whole stream: every run ends answered or refused.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let len = (x % 40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect();
        let s = run(&fx.engine, &Role::Central, &bytes);
        assert!(!s.frames.is_empty(), "{bytes:?}");
    }
}

/// The one refusal path: for the same malformed (and good) queries, the
/// offline answer (`View::answer_document`, what `elig-loader lookup`
/// prints) and eligd's answer are the same bytes.
#[test]
fn offline_and_server_answers_are_byte_identical() {
    let fx = fixture();
    let keys = &fx.keys;
    let inst = keys.institution();
    let card = &keys.card_valid;
    let queries: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"[]".to_vec(),
        b"\xef\xbb\xbf{}".to_vec(),
        br#"{"MedicalInstitutionCode":"3410712362"}"#.to_vec(),
        br#"{"MedicalInstitutionCode":"12345","ArbitraryIdentifier":"x1","MyNumberCard":{"CertificateSerialNumber":"AB"}}"#.to_vec(),
        format!(r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"id-7","InsuranceCard":{{"InsurerNumber":"{}","InsuredIdentificationNumber":"{}","Birthdate":"1800"}}}}"#, card.0, card.2).into_bytes(),
        format!(r#"{{"MedicalInstitutionCode":"{inst}","InsuranceCard":{{"InsurerNumber":"{}","InsuredIdentificationNumber":"{}","Birthdate":"{}","Colour":"red"}}}}"#, card.0, card.2, card.4).into_bytes(),
        format!(r#"{{"MedicalInstitutionCode":"{inst}","MedicalTicket":{{"PayerNumber":"x","RecipientNumber":"1","Birthdate":"19800101"}}}}"#).into_bytes(),
        format!(r#"{{"MedicalInstitutionCode":"{inst}","QualificationConfirmationDate":"2026-11-22","DelegatedTickets":{{"MedicalTreatmentMonth":"202611"}}}}"#).into_bytes(),
        format!(r#"{{"MedicalInstitutionCode":"{inst}","InsuranceCard":{{}}}} trailing"#).into_bytes(),
        keys.valid_card_query(inst, "good").into_bytes(),
        keys.serial_query(inst).into_bytes(),
    ];
    let gen = fx.engine.pin();
    for q in &queries {
        let offline = serde_json::to_vec(&gen.view().answer_document(q, clock())).unwrap();
        let s = run(&fx.engine, &Role::Central, &encode(Kind::Lookup, q));
        assert_eq!(kinds(&s), [Kind::Answer]);
        assert_eq!(
            String::from_utf8_lossy(&s.frames[0].payload),
            String::from_utf8_lossy(&offline),
            "query {:?}",
            String::from_utf8_lossy(q)
        );
    }
}

#[test]
fn a_joining_node_refuses_queries_retryably_and_serves_its_operator() {
    use elig_server::core::{local, Machine};
    let fx = fixture();
    let limits = Limits::default();
    let joining = || Machine::new(&fx.engine, &Role::Central, &limits, clock()).not_ready(Some("this node is joining".into()));
    let inst = fx.keys.institution();
    let facts = crate::machine::facts();
    for request in [
        encode(Kind::Lookup, fx.keys.valid_card_query(inst, "j").as_bytes()),
        encode(Kind::Tickets, fx.keys.ticket_query(inst, "j").as_bytes()),
        bulk(&[fx.keys.valid_card_query(inst, "j").into_bytes()]),
    ] {
        let s = local::drive(joining(), &fx.engine, &limits, &request, &facts);
        assert_eq!(refusal(&s), "EN01");
        assert!(s.outcomes.is_empty(), "nothing answered from a node that has not caught up");
    }
    let op = Machine::new(&fx.engine, &Role::Operator, &limits, clock()).not_ready(Some("joining".into()));
    let s = local::drive(op, &fx.engine, &limits, &encode(Kind::Status, b""), &facts);
    assert_eq!(kinds(&s), [Kind::Report], "status is served while joining");
    // The same lookup on a node that is ready is answered.
    let ready = Machine::new(&fx.engine, &Role::Central, &limits, clock()).not_ready(None);
    let s = local::drive(ready, &fx.engine, &limits, &encode(Kind::Lookup, fx.keys.valid_card_query(inst, "j").as_bytes()), &facts);
    assert_eq!(kinds(&s), [Kind::Answer]);
}

#[test]
fn a_delta_dry_run_is_an_operators_and_applies_nothing() {
    use elig_wire::report::DeltaCheck;
    let w = elig_tests::Writable::fixture();
    let good = elig_tests::batch(1, &[]);
    let s = run(&w.engine, &Role::Operator, &encode(Kind::DeltaCheck, &good));
    assert_eq!(kinds(&s), [Kind::Report]);
    let c: DeltaCheck = serde_json::from_slice(&s.frames[0].payload).unwrap();
    assert_eq!((c.seq, c.node_seq, c.duplicate), (1, 0, false));
    assert_eq!(w.engine.pin().view().delta_seq, 0, "nothing applied");
    let gap = run(&w.engine, &Role::Operator, &encode(Kind::DeltaCheck, &elig_tests::batch(3, &[])));
    assert_eq!(refusal(&gap), "ED02");
    let s = run(&w.engine, &Role::Central, &encode(Kind::DeltaCheck, &good));
    assert_eq!(refusal(&s), "EP01");
}

/// A `MinimumDeltaSequence` newer than the node: the machine asks its driver
/// to wait (`Step::Wait`), then answers from that seq or refuses `EN02`,
/// never from before it. And a batch that contradicts the one applied under
/// its seq is refused `ED04`.
#[test]
fn a_query_waits_for_the_delta_seq_it_asks_for() {
    let w = elig_tests::Writable::fixture();
    let keys = &fixture().keys;
    let q = keys.valid_card_query(keys.institution(), "w");
    let asking = |seq: u64| encode(Kind::Lookup, format!("{{\"MinimumDeltaSequence\":\"{seq}\",{}", &q[1..]).as_bytes());
    let c = &Role::Central;

    // Not there within the bound: refused, nothing answered.
    let short = Limits { min_seq_wait_ms: 20, ..Limits::default() };
    let s = run_with(&w.engine, c, &short, &asking(1));
    assert_eq!(refusal(&s), "EN02");
    assert!(s.outcomes.is_empty(), "no answer from before the seq asked for");

    // The batch arrives while the query waits: answered from it.
    let long = Limits { min_seq_wait_ms: 60_000, ..Limits::default() };
    let b1 = elig_tests::batch(1, &[]);
    let engine = &w.engine;
    let s = std::thread::scope(|t| {
        t.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            engine.apply(&b1).expect("batch 1")
        });
        run_with(engine, c, &long, &asking(1))
    });
    assert_eq!(kinds(&s), [Kind::Answer]);
    let a: Answer = json(&s.frames[0]);
    assert_eq!((code_of(&a), a.message_header.delta_sequence.as_str()), (None, "1"));
    assert_eq!(s.outcomes[0].delta_seq, 1);

    // Already there: answered at once, a seq not newer waits for nothing.
    let s = run_with(&w.engine, c, &short, &asking(1));
    assert_eq!(kinds(&s), [Kind::Answer]);

    // Another batch under the applied seq: a conflict, not a duplicate.
    let row = elig_tests::insurance_row("Q-W1", &keys.card_valid_person, &keys.card_valid.0, "W", "1");
    let other = elig_tests::batch(1, &[elig_tests::upsert("insurance", row)]);
    assert_eq!(refusal(&run(&w.engine, &Role::Operator, &encode(Kind::Delta, &other))), "ED04");
}
