//! The versioned envelope around every snapshot file: the rkyv payload
//! starts at byte 0 (page-aligned when mapped, so 16-byte alignment holds)
//! and a 48-byte footer follows it. All integers are little-endian.
//!
//! ```text
//! offset        size  field
//! 0             N     payload: rkyv archive, root at its end
//! N             8     magic "ELIGSNAP"
//! N+8           4     format version (FORMAT_VERSION)
//! N+12          4     kind (1 person shard, 2 hash index)
//! N+16          8     snapshot generation
//! N+24          8     payload length N
//! N+32          8     xxh3-64 of the payload
//! N+40          8     reserved, zero
//! ```

use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: &[u8; 8] = b"ELIGSNAP";
/// Version 2: the manifest checks itself and the anomaly report.
pub const FORMAT_VERSION: u32 = 2;
pub const FOOTER_LEN: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum FileKind {
    PersonShard = 1,
    HashIndex = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub version: u32,
    pub kind: u32,
    pub generation: u64,
    pub payload_len: u64,
    pub checksum: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("file of {len} bytes is too short for the {FOOTER_LEN}-byte footer")]
    TooShort { len: usize },
    #[error("bad magic: not a snapshot file")]
    BadMagic,
    #[error("format version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("kind {found}, expected {expected}")]
    Kind { found: u32, expected: u32 },
    #[error("generation {found}, the manifest says {expected}")]
    Generation { found: u64, expected: u64 },
    #[error("payload length {declared} does not match file length {actual} (truncated or extended)")]
    Length { declared: u64, actual: u64 },
    #[error("reserved footer bytes are {found:016x}, must be zero (corrupt footer)")]
    Reserved { found: u64 },
    #[error("checksum mismatch: expected {expected:016x}, got {got:016x}")]
    ChecksumMismatch { expected: u64, got: u64 },
}

/// Append the footer to a serialised payload.
#[cfg(test)]
fn seal(payload: &[u8], kind: FileKind, generation: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + FOOTER_LEN);
    out.extend_from_slice(payload);
    out.extend_from_slice(&footer_bytes(payload, kind, generation));
    out
}

/// The footer for a payload, for writers that stream the payload themselves.
pub fn footer_bytes(payload: &[u8], kind: FileKind, generation: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[0..8].copy_from_slice(MAGIC);
    f[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    f[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    f[16..24].copy_from_slice(&generation.to_le_bytes());
    f[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    f[32..40].copy_from_slice(&xxh3_64(payload).to_le_bytes());
    f
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Cheap open: magic, version, kind and length. Returns the footer and the
/// payload slice (the footer stripped, so rkyv finds its root at the end).
pub fn open(bytes: &[u8], kind: FileKind) -> Result<(Footer, &[u8]), EnvelopeError> {
    if bytes.len() < FOOTER_LEN {
        return Err(EnvelopeError::TooShort { len: bytes.len() });
    }
    let at = bytes.len() - FOOTER_LEN;
    let f = &bytes[at..];
    if &f[0..8] != MAGIC {
        return Err(EnvelopeError::BadMagic);
    }
    let footer = Footer {
        version: le_u32(&f[8..]),
        kind: le_u32(&f[12..]),
        generation: le_u64(&f[16..]),
        payload_len: le_u64(&f[24..]),
        checksum: le_u64(&f[32..]),
    };
    if footer.version != FORMAT_VERSION {
        return Err(EnvelopeError::Version { found: footer.version, expected: FORMAT_VERSION });
    }
    if footer.kind != kind as u32 {
        return Err(EnvelopeError::Kind { found: footer.kind, expected: kind as u32 });
    }
    if footer.payload_len != at as u64 {
        return Err(EnvelopeError::Length { declared: footer.payload_len, actual: at as u64 });
    }
    // Every footer byte is checked: the reserved word too.
    let reserved = le_u64(&f[40..]);
    if reserved != 0 {
        return Err(EnvelopeError::Reserved { found: reserved });
    }
    Ok((footer, &bytes[..at]))
}

/// Full check of the payload checksum (the expensive part of verification).
pub fn check_sum(footer: &Footer, payload: &[u8]) -> Result<(), EnvelopeError> {
    let got = xxh3_64(payload);
    if got != footer.checksum {
        return Err(EnvelopeError::ChecksumMismatch { expected: footer.checksum, got });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let sealed = seal(b"0123456789abcdef", FileKind::HashIndex, 7);
        let (footer, payload) = open(&sealed, FileKind::HashIndex).unwrap();
        assert_eq!(payload, b"0123456789abcdef");
        assert_eq!(footer.generation, 7);
        check_sum(&footer, payload).unwrap();
    }

    #[test]
    fn flipped_truncated_wrong_version_and_kind_are_refused() {
        let sealed = seal(b"0123456789abcdef", FileKind::HashIndex, 7);
        let mut flipped = sealed.clone();
        flipped[3] ^= 0x40;
        let (footer, payload) = open(&flipped, FileKind::HashIndex).unwrap();
        assert!(matches!(check_sum(&footer, payload), Err(EnvelopeError::ChecksumMismatch { .. })));

        let mut truncated = sealed[..4].to_vec();
        truncated.extend_from_slice(&sealed[16..]);
        assert!(matches!(open(&truncated, FileKind::HashIndex), Err(EnvelopeError::Length { .. })));
        assert!(matches!(open(&sealed[..10], FileKind::HashIndex), Err(EnvelopeError::TooShort { .. })));

        let mut v2 = sealed.clone();
        let at = v2.len() - FOOTER_LEN + 8;
        v2[at] = 1;
        assert_eq!(open(&v2, FileKind::HashIndex).unwrap_err(), EnvelopeError::Version { found: 1, expected: FORMAT_VERSION });
        assert!(matches!(open(&sealed, FileKind::PersonShard), Err(EnvelopeError::Kind { .. })));
    }

    /// Every byte of a sealed file is checked, by open or by the checksum.
    #[test]
    fn every_flipped_byte_is_refused_by_open_or_checksum() {
        let sealed = seal(b"0123456789abcdef", FileKind::HashIndex, 7);
        for at in 0..sealed.len() {
            let mut b = sealed.clone();
            b[at] ^= 0x10;
            let refused = match open(&b, FileKind::HashIndex) {
                Err(_) => true,
                // The generation is compared with the manifest's by the snapshot.
                Ok((footer, payload)) => footer.generation != 7 || check_sum(&footer, payload).is_err(),
            };
            assert!(refused, "byte {at} flipped passed");
        }
    }
}
