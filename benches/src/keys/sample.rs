//! The criterion benches' keys: the pool's documents as strings, by kind.

use elig_engine::snapshot::Snapshot;

use super::kind::KeyKind;
use super::pool::{KeyPlan, KeyPool, KeySource, Requester};

/// The requester when a person gives no better one (a valid code).
pub const CLINIC: &str = "1310000011";

/// Query documents of one kind: keys the snapshot holds, and keys it does not.
#[derive(Debug, Clone, Default)]
pub struct FamilyKeys {
    pub present: Vec<String>,
    pub absent: Vec<String>,
}

/// The criterion benches' keys, by kind.
#[derive(Debug, Clone)]
pub struct Keys {
    families: Vec<(KeyKind, FamilyKeys)>,
}

impl Keys {
    pub fn get(&self, kind: KeyKind) -> &FamilyKeys {
        &self.families[kind.slot()].1
    }
}

/// `n` documents per kind of keys the snapshot holds and up to `n` of keys
/// it does not ([`KeyPool`] with a central requester, every query asking
/// about [`crate::TODAY`]). A kind the data has too few of (tickets in a
/// small snapshot) repeats its keys; one it has none of is left empty.
pub fn sample_keys(snapshot: &Snapshot, n: usize, seed: u64) -> Keys {
    let plan = KeyPlan {
        source: KeySource::Snapshot(snapshot.dir().to_path_buf()),
        requester: Requester::Central,
        pool: n,
        today: crate::TODAY,
        date: Some(crate::TODAY),
        seed,
    };
    let pool = KeyPool::from_snapshot(snapshot, &plan);
    let pool = &pool;
    let docs = |kind, absent, count| (0..count).map(move |i| String::from_utf8_lossy(pool.doc(kind, absent, i)).into_owned());
    let families = KeyKind::ALL
        .into_iter()
        .map(|kind| {
            let (present, absent) = pool.counts(kind);
            let mut keys = FamilyKeys { present: docs(kind, false, present).collect(), absent: docs(kind, true, absent).collect() };
            for i in (0..n.saturating_sub(present)).take_while(|_| present > 0) {
                let again = keys.present[i % present].clone();
                keys.present.push(again);
            }
            (kind, keys)
        })
        .collect();
    Keys { families }
}
