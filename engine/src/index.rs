//! The on-disk hash index: key bytes → person record number(s).
//!
//! Open addressing with linear probing over `slots` (`u64` each):
//! the high 32 bits hold a fingerprint (the low 32 bits of the key's
//! xxh3-64), the low 32 bits a value: `0` empty; `p + 1` for one person
//! record `p`; or `MULTI | off` when several persons share the key, in
//! which case `multi[off]` is the count and the record numbers follow.
//! The home slot is `(hash * len) >> 64`. xxh3 is stable across builds and
//! platforms, which is why it (and never ahash) is what a file persists.
//!
//! A slot only says where to look: the caller confirms the full key against
//! the stored record, so a fingerprint collision can never answer the wrong
//! person.

use rkyv::{Archive, Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub const MULTI: u32 = 1 << 31;

#[derive(Archive, Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct HashIndex {
    pub slots: Vec<u64>,
    pub multi: Vec<u32>,
    /// Distinct keys held.
    pub keys: u64,
}

/// The stable hash of a key.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

#[inline]
pub fn home_slot(hash: u64, len: usize) -> usize {
    ((u128::from(hash) * len as u128) >> 64) as usize
}

#[inline]
pub fn fingerprint(hash: u64) -> u32 {
    hash as u32
}

/// The persons one slot points to.
#[derive(Debug, Clone, Copy)]
pub enum Hit<'a> {
    One(u32),
    Many(&'a [rkyv::rend::u32_le]),
}

impl Hit<'_> {
    pub fn first(&self) -> u32 {
        match self {
            Hit::One(p) => *p,
            Hit::Many(ps) => ps.first().map(|p| p.to_native()).unwrap_or(u32::MAX),
        }
    }

    pub fn for_each(&self, mut f: impl FnMut(u32)) {
        match self {
            Hit::One(p) => f(*p),
            Hit::Many(ps) => ps.iter().for_each(|p| f(p.to_native())),
        }
    }
}

impl ArchivedHashIndex {
    /// Probe for `key`; `confirm(record)` says whether that person record
    /// really holds the key. Returns the slot's persons, or `None`.
    pub fn find(&self, key: &[u8], mut confirm: impl FnMut(u32) -> bool) -> Option<Hit<'_>> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let hash = key_hash(key);
        let fp = fingerprint(hash);
        let mut at = home_slot(hash, len);
        for _ in 0..len {
            let slot = self.slots[at].to_native();
            let value = slot as u32;
            if value == 0 {
                return None;
            }
            if (slot >> 32) as u32 == fp {
                let hit = self.hit(value)?;
                if confirm(hit.first()) {
                    return Some(hit);
                }
            }
            at += 1;
            if at == len {
                at = 0;
            }
        }
        None
    }

    fn hit(&self, value: u32) -> Option<Hit<'_>> {
        if value & MULTI == 0 {
            return Some(Hit::One(value - 1));
        }
        let off = (value & !MULTI) as usize;
        let count = self.multi.get(off)?.to_native() as usize;
        self.multi.get(off + 1..off + 1 + count).map(Hit::Many)
    }
}
