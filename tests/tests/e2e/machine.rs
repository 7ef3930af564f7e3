//! The request machine without a network, every request kind: whole
//! request streams served by `core::local::serve`, which drives the same
//! `Machine` the QUIC stream task drives, jobs included.

use elig_engine::answer::{Answer, BulkConfirmUnit, Status, Validity};
use elig_engine::engine::Engine;
use elig_engine::query::KeyKind;
use elig_server::config::Limits;
use elig_server::core::local::{serve, Served};
use elig_server::core::{Asked, Ending, Facts, Request, Role, Verdict};
use elig_server::ops::usage::Usage;
use elig_tests::{clock, fixture, Keys, NOW, TODAY};
use elig_wire::frame::{encode, encode_into, Frame, Kind};
use elig_wire::report::{BulkSummary, DeltaAck, RuntimeInfo, StatusReport, SwapResult, UsageReport};
use elig_wire::request::ErrorBody;

/// What jobs read of the server: a usage counter and empty runtime facts.
pub struct TestFacts(pub Usage);

impl Facts for TestFacts {
    fn runtime(&self) -> RuntimeInfo {
        RuntimeInfo { connections_active: 3, ..RuntimeInfo::default() }
    }

    fn usage(&self) -> UsageReport {
        self.0.report(NOW)
    }
}

pub fn facts() -> TestFacts {
    TestFacts(Usage::new(NOW))
}

/// Serve `stream` as `role` with default limits.
pub fn run(engine: &Engine, role: &Role, stream: &[u8]) -> Served {
    serve(engine, role, &Limits::default(), clock(), stream, &facts())
}

pub fn run_with(engine: &Engine, role: &Role, limits: &Limits, stream: &[u8]) -> Served {
    serve(engine, role, limits, clock(), stream, &facts())
}

pub fn json<T: serde::de::DeserializeOwned>(f: &Frame) -> T {
    serde_json::from_slice(&f.payload).unwrap_or_else(|e| panic!("a {} frame: {e}", f.kind.name()))
}

pub fn kinds(s: &Served) -> Vec<Kind> {
    s.frames.iter().map(|f| f.kind).collect()
}

/// The code of the error frame that ends `s` (and of its `Ending`).
pub fn refusal(s: &Served) -> String {
    let last = s.frames.last().expect("an error frame");
    assert_eq!(last.kind, Kind::Error, "{:?}", kinds(s));
    let e: ErrorBody = json(last);
    let Ending::Refused(r) = &s.ending else { panic!("a refused ending, got {:?}", s.ending) };
    assert_eq!(r.code, e.code, "the ending and the frame agree");
    assert_eq!(s.label.verdict, Verdict::Refused);
    e.code
}

pub fn bulk(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = encode(Kind::BulkBegin, format!("{{\"items\":{}}}", items.len()).as_bytes());
    for q in items {
        encode_into(&mut out, Kind::BulkItem, q);
    }
    out
}

#[test]
fn a_lookup_is_one_answer_and_one_outcome() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let s = run(&fx.engine, &Role::Central, &encode(Kind::Lookup, fx.keys.valid_card_query(inst, "m1").as_bytes()));
    assert_eq!(kinds(&s), [Kind::Answer]);
    assert_eq!(s.ending, Ending::Answered);
    let a: Answer = json(&s.frames[0]);
    assert_eq!(a.validity_code(), Some(Validity::Valid));
    let o = &s.outcomes[..];
    assert_eq!(o.len(), 1);
    assert_eq!(
        (o[0].request, o[0].asked, o[0].status, o[0].validity),
        (Request::Lookup, Asked::Key(KeyKind::InsuranceCard), Status::Normal, Some(Validity::Valid))
    );
    assert_eq!((o[0].institution.as_str(), o[0].generation, o[0].item), (inst, fx.engine.pin().id(), None));
    assert!(o[0].key.as_deref().unwrap().starts_with(&fx.keys.card_valid.0));
    assert!(!o[0].certificate_check);
    assert_eq!(
        (s.label.request, s.label.asked, s.label.verdict),
        (Some(Request::Lookup), Some(Asked::Key(KeyKind::InsuranceCard)), Verdict::Normal)
    );
    assert_eq!((s.label.request_name(), s.label.kind_name(), s.label.verdict.name()), ("lookup", "insurance_card", "normal"));

    // My Number lookups are certificate checks (J-LIS bills them).
    let s = run(&fx.engine, &Role::Central, &encode(Kind::Lookup, fx.keys.serial_query(inst).as_bytes()));
    assert_eq!(s.outcomes[0].asked, Asked::Key(KeyKind::CertificateSerial));
    assert!(s.outcomes[0].certificate_check);
    let s = run(&fx.engine, &Role::Central, &encode(Kind::Lookup, fx.keys.processing_query(inst).as_bytes()));
    assert!(s.outcomes[0].certificate_check);
}

#[test]
fn a_bulk_inquiry_answers_every_item_in_order_then_its_summary() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let items = vec![fx.keys.valid_card_query(inst, "0").into_bytes(), b"{".to_vec(), fx.keys.ticket_query(inst, "2").into_bytes()];
    let s = run(&fx.engine, &Role::Central, &bulk(&items));
    assert_eq!(kinds(&s), [Kind::Answer, Kind::Answer, Kind::Answer, Kind::Summary]);
    assert_eq!(s.ending, Ending::Answered);
    let a: Answer = json(&s.frames[1]);
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EQ01"));
    let summary: BulkSummary = json(&s.frames[3]);
    assert_eq!((summary.items, summary.normal, summary.errors, summary.generation), (3, 2, 1, fx.engine.pin().id()));
    assert_eq!(s.outcomes.iter().map(|o| o.item).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
    assert!(s.outcomes.iter().all(|o| o.request == Request::Bulk));
    assert_eq!(s.outcomes[1].asked, Asked::Malformed);
    assert_eq!((s.label.request_name(), s.label.kind_name(), s.label.verdict), ("bulk", "bulk", Verdict::Normal));

    // Zero items is a summary of nothing.
    let s = run(&fx.engine, &Role::Central, &bulk(&[]));
    assert_eq!(kinds(&s), [Kind::Summary]);
    assert_eq!(json::<BulkSummary>(&s.frames[0]).items, 0);
}

#[test]
fn a_ticket_fetch_is_its_units_then_the_summary() {
    let fx = fixture();
    let inst = fx.keys.institution();
    let q = elig_client::Client::tickets_query(Some(inst), &(TODAY / 100).to_string(), None);
    let s = run(&fx.engine, &Role::Central, &encode(Kind::Tickets, &q));
    let n = fx.keys.tickets_of_institution;
    assert!(n > 0);
    assert_eq!(s.frames.len(), n + 1);
    assert!(s.frames[..n].iter().all(|f| f.kind == Kind::Unit));
    let _: BulkConfirmUnit = json(&s.frames[0]);
    let summary: Answer = json(&s.frames[n]);
    assert_eq!(s.frames[n].kind, Kind::Summary);
    assert!(summary.message_body.bulk_confirm_unit_list.is_empty(), "the units went in their own frames");
    assert_eq!(summary.message_header.number_of_processing_result.as_deref(), Some(n.to_string().as_str()));
    assert_eq!(s.outcomes[0].asked, Asked::Key(KeyKind::DelegatedTickets));
    assert_eq!(s.label.request, Some(Request::Tickets));

    // A refused fetch is its summary alone, an error answer.
    let s = run(&fx.engine, &Role::Central, &encode(Kind::Tickets, fx.keys.serial_query(inst).as_bytes()));
    assert_eq!(kinds(&s), [Kind::Summary]);
    let a: Answer = json(&s.frames[0]);
    assert_eq!(a.message_body.processing_result_code.as_deref(), Some("EB01"));
}

#[test]
fn status_and_usage_are_reports_for_operators() {
    let fx = fixture();
    let s = run(&fx.engine, &Role::Operator, &encode(Kind::Status, b""));
    assert_eq!(kinds(&s), [Kind::Report]);
    let r: StatusReport = json(&s.frames[0]);
    assert_eq!((r.engine.generation, r.engine.persons, r.protocol.as_str()), (fx.engine.pin().id(), elig_tests::PERSONS, "elig/1"));
    assert_eq!(r.runtime.connections_active, 3, "the driver's facts are reported");
    assert_eq!((s.label.request_name(), s.label.kind_name(), s.label.verdict), ("status", "-", Verdict::Normal));

    let f = TestFacts(Usage::new(NOW));
    let inst = fx.keys.institution();
    let lookup = run(&fx.engine, &Role::Central, &encode(Kind::Lookup, fx.keys.serial_query(inst).as_bytes()));
    f.0.record(&lookup.outcomes[0]);
    let s = serve(&fx.engine, &Role::Operator, &Limits::default(), clock(), &encode(Kind::Usage, b""), &f);
    let u: UsageReport = json(&s.frames[0]);
    let row = u.row(inst, "certificate_serial").expect("the recorded lookup");
    assert_eq!((row.requests, row.normal, row.certificate_checks), (1, 1, 1));
}

#[test]
fn deltas_are_acknowledged_and_answered_from() {
    let w = elig_tests::Writable::fixture();
    let keys = &fixture().keys;
    let row = elig_tests::insurance_row("Q-M1", &keys.card_valid_person, &keys.card_valid.0, "M", "1");
    let b1 = elig_tests::batch(1, &[elig_tests::upsert("insurance", row)]);
    let s = run(&w.engine, &Role::Operator, &encode(Kind::Delta, &b1));
    assert_eq!(kinds(&s), [Kind::Report]);
    let ack: DeltaAck = json(&s.frames[0]);
    assert_eq!((ack.seq, ack.duplicate, ack.rows), (1, false, 1));
    // Again: a duplicate, acknowledged without effect.
    let again: DeltaAck = json(&run(&w.engine, &Role::Operator, &encode(Kind::Delta, &b1)).frames[0]);
    assert!(again.duplicate);
    let s = run(&w.engine, &Role::Operator, &encode(Kind::Status, b""));
    let st: StatusReport = json(&s.frames[0]);
    assert_eq!((st.engine.delta_seq, st.engine.overlay.changed_rows), (1, 1));
    let q = Keys::card_query(&(keys.card_valid.0.clone(), "M".into(), "1".into(), "01".into(), keys.card_valid.4), keys.institution(), "m");
    let a: Answer = json(&run(&w.engine, &Role::Central, &encode(Kind::Lookup, q.as_bytes())).frames[0]);
    assert_eq!((a.validity(), a.message_header.delta_sequence.as_str()), (Some("1"), "1"));

    // A gap and a line that does not parse are refused; nothing applied.
    let s = run(&w.engine, &Role::Operator, &encode(Kind::Delta, &elig_tests::batch(5, &[])));
    assert_eq!(refusal(&s), "ED02");
    let s = run(&w.engine, &Role::Operator, &encode(Kind::Delta, b"{\"seq\":2,\"created\":\"20261122101500\"}\nnot json\n"));
    assert_eq!(refusal(&s), "ED01");
    assert_eq!(w.engine.pin().overlay.visible(), 1);
    // The shared fixture engine has no delta log: refused, not applied.
    let s = run(&fixture().engine, &Role::Operator, &encode(Kind::Delta, &elig_tests::batch(1, &[])));
    assert_eq!(refusal(&s), "ED03");
}

#[test]
fn a_swap_goes_live_or_is_refused_with_its_reason() {
    let w = elig_tests::Writable::fixture();
    let dir = tempfile::tempdir().unwrap();
    let live = w.engine.pin().id();
    let next = elig_tests::compile_generation(&dir.path().join("next"), live + 1);
    let payload = serde_json::json!({ "snapshot_dir": next.to_str().unwrap() }).to_string();
    let s = run(&w.engine, &Role::Operator, &encode(Kind::Swap, payload.as_bytes()));
    assert_eq!(kinds(&s), [Kind::Report], "{:?}", s.frames);
    let r: SwapResult = json(&s.frames[0]);
    assert_eq!((r.previous_generation, r.generation, r.snapshot_dir.as_str()), (live, live + 1, next.to_str().unwrap()));
    assert_eq!(w.engine.pin().id(), live + 1);
    // The same snapshot again is not newer; a missing one does not load.
    assert_eq!(refusal(&run(&w.engine, &Role::Operator, &encode(Kind::Swap, payload.as_bytes()))), "ES03");
    let missing = serde_json::json!({ "snapshot_dir": dir.path().join("none").to_str().unwrap() }).to_string();
    assert_eq!(refusal(&run(&w.engine, &Role::Operator, &encode(Kind::Swap, missing.as_bytes()))), "ES01");
    assert_eq!(w.engine.pin().id(), live + 1, "the live snapshot keeps serving");
}
