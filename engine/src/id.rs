//! Identifiers and code numbers packed into few bytes (format 2).
//!
//! Ids in an export are mostly one letter and a run of digits
//! (`P0000000001`, `Q00000000001`), digit strings (processing numbers,
//! institution codes) or upper-case hexadecimal (certificate serials). Kept
//! as text they take rkyv's 8-byte string plus 11 to 16 bytes out of line.
//! Archived, such an id is a header byte naming its shape and width, then
//! its value in base 128 (seven bits a byte, all ASCII, so still a valid
//! string): `P9999999999` and `Q99999999999` become 7 bytes and fit inline,
//! a 16-digit processing number takes 9 out-of-line bytes instead of 16.
//! Any other text is kept as `0x00` followed by its UTF-8. The encoding is
//! one-to-one, so an id is compared in its packed form. Owned records keep
//! their `String`; [`Id`] is the rkyv `with` wrapper.

use rkyv::string::ArchivedString;
use rkyv::Portable;

const RAW: u8 = 0x00;
/// `LETTER + n` (n 1..=19, so never `RAW`): one upper-case letter, then n digits.
const LETTER: u8 = 0x00;
/// `DIGITS + n` (n 1..=19): n digits.
const DIGITS: u8 = 0x20;
/// `HEX + n` (n 1..=16): n upper-case hexadecimal characters, not all digits.
const HEX: u8 = 0x40;
/// The longest packed form: a header and a 128-bit value in base 128.
const PACKED_MAX: usize = 1 + 19;

/// A packed form, on the stack.
struct Packed {
    buf: [u8; PACKED_MAX],
    len: usize,
}

impl Packed {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn pack(header: u8, mut value: u128) -> Packed {
    let mut p = Packed { buf: [0; PACKED_MAX], len: 1 };
    p.buf[0] = header;
    while value > 0 {
        p.buf[p.len] = (value & 0x7F) as u8;
        value >>= 7;
        p.len += 1;
    }
    p
}

/// The value of 1 to 19 digits (under 2^64), in one pass.
fn digits(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(u128::from(v))
}

/// The packed form of `s`, when it has one of the three shapes.
fn packed(s: &str) -> Option<Packed> {
    let b = s.as_bytes();
    if let (Some(&first), Some(value)) = (b.first(), s.get(1..).and_then(digits)) {
        if first.is_ascii_uppercase() {
            return Some(pack(LETTER + (b.len() - 1) as u8, value * 26 + u128::from(first - b'A')));
        }
    }
    if let Some(value) = digits(s) {
        return Some(pack(DIGITS + b.len() as u8, value));
    }
    let hex = |c: &u8| c.is_ascii_digit() || (b'A'..=b'F').contains(c);
    if !b.is_empty() && b.len() <= 16 && b.iter().all(hex) {
        return u128::from_str_radix(s, 16).ok().map(|v| pack(HEX + b.len() as u8, v));
    }
    None
}

/// The archived form of `s`, given to `f` (without an allocation unless
/// `s` is kept as text).
pub fn encoded<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    match packed(s) {
        // Base-128 bytes and header bytes are ASCII.
        Some(p) => f(std::str::from_utf8(p.as_bytes()).unwrap_or_default()),
        None if s.is_empty() => f(""),
        None => {
            let mut raw = String::with_capacity(s.len() + 1);
            raw.push(char::from(RAW));
            raw.push_str(s);
            f(&raw)
        }
    }
}

/// The archived form of `s`, owned.
pub fn encode(s: &str) -> String {
    encoded(s, str::to_string)
}

/// The text of an archived form (the inverse of [`encode`]), given to `f`
/// without an allocation.
pub fn decode<R>(stored: &str, f: impl FnOnce(&str) -> R) -> R {
    let b = stored.as_bytes();
    let Some((&header, payload)) = b.split_first() else { return f("") };
    if header == RAW {
        return f(&stored[1..]);
    }
    let value = payload.iter().rev().fold(0u128, |v, &d| (v << 7) | u128::from(d & 0x7F));
    let mut buf = [0u8; 24];
    let mut out = std::io::Cursor::new(&mut buf[..]);
    use std::io::Write;
    // Widths are at most 20 characters: the buffer always holds them.
    let _ = match header {
        h if h > HEX => write!(out, "{:0w$X}", value, w = usize::from(h - HEX)),
        h if h > DIGITS => write!(out, "{:0w$}", value, w = usize::from(h - DIGITS)),
        h => write!(out, "{}{:0w$}", char::from(b'A' + (value % 26) as u8), value / 26, w = usize::from(h - LETTER)),
    };
    let n = out.position() as usize;
    f(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

/// An id as archived (see the module docs).
#[derive(Portable, rkyv::bytecheck::CheckBytes)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedId(ArchivedString);

impl ArchivedId {
    /// Whether this is the id `key`, compared packed.
    #[inline]
    pub fn is(&self, key: &str) -> bool {
        let stored = self.0.as_bytes();
        match packed(key) {
            Some(p) => stored == p.as_bytes(),
            None => (stored.first() == Some(&RAW) && &stored[1..] == key.as_bytes()) || (stored.is_empty() && key.is_empty()),
        }
    }

    /// The id's text, given to `f` without an allocation.
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        decode(self.0.as_str(), f)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq<str> for ArchivedId {
    fn eq(&self, other: &str) -> bool {
        self.is(other)
    }
}

impl PartialEq<&str> for ArchivedId {
    fn eq(&self, other: &&str) -> bool {
        self.is(other)
    }
}

impl PartialEq<String> for ArchivedId {
    fn eq(&self, other: &String) -> bool {
        self.is(other)
    }
}

impl PartialEq for ArchivedId {
    fn eq(&self, other: &ArchivedId) -> bool {
        self.0 == other.0
    }
}

impl std::fmt::Display for ArchivedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_text(|s| f.write_str(s))
    }
}

impl std::fmt::Debug for ArchivedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_text(|s| write!(f, "{s:?}"))
    }
}

/// The rkyv `with` wrapper: `#[rkyv(with = Id)]` on a `String` field.
#[derive(Debug)]
pub struct Id;

crate::coded::coded_string!(Id, ArchivedId, encoded, |a| a.to_string());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_three_shapes_pack_and_read_back() {
        for (s, len) in [
            ("P0000000001", 2),
            ("Q00000000001", 2),
            ("P9999999999", 7),
            ("Q99999999999", 7),
            ("Z0", 2),
            ("5782305136488835", 9),
            ("0000000000000000001", 2),
            ("3010064446", 6),
            ("A5056934037C803D", 11),
            ("00FF", 3),
            ("A", 2),
        ] {
            let e = encode(s);
            assert!(e.is_ascii(), "{s}: {e:?}");
            assert_eq!(e.len(), len, "{s}: {e:?}");
            assert_eq!(decode(&e, str::to_string), s);
        }
    }

    #[test]
    fn other_text_is_kept_and_nothing_collides() {
        let all = [
            "",
            "p0000000001",
            "P",
            "P-1",
            "P00000000000000000001",
            "A5056934037C803DA",
            "a505",
            "ＡＢ",
            "\u{0}x",
            "0",
            "00",
            "A0",
            "A00",
            "0A",
            "A",
            "F",
            "G",
            "FF",
            "10",
            "010",
        ];
        let encoded: std::collections::HashSet<String> = all.iter().map(|s| encode(s)).collect();
        assert_eq!(encoded.len(), all.len());
        for s in all {
            assert_eq!(decode(&encode(s), str::to_string), s, "{s:?}");
        }
    }

    #[test]
    fn archived_ids_compare_with_their_text_only() {
        let r = crate::model::PersonRecord { person_id: "P0000000042".into(), ..Default::default() };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&r).unwrap();
        let a = rkyv::access::<crate::model::ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert!(a.person_id == "P0000000042");
        assert_eq!(a.person_id.to_string(), "P0000000042");
        for other in ["P000000042", "P0000000043", "p0000000042", "", "\u{0}P0000000042"] {
            assert!(a.person_id != other, "{other:?}");
        }
        let raw = crate::model::PersonRecord { person_id: "person-7".into(), ..Default::default() };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&raw).unwrap();
        let a = rkyv::access::<crate::model::ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert!(a.person_id == "person-7" && a.person_id != "person-8" && !a.person_id.is(""));
        assert_eq!(rkyv::deserialize::<crate::model::PersonRecord, rkyv::rancor::Error>(a).unwrap(), raw);
    }
}
