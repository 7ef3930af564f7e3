//! The request handler without a network: a plain function of the
//! generation, the role and the request.

use elig_server::config::Limits;
use elig_server::handler::{handle, Env, Request, Response, RuntimeInfo};
use elig_server::roles::Role;
use elig_server::usage::Usage;
use elig_tests::{clock, fixture, NOW, TODAY};

fn env(usage: &Usage) -> Env<'_> {
    Env { limits: Limits::default(), usage, runtime: RuntimeInfo::default() }
}

#[test]
fn every_request_kind_through_handle() {
    let fx = fixture();
    let gen = fx.engine.pin();
    let keys = &fx.keys;
    let inst = keys.institution();
    let usage = Usage::new(NOW);
    let env = env(&usage);
    let central = Role::Central;

    let (resp, outcomes) = handle(&gen, &central, Request::Lookup(keys.valid_card_query(inst, "h").into_bytes()), clock(), &env);
    let Response::Answer(a) = resp else { panic!("an answer expected") };
    assert_eq!(a.validity(), Some("1"));
    assert_eq!(outcomes.len(), 1);
    assert_eq!((outcomes[0].kind, outcomes[0].institution.as_str()), ("insurance_card", inst));
    assert!(outcomes[0].key.as_deref().unwrap().starts_with(&keys.card_valid.0));

    let (resp, outcomes) = handle(&gen, &central, Request::Lookup(keys.serial_query(inst).into_bytes()), clock(), &env);
    assert!(matches!(resp, Response::Answer(ref a) if a.validity() == Some("1")));
    assert!(outcomes[0].certificate_check);

    let items = vec![keys.valid_card_query(inst, "0").into_bytes(), b"{".to_vec(), keys.ticket_query(inst, "2").into_bytes()];
    let (resp, outcomes) = handle(&gen, &central, Request::Bulk(items), clock(), &env);
    let Response::Bulk { answers, summary } = resp else { panic!("a bulk response expected") };
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[1].message_body.processing_result_code.as_deref(), Some("EQ01"));
    assert_eq!((summary.items, summary.normal, summary.errors, summary.generation), (3, 2, 1, gen.id()));
    assert_eq!(outcomes.iter().map(|o| o.item).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);

    let q = elig_server::client::Client::tickets_query(Some(inst), &(TODAY / 100).to_string(), None);
    let (resp, _) = handle(&gen, &central, Request::Tickets(q), clock(), &env);
    let Response::Tickets { units, summary } = resp else { panic!("a ticket response expected") };
    assert_eq!(units.len(), keys.tickets_of_institution);
    assert_eq!(summary.message_header.number_of_processing_result, Some(units.len().to_string()));

    let (resp, _) = handle(&gen, &central, Request::Status, clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EP01"));
    let (resp, _) = handle(&gen, &Role::Operator, Request::Status, clock(), &env);
    let Response::Status(s) = resp else { panic!("status expected") };
    assert_eq!((s.generation, s.persons), (gen.id(), elig_tests::PERSONS));
    let (resp, _) = handle(&gen, &Role::Operator, Request::Swap(Vec::new()), clock(), &env);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EN01"));

    let over = Limits { max_bulk_items: 2, ..Limits::default() };
    let small = Env { limits: over, usage: &usage, runtime: RuntimeInfo::default() };
    let (resp, outcomes) = handle(&gen, &central, Request::Bulk(vec![b"{}".to_vec(); 3]), clock(), &small);
    assert!(matches!(resp, Response::Refused(ref r) if r.code == "EL01"));
    assert!(outcomes.is_empty());
}

#[test]
fn the_handler_never_panics_on_junk() {
    let fx = fixture();
    let gen = fx.engine.pin();
    let usage = Usage::new(NOW);
    let env = env(&usage);
    let junk: [&[u8]; 8] =
        [b"", b"null", b"[]", b"\xff\xfe", b"{\"MedicalInstitutionCode\":null}", b"{\"DelegatedTickets\":1}", b"1e999", b"{\"a\":"];
    for role in [Role::Central, Role::Institution(fx.keys.institution().to_string()), Role::Operator] {
        for j in junk {
            for req in [Request::Lookup(j.to_vec()), Request::Tickets(j.to_vec()), Request::Bulk(vec![j.to_vec()])] {
                let (resp, _) = handle(&gen, &role, req, clock(), &env);
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
