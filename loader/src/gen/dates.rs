//! Calendar helpers: `YYYYMMDD` numbers, date arithmetic and the dates fixed by the rules.

use chrono::{Datelike, Duration, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(super) fn date_of(n: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt((n / 10000) as i32, n / 100 % 100, n % 100)
}

pub(super) fn ymd(d: NaiveDate) -> u32 {
    d.year() as u32 * 10000 + d.month() * 100 + d.day()
}

pub(super) fn timestamp(d: NaiveDate, secs: i64) -> u64 {
    let s = secs as u64;
    ymd(d) as u64 * 1_000_000 + s / 3600 * 10_000 + s / 60 % 60 * 100 + s % 60
}

pub(super) fn days(d: NaiveDate, n: i64) -> NaiveDate {
    d + Duration::days(n)
}

/// The same day `n` years later; 29 February becomes the 28th.
pub(super) fn add_years(d: NaiveDate, n: i32) -> NaiveDate {
    let y = d.year() + n;
    NaiveDate::from_ymd_opt(y, d.month(), d.day()).or_else(|| NaiveDate::from_ymd_opt(y, 2, 28)).expect("28 February exists")
}

/// A uniform date in `lo..=hi` (`lo` when the range is empty).
pub(super) fn rand_date(rng: &mut ChaCha8Rng, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
    let span = (hi - lo).num_days();
    if span <= 0 {
        lo
    } else {
        days(lo, rng.gen_range(0..=span))
    }
}

pub(super) fn age_at(birth: NaiveDate, at: NaiveDate) -> i32 {
    let a = at.year() - birth.year();
    if (at.month(), at.day()) < (birth.month(), birth.day()) {
        a - 1
    } else {
        a
    }
}

/// First of April of the school year a child enters elementary school: until then, pre-school.
pub(super) fn school_entry(birth: NaiveDate) -> NaiveDate {
    let y = birth.year() + if (birth.month(), birth.day()) >= (4, 2) { 7 } else { 6 };
    NaiveDate::from_ymd_opt(y, 4, 1).expect("1 April exists")
}

/// Elderly recipients start the month after their 70th birthday (the month itself if born on the 1st).
pub(super) fn elderly_start(birth: NaiveDate) -> NaiveDate {
    let b = add_years(birth, 70);
    if b.day() == 1 {
        b
    } else {
        month_bounds(b, -1).0
    }
}

/// Late-stage elderly insurance starts at 75, and did not exist before April 2008.
pub(super) fn late_start(birth: NaiveDate) -> NaiveDate {
    add_years(birth, 75).max(NaiveDate::from_ymd_opt(2008, 4, 1).expect("a valid date"))
}

pub(super) fn next_jul31(d: NaiveDate) -> NaiveDate {
    let y = if d.month() <= 7 { d.year() } else { d.year() + 1 };
    NaiveDate::from_ymd_opt(y, 7, 31).expect("31 July exists")
}

/// A user certificate expires on the holder's fifth birthday after issue.
pub(super) fn cert_expiry(birth: NaiveDate, issued: NaiveDate) -> NaiveDate {
    let y = issued.year() + if (birth.month(), birth.day()) > (issued.month(), issued.day()) { 4 } else { 5 };
    NaiveDate::from_ymd_opt(y, birth.month(), birth.day()).unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 2, 28).expect("28 February exists"))
}

/// First and last day of the month `back` months before `d`'s month (negative: after).
pub(super) fn month_bounds(d: NaiveDate, back: i32) -> (NaiveDate, NaiveDate) {
    let idx = d.year() * 12 + d.month0() as i32 - back;
    let first = |i: i32| NaiveDate::from_ymd_opt(i.div_euclid(12), i.rem_euclid(12) as u32 + 1, 1).expect("the 1st exists");
    (first(idx), days(first(idx + 1), -1))
}
