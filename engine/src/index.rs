//! The on-disk hash index: key bytes → person record number(s).
//!
//! Open addressing with linear probing over `slot_count` slots of
//! [`SLOT_BYTES`] (5) bytes each, packed in `slots` (followed by 3 zero
//! bytes, so a slot is read as one unaligned little-endian `u64` and
//! masked): bytes 0..4 hold a value, byte 4 a fingerprint (the low 8 bits of
//! the key's xxh3-64). The value is `0` empty; `p + 1` for one person record
//! `p`; or `MULTI | off` when several persons share the key, in which case
//! `multi[off]` is the count and the record numbers follow. The home slot is
//! `(hash * slot_count) >> 64`. xxh3 is stable across builds and platforms,
//! which is why it (and never ahash) is what a file persists.
//!
//! A slot only says where to look: the caller confirms the full key against
//! the stored record, so a fingerprint collision can never answer the wrong
//! person (with 8 bits, one probe in 256 of another key costs that read).

use rkyv::{Archive, Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

pub const MULTI: u32 = 1 << 31;
/// Bytes per slot (format 2; format 1 had 8, with a 32-bit fingerprint).
pub const SLOT_BYTES: usize = 5;
/// Zero bytes after the last slot, so every slot reads as a whole `u64`.
pub const SLOT_PAD: usize = 3;

#[derive(Archive, Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
pub struct HashIndex {
    /// `slot_count` packed slots, then [`SLOT_PAD`] zero bytes.
    pub slots: Vec<u8>,
    pub slot_count: u64,
    pub multi: Vec<u32>,
    /// Distinct keys held.
    pub keys: u64,
}

/// A slot's 40 bits: the fingerprint above the value.
#[inline]
pub fn slot_bits(value: u32, fingerprint: u8) -> u64 {
    (u64::from(fingerprint) << 32) | u64::from(value)
}

/// Pack slots (each from [`slot_bits`]) into the file's bytes.
pub fn pack_slots(slots: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slots.len() * SLOT_BYTES + SLOT_PAD);
    for s in slots {
        out.extend_from_slice(&s.to_le_bytes()[..SLOT_BYTES]);
    }
    out.extend_from_slice(&[0; SLOT_PAD]);
    out
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
pub fn fingerprint(hash: u64) -> u8 {
    hash as u8
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
    /// Slots in the table (verify checks it against the bytes).
    #[inline]
    pub fn len(&self) -> usize {
        self.slot_count.to_native() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slot `i` as its 40 bits (0, empty, past the bytes: never read by a
    /// verified index).
    #[inline]
    pub fn slot(&self, i: usize) -> u64 {
        let at = i * SLOT_BYTES;
        match self.slots.get(at..at + 8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) & 0xFF_FFFF_FFFF,
            None => 0,
        }
    }

    /// Probe for `key`; `confirm(record)` says whether that person record
    /// really holds the key. Returns the slot's persons, or `None`.
    pub fn find(&self, key: &[u8], mut confirm: impl FnMut(u32) -> bool) -> Option<Hit<'_>> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        let hash = key_hash(key);
        let fp = fingerprint(hash);
        let mut at = home_slot(hash, len);
        for _ in 0..len {
            let slot = self.slot(at);
            let value = slot as u32;
            if value == 0 {
                return None;
            }
            if (slot >> 32) as u8 == fp {
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
