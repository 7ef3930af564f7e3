//! Builds a [`HashIndex`] (format documented in `elig_engine::index`) from
//! (key hash, second key hash, person record) entries.
//!
//! Two independent hashes (64 and 32 bits) stand for the key while
//! building, so the builder never holds millions of key strings and an
//! entry is 16 bytes; the engine still confirms every hit against the full
//! stored key. Two keys are taken for one only if both hashes agree (about
//! once in 2^96 pairs).

use elig_engine::index::{fingerprint, home_slot, key_hash, pack_slots, slot_bits, HashIndex, MULTI};
use xxhash_rust::xxh3::xxh3_64_with_seed;

const SECOND_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Entries for one index, collected while records are assembled.
/// (key hash, second key hash, person record): 16 bytes.
type Entry = (u64, u32, u32);

#[derive(Debug, Default)]
pub struct IndexBuilder {
    entries: Vec<Entry>,
}

/// Persons sharing one key (reported as an anomaly when they differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKey {
    pub persons: Vec<u32>,
}

impl IndexBuilder {
    pub fn add(&mut self, key: &str, person: u32) {
        let b = key.as_bytes();
        self.entries.push((key_hash(b), xxh3_64_with_seed(b, SECOND_SEED) as u32, person));
    }

    /// Lay out the table at a load factor of at most 0.8 (the fingerprints
    /// keep probes cheap: twelve 5-byte slots share a cache line); return it
    /// with the keys that more than one person holds.
    pub fn build(mut self) -> (HashIndex, Vec<SharedKey>) {
        self.entries.sort_unstable();
        self.entries.dedup();
        let mut groups: Vec<(u64, &[Entry])> = Vec::new();
        let mut start = 0;
        for i in 1..=self.entries.len() {
            let boundary = i == self.entries.len() || {
                let (a, b) = (self.entries[i - 1], self.entries[i]);
                (a.0, a.1) != (b.0, b.1)
            };
            if boundary {
                groups.push((self.entries[start].0, &self.entries[start..i]));
                start = i;
            }
        }
        let cap = (groups.len() * 5 / 4 + 1).max(8);
        let mut slots = vec![0u64; cap];
        let mut multi = Vec::new();
        let mut shared = Vec::new();
        for (hash, group) in &groups {
            let value = if group.len() == 1 {
                group[0].2 + 1
            } else {
                let off = multi.len() as u32;
                multi.push(group.len() as u32);
                multi.extend(group.iter().map(|e| e.2));
                shared.push(SharedKey { persons: group.iter().map(|e| e.2).collect() });
                MULTI | off
            };
            let mut at = home_slot(*hash, cap);
            while slots[at] != 0 {
                at = if at + 1 == cap { 0 } else { at + 1 };
            }
            slots[at] = slot_bits(value, fingerprint(*hash));
        }
        let index = HashIndex { slots: pack_slots(&slots), slot_count: cap as u64, multi, keys: groups.len() as u64 };
        (index, shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elig_engine::index::{ArchivedHashIndex, Hit};
    use elig_engine::snapshot::archive_index;

    #[test]
    fn built_index_finds_every_key_and_no_other() {
        let mut b = IndexBuilder::default();
        for i in 0..5000u32 {
            b.add(&format!("key-{i}"), i);
        }
        b.add("key-7", 9999); // a second person on one key
        b.add("key-8", 8); // a duplicate entry collapses
        let (index, shared) = b.build();
        assert_eq!(index.keys, 5000);
        assert_eq!(shared, vec![SharedKey { persons: vec![7, 9999] }]);
        let bytes = archive_index(&index);
        let archived = rkyv::access::<ArchivedHashIndex, rkyv::rancor::Error>(&bytes).unwrap();
        // The confirm callback plays the record: person i holds key-i (and 9999 holds key-7).
        let holds = |key: &str, p: u32| key == format!("key-{}", if p == 9999 { 7 } else { p });
        for i in [0u32, 1, 8, 4999] {
            let key = format!("key-{i}");
            let hit = archived.find(key.as_bytes(), |p| holds(&key, p)).expect("present key");
            assert!(matches!(hit, Hit::One(p) if p == i));
        }
        let hit = archived.find(b"key-7", |p| holds("key-7", p)).unwrap();
        let mut all = Vec::new();
        hit.for_each(|p| all.push(p));
        assert_eq!(all, vec![7, 9999]);
        assert!(archived.find(b"key-5000", |p| holds("key-5000", p)).is_none());
    }
}
