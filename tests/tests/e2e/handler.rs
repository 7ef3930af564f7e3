//! The request handler without a network: a plain function of the
//! generation, the role and the request.

use elig_server::config::Limits;
use elig_server::handler::{handle, Env, Request, Response, RuntimeInfo};
use elig_server::roles::Role;
use elig_server::usage::Usage;
use elig_tests::{clock, fixture, Keys, NOW, TODAY};

fn env(usage: &Usage) -> Env<'_> {
    Env { limits: Limits::default(), usage, runtime: RuntimeInfo::default() }
}

#[test]
fn every_request_kind_through_handle() {
    let fx = fixture();
    let gen = fx.engine.pin();
    let engine = &*fx.engine;
    let keys = &fx.keys;
    let inst = keys.institution();
    let usage = Usage::new(NOW);
    let env = env(&usage);
    let central = Role::Central;

    let (resp, outcomes) = handle(engine, &central, Request::Lookup(keys.valid_card_query(inst, "h").into_bytes()), clock(), &env);
    let Response::Answer(a) = resp else { panic!("an answer expected") };
    assert_eq!(a.validity(), Some("1"));
    assert_eq!(outcomes.len(), 1);
    assert_eq!((outcomes[0].kind, outcomes[0].institution.as_str()), ("insurance_card", inst));
    assert!(outcomes[0].key.as_deref().unwrap().starts_with(&keys.card_valid.0));

    let (resp, outcomes) = handle(engine, &central, Request::Lookup(keys.serial_query(inst).into_bytes()), clock(), &env);
    assert!(matches!(resp, Response::Answer(ref a) if a.validity() == Some("1")));
    assert!(outcomes[0].certificate_check);

    let items = vec![keys.valid_card_query(inst, "0").into_bytes(), b"{".to_vec(), keys.ticket_query(inst, "2").into_bytes()];
    let (resp, outcomes) = handle(engine, &central, Request::Bulk(items), clock(), &env);
    let Response::Bulk { answers, summary } = resp else { panic!("a bulk response expected") };
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[1].message_body.processing_result_code.as_deref(), Some("EQ01"));
    assert_eq!((summary.items, summary.normal, summary.errors, summary.generation), (3, 2, 1, gen.id()));
    assert_eq!(outcomes.iter().map(|o| o.item).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);

    let q = elig_server::client::Client::tickets_query(Some(inst), &(TODAY / 100).to_string(), None);
    let (resp, _) = handle(engine, &central, Request::Tickets(q), clock(), &env);
    let Response::Tickets { units, summary } = resp else { panic!("a ticket response expected") };
    assert_eq!(units.len(), keys.tickets_of_institution);
    assert_eq!(summary.message_header.number_of_processing_result.as_deref(), Some(units.len().to_string().as_str()));

    let (resp, _) = handle(engine, &central, Request::Status, clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EP01"));
    let (resp, _) = handle(engine, &Role::Operator, Request::Status, clock(), &env);
    let Response::Status(s) = resp else { panic!("status expected") };
    assert_eq!((s.generation, s.persons), (gen.id(), elig_tests::PERSONS));
    let (resp, _) = handle(engine, &Role::Operator, Request::Swap(Vec::new()), clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EF05"), "{resp:?}");
    // The shared fixture engine has no delta log: batches are refused, not applied.
    let (resp, _) = handle(engine, &Role::Operator, Request::Delta(elig_tests::batch(1, &[])), clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "ED03"), "{resp:?}");
    assert_eq!(engine.pin().overlay.visible(), 0);

    let over = Limits { max_bulk_items: 2, ..Limits::default() };
    let small = Env { limits: over, usage: &usage, runtime: RuntimeInfo::default() };
    let (resp, outcomes) = handle(engine, &central, Request::Bulk(vec![b"{}".to_vec(); 3]), clock(), &small);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EL01"));
    assert!(outcomes.is_empty());
}

#[test]
fn the_handler_never_panics_on_junk() {
    let fx = fixture();
    let engine = &*fx.engine;
    let usage = Usage::new(NOW);
    let env = env(&usage);
    let junk: [&[u8]; 8] =
        [b"", b"null", b"[]", b"\xff\xfe", b"{\"MedicalInstitutionCode\":null}", b"{\"DelegatedTickets\":1}", b"1e999", b"{\"a\":"];
    for role in [Role::Central, Role::Institution(fx.keys.institution().to_string()), Role::Operator] {
        for j in junk {
            for req in [Request::Lookup(j.to_vec()), Request::Tickets(j.to_vec()), Request::Bulk(vec![j.to_vec()])] {
                let (resp, _) = handle(engine, &role, req, clock(), &env);
                let status = match resp {
                    Response::Answer(a) => a.message_body.processing_result_status,
                    Response::Tickets { summary, .. } => summary.message_body.processing_result_status,
                    Response::Bulk { answers, .. } => answers[0].message_body.processing_result_status.clone(),
                    Response::Refused(r) => {
                        assert_eq!(r.code, "EP01", "only operators' bulks are refused whole");
                        "2".into()
                    }
                    other => panic!("unexpected {other:?}"),
                };
                assert_eq!(status, "2", "{role} {:?}", String::from_utf8_lossy(j));
            }
        }
    }
}

#[test]
fn deltas_and_status_through_handle() {
    let w = elig_tests::Writable::fixture();
    let usage = Usage::new(NOW);
    let env = env(&usage);
    let keys = &fixture().keys;
    let row = elig_tests::insurance_row("Q-H1", &keys.card_valid_person, &keys.card_valid.0, "H", "1");
    let b1 = elig_tests::batch(1, &[elig_tests::upsert("insurance", row)]);
    let (resp, _) = handle(&w.engine, &Role::Central, Request::Delta(b1.clone()), clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EP01" && r.message.contains("delta needs an operator")), "{resp:?}");
    let (resp, _) = handle(&w.engine, &Role::Operator, Request::Delta(b1), clock(), &env);
    let Response::Delta(ack) = resp else { panic!("an acknowledgement expected: {resp:?}") };
    assert_eq!((ack.seq, ack.duplicate, ack.rows), (1, false, 1));
    let (resp, _) = handle(&w.engine, &Role::Operator, Request::Status, clock(), &env);
    let Response::Status(s) = resp else { panic!("status expected") };
    assert_eq!((s.delta_seq, s.snapshot_delta_seq, s.overlay.changed_rows, s.overlay.persons), (1, 0, 1, 1));
    assert_eq!(s.delta_log.as_deref(), Some(w.log.to_str().unwrap()));
    assert_eq!(s.counts.get("persons"), Some(&elig_tests::PERSONS));
    let q = Keys::card_query(&(keys.card_valid.0.clone(), "H".into(), "1".into(), "01".into(), keys.card_valid.4), keys.institution(), "h");
    let (resp, _) = handle(&w.engine, &Role::Central, Request::Lookup(q.into_bytes()), clock(), &env);
    let Response::Answer(a) = resp else { panic!("an answer expected") };
    assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "1"));
}
