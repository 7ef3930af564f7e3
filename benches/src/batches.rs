//! Delta batches built from real ids of a snapshot (seeded), for the
//! benches that apply them (`deltas`) and send them through the stream
//! (`tier`). A batch holds 400 insurance upserts with new card keys, 250
//! person upserts (an address change), 200 consent upserts, then 100 deletes
//! of insurance rows and 50 deletes of consents that the previous batch
//! added: 1,000 rows.

use std::collections::HashSet;

use elig_engine::snapshot::Snapshot;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::{SEED, TODAY};

/// Rows of one batch.
pub const ROWS: usize = 1000;
const KINDS: [&str; 4] = ["pharmacy", "checkup", "diagnosis", "operation"];

/// What a batch needs to know of one real person.
struct Person {
    id: String,
    row: Value,
    insurer: (String, String),
    institution: String,
}

/// Real persons of the snapshot in a seeded random order, handed out in turn.
struct People {
    order: Vec<u32>,
    next: usize,
}

impl People {
    fn new(snapshot: &Snapshot) -> People {
        let mut order: Vec<u32> = (0..snapshot.persons()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(SEED));
        People { order, next: 0 }
    }

    fn take(&mut self, snapshot: &Snapshot) -> Person {
        loop {
            let idx = self.order[self.next % self.order.len()];
            self.next += 1;
            let Some(p) = snapshot.person(idx) else { continue };
            let Some(ins) = p.insurance.first() else { continue };
            let institution = p.reference_numbers.first().map_or(crate::CLINIC.to_string(), |r| r.institution_code.to_string());
            let row = json!({"person_id": p.person_id.to_string(), "name": p.name.as_str(), "name_kana": p.name_kana.to_text(),
                             "sex": p.sex.to_string(), "birth_date": p.birth_date.to_string(),
                             "address": format!("{}　別館", p.address), "post_number": p.post_number.to_string()});
            return Person {
                id: p.person_id.to_string(),
                row,
                insurer: (ins.insurer_number.to_string(), ins.insurer_name.to_string()),
                institution: institution.to_string(),
            };
        }
    }
}

/// Builds batch texts; remembers what the previous batch added so the next one can delete it.
pub struct Batches {
    people: People,
    prev: Option<(u64, Vec<Consent>)>,
    /// Consents upserted and not deleted since (a small snapshot hands persons out again).
    live: HashSet<Consent>,
}

type Consent = (String, String, &'static str);

fn qid(seq: u64, i: usize) -> String {
    format!("BQ{seq:07}{i:04}")
}

impl Batches {
    pub fn new(snapshot: &Snapshot) -> Batches {
        Batches { people: People::new(snapshot), prev: None, live: HashSet::new() }
    }

    /// The text of batch `seq`.
    pub fn next(&mut self, snapshot: &Snapshot, seq: u64) -> Vec<u8> {
        let mut lines: Vec<Value> = Vec::with_capacity(ROWS);
        for i in 0..400 {
            let p = self.people.take(snapshot);
            lines.push(json!({"op": "upsert", "table": "insurance", "row": {
                "qualification_id": qid(seq, i), "person_id": p.id, "insurer_number": p.insurer.0, "card_symbol": "BENCH",
                "card_number": format!("{seq}{i:04}"), "branch_number": "01", "card_classification": "01", "personal_family": "1",
                "insurer_name": p.insurer.1, "qualification_date": "20261101", "contribution_ratio": "030"}}));
        }
        for _ in 0..250 {
            let p = self.people.take(snapshot);
            lines.push(json!({"op": "upsert", "table": "persons", "row": p.row}));
        }
        let mut consents = Vec::with_capacity(200);
        for i in 0..200 {
            let p = self.people.take(snapshot);
            let kind = KINDS[i % KINDS.len()];
            lines.push(json!({"op": "upsert", "table": "consents", "row": {
                "institution_code": p.institution, "person_id": p.id, "kind": kind,
                "consented_at": format!("{TODAY}090000"), "expires_at": format!("{}090000", TODAY + 1)}}));
            let c = (p.institution, p.id, kind);
            self.live.insert(c.clone());
            consents.push(c);
        }
        // Deletes of rows the previous batch added; the first batch deletes
        // the last of its own, which no later batch touches.
        let (from, range, from_consents) = match self.prev.take() {
            Some((prev, c)) => (prev, 0..100, c[..50].to_vec()),
            None => (seq, 300..400, consents[150..].to_vec()),
        };
        for i in range {
            lines.push(json!({"op": "delete", "table": "insurance", "key": {"qualification_id": qid(from, i)}}));
        }
        for c in from_consents {
            if self.live.remove(&c) {
                let (inst, pid, kind) = c;
                lines.push(json!({"op": "delete", "table": "consents", "key": {"institution_code": inst, "person_id": pid, "kind": kind}}));
            }
        }
        self.prev = Some((seq, consents));
        let mut text = json!({"seq": seq, "created": format!("{TODAY}101500")}).to_string();
        for l in lines {
            text.push('\n');
            text.push_str(&l.to_string());
        }
        text.into_bytes()
    }
}
