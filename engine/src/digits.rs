//! Short numbers in few bytes (format 2): insurer numbers (6 or 8 digits),
//! branch numbers (2), post numbers (`NNN-NNNN`) and timestamps.
//!
//! As rkyv strings these take 8 bytes each; as numbers, 4 (an insurer, a
//! branch or a post number: the digits and their count, so leading zeros
//! stay) or 6 (a `YYYYMMDDHHmmss` timestamp, which is under 2^48). The row
//! rules only let canonical values through; one that is not is refused
//! when archived, never stored wrong. Owned records keep their `String` and
//! `u64`; [`Digits`], [`Post`] and [`Stamp`] are the rkyv `with` wrappers.

use rkyv::rancor::{fail, Fallible, Source};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Place, Portable};

/// Why a value cannot be archived (the row rules never let one through).
#[derive(Debug, thiserror::Error)]
#[error("'{0}' cannot be archived as a short number")]
pub struct NotShort(pub String);

/// Up to 8 digits: `count << 27 | value`, 0 when empty.
fn pack_digits(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    (s.len() <= 8 && s.bytes().all(|b| b.is_ascii_digit())).then(|| (s.len() as u32) << 27 | s.parse::<u32>().unwrap_or(0))
}

/// `NNN-NNNN` as the seven digits plus one, 0 when empty.
fn pack_post(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    let b = s.as_bytes();
    let digit = |i: usize| b[i].is_ascii_digit();
    (b.len() == 8 && b[3] == b'-' && (0..3).all(digit) && (4..8).all(digit))
        .then(|| s[..3].parse::<u32>().unwrap_or(0) * 10_000 + s[4..].parse::<u32>().unwrap_or(0) + 1)
}

/// A short number as archived: four little-endian bytes.
#[derive(Portable, rkyv::bytecheck::CheckBytes, Clone, Copy, PartialEq, Eq)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedDigits([u8; 4]);

impl ArchivedDigits {
    /// The digits, given to `f` without an allocation.
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let n = u32::from_le_bytes(self.0);
        let (count, value) = ((n >> 27) as usize, n & ((1 << 27) - 1));
        let mut buf = [0u8; 8];
        let mut v = value;
        for i in (0..count.min(8)).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        f(std::str::from_utf8(&buf[..count.min(8)]).unwrap_or_default())
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Whether these are the digits `s`, compared packed (a card lookup
    /// compares an insurer and a branch number per qualification).
    #[inline]
    pub fn is(&self, s: &str) -> bool {
        pack_digits(s) == Some(u32::from_le_bytes(self.0))
    }
}

/// A post number as archived: four little-endian bytes.
#[derive(Portable, rkyv::bytecheck::CheckBytes, Clone, Copy, PartialEq, Eq)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedPost([u8; 4]);

impl ArchivedPost {
    /// `NNN-NNNN`, or empty, given to `f` without an allocation.
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let n = u32::from_le_bytes(self.0);
        if n == 0 {
            return f("");
        }
        let v = (n - 1) % 10_000_000;
        let mut buf = *b"000-0000";
        let mut rest = v;
        for i in [7, 6, 5, 4, 2, 1, 0] {
            buf[i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        f(std::str::from_utf8(&buf).unwrap_or_default())
    }
}

impl ArchivedPost {
    /// Whether this is the post number `s`, compared packed.
    pub fn is(&self, s: &str) -> bool {
        pack_post(s) == Some(u32::from_le_bytes(self.0))
    }
}

macro_rules! text_like {
    ($t:ty) => {
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.is(other)
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.is(other)
            }
        }
        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.is(other)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.with_text(|s| f.write_str(s))
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.with_text(|s| write!(f, "{s:?}"))
            }
        }
    };
}
text_like!(ArchivedDigits);
text_like!(ArchivedPost);

/// A `YYYYMMDDHHmmss` timestamp as archived: six little-endian bytes.
#[derive(Portable, rkyv::bytecheck::CheckBytes, Clone, Copy, PartialEq, Eq)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedStamp([u8; 6]);

impl ArchivedStamp {
    /// The timestamp, 0 when absent.
    #[inline]
    pub fn to_native(&self) -> u64 {
        let [a, b, c, d, e, f] = self.0;
        u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
    }
}

impl std::fmt::Debug for ArchivedStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_native())
    }
}

/// The rkyv `with` wrapper for digit strings of up to 8 digits.
#[derive(Debug)]
pub struct Digits;
/// The rkyv `with` wrapper for post numbers `NNN-NNNN`.
#[derive(Debug)]
pub struct Post;
/// The rkyv `with` wrapper for `u64` timestamps `YYYYMMDDHHmmss`.
#[derive(Debug)]
pub struct Stamp;

macro_rules! packed_string {
    ($with:ty, $archived:ident, $pack:ident) => {
        impl ArchiveWith<String> for $with {
            type Archived = $archived;
            type Resolver = ();

            fn resolve_with(field: &String, _: (), out: Place<$archived>) {
                // `serialize_with` refused every value without a packed form.
                let n = $pack(field).unwrap_or(0).to_le_bytes();
                rkyv::munge::munge!(let $archived(inner) = out);
                inner.write(n);
            }
        }

        impl<S: Fallible + ?Sized> SerializeWith<String, S> for $with
        where
            S::Error: Source,
        {
            fn serialize_with(field: &String, _: &mut S) -> Result<(), S::Error> {
                match $pack(field) {
                    Some(_) => Ok(()),
                    None => fail!(NotShort(field.clone())),
                }
            }
        }

        impl<D: Fallible + ?Sized> DeserializeWith<$archived, String, D> for $with {
            fn deserialize_with(field: &$archived, _: &mut D) -> Result<String, D::Error> {
                Ok(field.with_text(str::to_string))
            }
        }
    };
}
packed_string!(Digits, ArchivedDigits, pack_digits);
packed_string!(Post, ArchivedPost, pack_post);

impl ArchiveWith<u64> for Stamp {
    type Archived = ArchivedStamp;
    type Resolver = ();

    fn resolve_with(field: &u64, _: (), out: Place<ArchivedStamp>) {
        let [a, b, c, d, e, f, _, _] = field.to_le_bytes();
        rkyv::munge::munge!(let ArchivedStamp(inner) = out);
        inner.write([a, b, c, d, e, f]);
    }
}

impl<S: Fallible + ?Sized> SerializeWith<u64, S> for Stamp
where
    S::Error: Source,
{
    fn serialize_with(field: &u64, _: &mut S) -> Result<(), S::Error> {
        if *field >= 1 << 48 {
            fail!(NotShort(field.to_string()));
        }
        Ok(())
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedStamp, u64, D> for Stamp {
    fn deserialize_with(field: &ArchivedStamp, _: &mut D) -> Result<u64, D::Error> {
        Ok(field.to_native())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::*;

    fn archived<T>(r: &PersonRecord, f: impl FnOnce(&ArchivedPersonRecord) -> T) -> T {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(r).unwrap();
        let a = rkyv::access::<ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(&rkyv::deserialize::<PersonRecord, rkyv::rancor::Error>(a).unwrap(), r);
        f(a)
    }

    #[test]
    fn numbers_keep_their_leading_zeros_and_read_back() {
        for (insurer, branch, post) in
            [("06132013", "01", "100-0001"), ("010454", "00", "000-0000"), ("00000001", "", ""), ("1", "99", "999-9999")]
        {
            let ins = Insurance { insurer_number: insurer.into(), branch_number: branch.into(), ..Default::default() };
            let r = PersonRecord { post_number: post.into(), insurance: vec![ins], ..Default::default() };
            archived(&r, |a| {
                assert!(a.insurance[0].insurer_number == insurer && a.insurance[0].branch_number == branch, "{insurer} {branch}");
                assert_eq!(a.post_number.to_string(), post);
                assert!(a.insurance[0].insurer_number != "6132013");
            });
        }
    }

    #[test]
    fn timestamps_read_back() {
        let c = Certificate { revoked_at: 99991231235959, ..Default::default() };
        let r = PersonRecord { certificates: vec![c, Certificate::default()], ..Default::default() };
        archived(&r, |a| {
            assert_eq!(a.certificates[0].revoked_at.to_native(), 99991231235959);
            assert_eq!(a.certificates[1].revoked_at.to_native(), 0);
        });
    }

    #[test]
    fn values_the_rules_never_pass_are_refused_not_stored_wrong() {
        let bad = [
            PersonRecord { post_number: "1000001".into(), ..Default::default() },
            PersonRecord { insurance: vec![Insurance { insurer_number: "123456789".into(), ..Default::default() }], ..Default::default() },
            PersonRecord { insurance: vec![Insurance { branch_number: "0a".into(), ..Default::default() }], ..Default::default() },
            PersonRecord { certificates: vec![Certificate { revoked_at: 1 << 48, ..Default::default() }], ..Default::default() },
        ];
        for r in bad {
            assert!(rkyv::to_bytes::<rkyv::rancor::Error>(&r).is_err(), "{r:?}");
        }
    }
}
