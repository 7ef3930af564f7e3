//! Dates in three bytes (format 2). A date `YYYYMMDD` (0 = absent; the row
//! rules accept years 1850 to 9999) is archived as the 24-bit little-endian
//! number `1 + (year - 1800) * 372 + (month - 1) * 31 + (day - 1)` (at most
//! 3,050,409), or 0: no calendar arithmetic either way, and a date with the
//! one-byte codes beside it no longer takes a word of its own. Owned records
//! keep their `u32`; [`Day`] is the rkyv `with` wrapper, and [`ArchivedDay`]
//! reads back with `to_native()`, like the `u32_le` it replaces.

use rkyv::rancor::{fail, Fallible, Source};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Place, Portable};

const FIRST_YEAR: u32 = 1800;
const LAST_YEAR: u32 = 9999;

/// A date as archived.
#[derive(Portable, rkyv::bytecheck::CheckBytes, Clone, Copy, PartialEq, Eq)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedDay([u8; 3]);

/// Why a date cannot be archived (the row rules never let one through).
#[derive(Debug, thiserror::Error)]
#[error("date {0} is outside the years {FIRST_YEAR}..={LAST_YEAR} or not YYYYMMDD")]
pub struct DayOutOfRange(pub u32);

/// The 24-bit form of `YYYYMMDD`, or `None` when it has none.
pub fn encode(d: u32) -> Option<u32> {
    if d == 0 {
        return Some(0);
    }
    let (y, m, day) = (d / 10000, d / 100 % 100, d % 100);
    if !(FIRST_YEAR..=LAST_YEAR).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    Some(1 + (y - FIRST_YEAR) * 372 + (m - 1) * 31 + (day - 1))
}

/// `YYYYMMDD` of a 24-bit form.
#[inline]
pub fn decode(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let n = n - 1;
    let (y, rest) = (n / 372, n % 372);
    (y + FIRST_YEAR) * 10000 + (rest / 31 + 1) * 100 + rest % 31 + 1
}

impl ArchivedDay {
    /// The date `YYYYMMDD`, 0 when absent.
    #[inline]
    pub fn to_native(&self) -> u32 {
        let [a, b, c] = self.0;
        decode(u32::from_le_bytes([a, b, c, 0]))
    }
}

impl PartialEq<u32> for ArchivedDay {
    fn eq(&self, other: &u32) -> bool {
        self.to_native() == *other
    }
}

impl std::fmt::Display for ArchivedDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_native())
    }
}

impl std::fmt::Debug for ArchivedDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_native())
    }
}

/// The rkyv `with` wrapper: `#[rkyv(with = Day)]` on a `u32` date field.
#[derive(Debug)]
pub struct Day;

impl ArchiveWith<u32> for Day {
    type Archived = ArchivedDay;
    type Resolver = ();

    fn resolve_with(field: &u32, _: (), out: Place<ArchivedDay>) {
        // `serialize_with` refused every date without a form.
        let n = encode(*field).unwrap_or(0).to_le_bytes();
        rkyv::munge::munge!(let ArchivedDay(inner) = out);
        inner.write([n[0], n[1], n[2]]);
    }
}

impl<S: Fallible + ?Sized> SerializeWith<u32, S> for Day
where
    S::Error: Source,
{
    fn serialize_with(field: &u32, _: &mut S) -> Result<(), S::Error> {
        match encode(*field) {
            Some(_) => Ok(()),
            None => fail!(DayOutOfRange(*field)),
        }
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedDay, u32, D> for Day {
    fn deserialize_with(field: &ArchivedDay, _: &mut D) -> Result<u32, D::Error> {
        Ok(field.to_native())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_valid_date_reads_back_and_keeps_its_order() {
        let mut last = 0;
        for y in [1850, 1900, 1999, 2026, 2100, 9999] {
            for m in 1..=12 {
                for d in 1..=31 {
                    let date = y * 10000 + m * 100 + d;
                    let n = encode(date).unwrap();
                    assert!(n < 1 << 24 && n > last, "{date}");
                    assert_eq!(decode(n), date);
                    last = n;
                }
            }
        }
        assert_eq!((encode(0), decode(0)), (Some(0), 0));
        assert_eq!(encode(17991231), None);
        assert_eq!(encode(20261301), None);
    }

    #[test]
    fn archived_dates_read_back() {
        let r = crate::model::PersonRecord { birth_date: 19800131, ..Default::default() };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&r).unwrap();
        let a = rkyv::access::<crate::model::ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(a.birth_date.to_native(), 19800131);
        assert!(a.birth_date == 19800131);
        let bad = crate::model::PersonRecord { birth_date: 99999999, ..Default::default() };
        assert!(rkyv::to_bytes::<rkyv::rancor::Error>(&bad).is_err());
    }
}
