//! A snapshot that does not fit in memory: refused while resident (at start,
//! and at a swap while the live generation keeps serving), served on demand.

use crate::deltas::{batch_one_folded, code, Folded, KENPO};
use crate::fixture::*;
use elig_engine::engine::{Engine, EngineOptions, OpenError, SwapError};
use elig_engine::residency::{MemoryLimit, Residency};
use elig_engine::snapshot::SnapshotFiles;

fn bytes(dir: &std::path::Path) -> u64 {
    SnapshotFiles::open(dir).unwrap().mapped_bytes()
}

fn limited(residency: Residency, limit: u64) -> EngineOptions {
    EngineOptions { lock_memory: false, residency, memory_limit: MemoryLimit::Bytes(limit) }
}

#[test]
fn a_swap_that_cannot_fit_is_refused_and_the_live_generation_serves() {
    let Folded { c, dir, folded, .. } = batch_one_folded();
    let (live, new) = (bytes(&c.path()), bytes(&folded));
    // Room for either snapshot, not for both at once (as during a swap).
    let options = limited(Residency::Resident, live + new - 1);
    let (e, _) = Engine::open_with_log_using(&c.path(), &dir.path().join("r.log"), options).unwrap();
    let before = code(&e, &card(KENPO, "B", "2", "01", "19700101"));
    let err = e.swap(&folded).unwrap_err();
    match &err {
        SwapError::DoesNotFit(f) => assert_eq!((f.need, f.available), (live + new, live + new - 1)),
        other => panic!("expected DoesNotFit, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("live snapshot keeps serving") && text.contains(&(live + new).to_string()) && text.contains("on_demand"),
        "{text}"
    );
    assert_eq!(e.pin().id(), 1, "the live generation still serves");
    assert_eq!(code(&e, &card(KENPO, "B", "2", "01", "19700101")), before);
    assert_eq!(e.status().residency, Residency::Resident);

    // With room for both, the same swap goes through.
    let (e, _) = Engine::open_with_log_using(&c.path(), &dir.path().join("r2.log"), limited(Residency::Resident, live + new)).unwrap();
    assert_eq!(e.swap(&folded).unwrap().generation, 2);
}

#[test]
fn a_resident_snapshot_larger_than_the_limit_is_refused_at_start() {
    let Folded { c, dir, .. } = batch_one_folded();
    let need = bytes(&c.path());
    let err = Engine::open_with_log_using(&c.path(), &dir.path().join("r.log"), limited(Residency::Resident, need - 1)).unwrap_err();
    assert!(matches!(&err, OpenError::DoesNotFit { source, .. } if source.need == need), "{err}");
    let text = err.to_string();
    assert!(text.contains(&c.path().display().to_string()) && text.contains("does not fit"), "{text}");
}

#[test]
fn on_demand_serves_what_does_not_fit_with_the_same_answers() {
    let Folded { c, dir, folded, .. } = batch_one_folded();
    let (e, _) = Engine::open_with_log_using(&c.path(), &dir.path().join("r.log"), limited(Residency::OnDemand, 1)).unwrap();
    let q = card(KENPO, "A", "55", "01", "19700101");
    let resident = Engine::open(&folded).unwrap();
    assert_eq!(e.swap(&folded).unwrap().generation, 2);
    let status = e.status();
    assert_eq!((status.residency, status.memory_locked), (Residency::OnDemand, false));
    assert_eq!(code(&e, &q), code(&resident, &q));
    assert_eq!(code(&e, &q), "1");
}
