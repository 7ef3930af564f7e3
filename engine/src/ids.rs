//! Identifier rules shared by the loader, the engine and the delta feed:
//! width folding, normalisation and the check digit of `domain.md` section 3.
//!
//! Every function here returns the canonical form or a [`FieldError`] that
//! names the field and the value, so a reader can fix the input.

use std::fmt;

/// A rejected field: which one, the value seen, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} '{value}': {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        FieldError { field, value: value.to_string(), reason: reason.to_string() }
    }
}

/// Fold full-width ASCII (U+FF01..U+FF5E) and the ideographic space to
/// half-width; other characters (kanji, kana) stay as they are.
fn fold_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Folded and trimmed: the first step for every identifier. One allocation:
/// `trim` already drops U+3000 at the ends, and folding never turns a
/// character left inside into whitespace at an end.
pub fn clean(s: &str) -> String {
    cleaned(s).into_owned()
}

/// [`clean`] without a copy when nothing needs folding (ASCII text).
fn cleaned(s: &str) -> std::borrow::Cow<'_, str> {
    let t = s.trim();
    if t.is_ascii() {
        std::borrow::Cow::Borrowed(t)
    } else {
        std::borrow::Cow::Owned(fold_width(t))
    }
}

/// The check digit of `domain.md` section 3: weights 2,1,2,1.. from the
/// rightmost digit leftwards, two-digit products summed, (10 - sum % 10) % 10.
/// `digits` must be ASCII digits (callers check first).
pub fn check_digit(digits: &str) -> u8 {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let d = u32::from(b.wrapping_sub(b'0'));
        let p = if i % 2 == 0 { d * 2 } else { d };
        sum += p / 10 + p % 10;
    }
    ((10 - sum % 10) % 10) as u8
}

/// Append the check digit to a digit string (used by the generator and tests).
pub fn with_check_digit(body: &str) -> String {
    format!("{body}{}", check_digit(body))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Digits of the given length whose last digit is the check digit.
fn checked_digits(field: &'static str, raw: &str, len: usize) -> Result<String, FieldError> {
    checked_clean_digits(field, raw, clean(raw), len)
}

/// [`checked_digits`] of `v`, already cleaned from `raw` (named in errors).
fn checked_clean_digits(field: &'static str, raw: &str, v: String, len: usize) -> Result<String, FieldError> {
    if !all_digits(&v) || v.len() != len {
        return Err(FieldError::new(field, raw, format!("must be {len} digits")));
    }
    let (body, last) = v.split_at(len - 1);
    let expected = check_digit(body);
    if last.as_bytes()[0] - b'0' != expected {
        return Err(FieldError::new(field, raw, format!("fails its check digit (expected {expected})")));
    }
    Ok(v)
}

/// Insurer number: 8 digits, or a 6-digit NHI insurer (sent right-aligned in
/// 8 characters, padded with spaces or zeros). Canonical form: 8 digits, or
/// 6 digits for NHI.
pub fn insurer_number(raw: &str) -> Result<String, FieldError> {
    const F: &str = "InsurerNumber";
    let v = clean(raw);
    let v = match v.len() {
        8 if v.starts_with("00") => v[2..].to_string(),
        _ => v,
    };
    match v.len() {
        len @ (6 | 8) => checked_clean_digits(F, raw, v, len),
        _ => Err(FieldError::new(F, raw, "must be 8 digits (6 for National Health Insurance)")),
    }
}

/// Public-expense payer number: 8 digits with check digit.
pub fn payer_number(raw: &str) -> Result<String, FieldError> {
    checked_digits("PayerNumber", raw, 8)
}

/// Public-expense recipient number: 7 digits with check digit.
pub fn recipient_number(raw: &str) -> Result<String, FieldError> {
    checked_digits("RecipientNumber", raw, 7)
}

/// Medical institution code: 10 digits, table digit 1, 3 or 4, check digit
/// over the first 9 digits.
pub fn institution_code(raw: &str) -> Result<String, FieldError> {
    let v = checked_digits("MedicalInstitutionCode", raw, 10)?;
    match v.as_bytes()[2] {
        b'1' | b'3' | b'4' => Ok(v),
        _ => Err(FieldError::new("MedicalInstitutionCode", raw, "third digit must be 1 (medical), 3 (dental) or 4 (pharmacy)")),
    }
}

/// Card symbol: up to 20 characters after width folding, may be empty.
pub fn card_symbol(raw: &str) -> Result<String, FieldError> {
    let v = clean(raw);
    if v.chars().count() > 20 {
        return Err(FieldError::new("InsuredCardSymbol", raw, "longer than 20 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new("InsuredCardSymbol", raw, CONTROL));
    }
    Ok(v)
}

/// Index keys join their parts with U+001F: a part holding a control
/// character could make two different cards one key.
const CONTROL: &str = "must not contain control characters";

/// Card number: 1 to 20 characters after width folding.
pub fn card_number(raw: &str) -> Result<String, FieldError> {
    let v = clean(raw);
    if v.is_empty() || v.chars().count() > 20 {
        return Err(FieldError::new("InsuredIdentificationNumber", raw, "must be 1 to 20 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new("InsuredIdentificationNumber", raw, CONTROL));
    }
    Ok(v)
}

/// Branch number: exactly 2 digits after width folding (`1` is refused, not
/// padded: `domain.md` section 5), or empty.
pub fn branch_number(raw: &str) -> Result<String, FieldError> {
    let v = clean(raw);
    match v.len() {
        0 => Ok(v),
        2 if all_digits(&v) => Ok(v),
        _ => Err(FieldError::new("InsuredBranchNumber", raw, "must be 2 digits, with its leading zero (\"01\")")),
    }
}

/// Certificate serial or processing number: 1 to 64 visible ASCII characters,
/// folded to upper case (J-LIS serials are hexadecimal).
pub fn certificate_key(field: &'static str, raw: &str) -> Result<String, FieldError> {
    let mut v = clean(raw);
    v.make_ascii_uppercase();
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(field, raw, "must be 1 to 64 visible ASCII characters"));
    }
    Ok(v)
}

/// A date `YYYYMMDD` as a number; `0` never comes back (absent is handled by callers).
pub fn date(field: &'static str, raw: &str) -> Result<u32, FieldError> {
    let v = cleaned(raw);
    let bad = || FieldError::new(field, raw, "must be a date YYYYMMDD");
    if v.len() != 8 || !all_digits(&v) {
        return Err(bad());
    }
    let n: u32 = v.parse().map_err(|_| bad())?;
    let (y, m, d) = (n / 10000, n / 100 % 100, n % 100);
    if chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_none() || y < 1850 {
        return Err(bad());
    }
    Ok(n)
}

/// A month `YYYYMM` as a number.
pub fn month(field: &'static str, raw: &str) -> Result<u32, FieldError> {
    let v = cleaned(raw);
    let bad = || FieldError::new(field, raw, "must be a month YYYYMM");
    if v.len() != 6 || !all_digits(&v) {
        return Err(bad());
    }
    let n: u32 = v.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&(n % 100)) || n / 100 < 1900 {
        return Err(bad());
    }
    Ok(n)
}

/// A timestamp `YYYYMMDDHHmmss` as a number.
pub fn timestamp(field: &'static str, raw: &str) -> Result<u64, FieldError> {
    let v = cleaned(raw);
    let bad = || FieldError::new(field, raw, "must be a timestamp YYYYMMDDHHmmss");
    if v.len() != 14 || !all_digits(&v) {
        return Err(bad());
    }
    date(field, &v[..8]).map_err(|_| bad())?;
    let t: u32 = v[8..].parse().map_err(|_| bad())?;
    if t / 10000 > 23 || t / 100 % 100 > 59 || t % 100 > 59 {
        return Err(bad());
    }
    v.parse().map_err(|_| bad())
}

/// One of the allowed codes, returned as given.
pub fn code(field: &'static str, raw: &str, allowed: &[&str]) -> Result<String, FieldError> {
    let v = clean(raw);
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(FieldError::new(field, raw, format!("must be one of {}", allowed.join(", "))))
    }
}

/// The key bytes of an insurance card index entry (canonical fields joined
/// by the unit separator, which none of them may contain).
pub fn insurance_key(insurer: &str, symbol: &str, number: &str, branch: &str) -> String {
    joined(&[insurer, symbol, number, branch])
}

/// The key of a public-assistance index entry.
pub fn assistance_key(payer: &str, recipient: &str) -> String {
    joined(&[payer, recipient])
}

/// Parts joined by U+001F (unit separator), which no part may contain.
/// Plain pushes rather than `format!`: this runs on every card lookup.
fn joined(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        key.push_str(part);
    }
    key
}

/// The key of a delegated-ticket index entry.
pub fn ticket_key(institution: &str, month: u32) -> String {
    format!("{institution}\u{1f}{month}")
}

/// Today's date in Japan time as YYYYMMDD, and the current timestamp.
pub fn japan_now() -> (u32, u64) {
    let jst = chrono::FixedOffset::east_opt(9 * 3600).expect("constant offset is valid");
    let now = chrono::Utc::now().with_timezone(&jst);
    // Arithmetic, not formatting: the server reads the clock on every request.
    use chrono::{Datelike, Timelike};
    let d = now.year().max(0) as u32 * 10000 + now.month() * 100 + now.day();
    let t = u64::from(d) * 1_000_000 + u64::from(now.hour() * 10000 + now.minute() * 100 + now.second().min(59));
    (d, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `clean` trims before folding; it must equal folding then trimming.
        #[test]
        fn clean_is_fold_then_trim(s in "[ a1\u{3000}\u{FF10}\u{FF21}\u{00A0}\u{3042}\t]{0,12}") {
            proptest::prop_assert_eq!(clean(&s), fold_width(&s).trim().to_string());
        }
    }

    #[test]
    fn card_parts_refuse_control_characters() {
        for raw in ["X\u{1f}Y", "1\t2", "\u{0}"] {
            let e = card_symbol(raw).unwrap_err();
            assert_eq!((e.field, e.reason.as_str()), ("InsuredCardSymbol", CONTROL), "{raw:?}");
            let e = card_number(raw).unwrap_err();
            assert_eq!((e.field, e.reason.as_str()), ("InsuredIdentificationNumber", CONTROL), "{raw:?}");
        }
        assert_eq!(card_symbol("記号").unwrap(), "記号");
        assert_eq!(card_number("１２３").unwrap(), "123");
    }

    #[test]
    fn index_keys_join_their_parts_with_the_unit_separator() {
        assert_eq!(insurance_key("01130012", "記号", "123", ""), "01130012\u{1f}記号\u{1f}123\u{1f}");
        assert_eq!(assistance_key("12131017", "1234567"), "12131017\u{1f}1234567");
        assert_eq!(ticket_key("1312345678", 202611), "1312345678\u{1f}202611");
    }

    #[test]
    fn check_digits_of_the_domain_examples() {
        assert_eq!(insurer_number("06130488").unwrap(), "06130488");
        assert_eq!(insurer_number("273128").unwrap(), "273128");
        assert_eq!(insurer_number("  273128").unwrap(), "273128");
        assert_eq!(insurer_number("00273128").unwrap(), "273128");
        assert_eq!(payer_number("88134457").unwrap(), "88134457");
        assert_eq!(recipient_number("1234566").unwrap(), "1234566");
        assert_eq!(institution_code("3410712362").unwrap(), "3410712362");
    }

    #[test]
    fn wrong_check_digit_names_field_value_and_expectation() {
        let e = payer_number("88134458").unwrap_err();
        assert_eq!(e.field, "PayerNumber");
        assert_eq!(e.to_string(), "PayerNumber '88134458': fails its check digit (expected 7)");
        let e = insurer_number("06130489").unwrap_err();
        assert!(e.to_string().contains("expected 8"), "{e}");
        assert!(insurer_number("0613048").is_err());
        assert!(institution_code("3420712360").is_err(), "table digit 2 is not a table");
    }

    #[test]
    fn full_width_digits_and_spaces_are_folded() {
        assert_eq!(insurer_number("０６１３０４８８").unwrap(), "06130488");
        assert_eq!(card_symbol(" ＡＢ１２ ").unwrap(), "AB12");
        assert_eq!(card_symbol("東京").unwrap(), "東京");
        assert_eq!(
            branch_number("１").unwrap_err().to_string(),
            "InsuredBranchNumber '１': must be 2 digits, with its leading zero (\"01\")"
        );
        assert_eq!(branch_number(" ０１ ").unwrap(), "01");
        assert!(branch_number("001").is_err());
    }

    #[test]
    fn the_japan_clock_gives_a_valid_date_and_timestamp_of_that_date() {
        let (d, t) = japan_now();
        assert_eq!(date("d", &d.to_string()).unwrap(), d);
        assert_eq!(timestamp("t", &t.to_string()).unwrap(), t);
        assert_eq!(t / 1_000_000, u64::from(d));
    }

    #[test]
    fn dates_months_timestamps() {
        assert_eq!(date("d", "20240229").unwrap(), 20240229);
        assert!(date("d", "20230229").is_err());
        assert!(date("d", "2023-01-01").is_err());
        assert_eq!(month("m", "202611").unwrap(), 202611);
        assert!(month("m", "202613").is_err());
        assert_eq!(timestamp("t", "20261122093000").unwrap(), 20261122093000);
        assert!(timestamp("t", "20261122250000").is_err());
    }
}
