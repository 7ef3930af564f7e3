//! The values of an answer as its strings: numbers, dates and times, codes.
//! Shared by the engine's entries (`entry.rs`) and the lookup bench's
//! `HashMap` baseline, so the two build answers alike. Every lookup formats
//! a few dozen of these, so none goes through `format!`.

use compact_str::ToCompactString;

use crate::answer::Str;

pub fn date(d: u32) -> Option<Str> {
    (d != 0).then(|| number(u64::from(d)))
}

pub fn ts(t: u64) -> Option<Str> {
    (t != 0).then(|| number(t))
}

/// A number as its decimal text.
pub fn number(n: u64) -> Str {
    Str::from(decimal(n, &mut [0; 20]))
}

/// The decimal text of `n`, written into `buf`. Dates (8 digits) and times
/// (14 digits), most values of an answer, take a fixed-width path with no
/// digit count and no length-dependent copy. Shared by the answer struct
/// and the JSON renderer (`render.rs`), so both write the same digits.
#[inline]
pub fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    #[inline]
    fn fixed(mut n: u64, out: &mut [u8]) {
        let mut i = out.len();
        while i >= 2 {
            let r = (n % 100) as usize * 2;
            n /= 100;
            out[i - 2..i].copy_from_slice(&PAIRS[r..r + 2]);
            i -= 2;
        }
        if i == 1 {
            out[0] = b'0' + (n % 10) as u8;
        }
    }
    let len = match n {
        10_000_000..=99_999_999 => 8,
        10_000_000_000_000..=99_999_999_999_999 => 14,
        _ => {
            let mut len = 1;
            let mut m = n / 10;
            while m > 0 {
                len += 1;
                m /= 10;
            }
            len
        }
    };
    fixed(n, &mut buf[..len]);
    // ASCII digits: never fails.
    std::str::from_utf8(&buf[..len]).unwrap_or_default()
}

pub fn text(s: &str) -> Option<Str> {
    (!s.is_empty()).then(|| Str::from(s))
}

/// An insurer number as the real message writes it: a National Health
/// Insurance number (6 digits) right-aligned with spaces in 8 characters
/// (`"  273128"`), any other as its digits (`interface.md`, "What real
/// clients require").
pub fn insurer(s: &str) -> Option<Str> {
    match s.len() {
        0 => None,
        6 => {
            let mut out = Str::with_capacity(8);
            out.push_str(INSURER_PAD);
            out.push_str(s);
            Some(out)
        }
        _ => Some(Str::from(s)),
    }
}

/// What [`insurer`] puts before a 6-digit number.
pub const INSURER_PAD: &str = "  ";

/// A code zero-padded to `width` digits, at most 3 (`01`, `030`); absent for 0.
pub fn code(n: u8, width: usize) -> Option<Str> {
    code_text(n, width, &mut [0; 3]).map(Str::from)
}

/// The text of [`code`], written into `buf`.
#[inline]
pub fn code_text(n: u8, width: usize, buf: &mut [u8; 3]) -> Option<&str> {
    if n == 0 {
        return None;
    }
    *buf = [b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10];
    let needed = if n >= 100 {
        3
    } else if n >= 10 {
        2
    } else {
        1
    };
    let len = width.clamp(needed, 3);
    // ASCII digits: never fails.
    std::str::from_utf8(&buf[3 - len..]).ok()
}

/// A one-digit code (sex, personal/family) as a constant string; any
/// other `u8` as its decimal text (as [`decimal`] writes it).
pub fn digit(n: u8) -> Str {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(usize::from(n)) {
        Some(d) => Str::const_new(d),
        None => n.to_compact_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::code;

    #[test]
    fn codes_are_zero_padded_to_their_width() {
        let shown = |n, w| code(n, w).map(|s| s.to_string());
        assert_eq!(shown(0, 2), None);
        assert_eq!(shown(1, 2).as_deref(), Some("01"));
        assert_eq!(shown(39, 2).as_deref(), Some("39"));
        assert_eq!(shown(30, 3).as_deref(), Some("030"));
        assert_eq!(shown(7, 3).as_deref(), Some("007"));
        assert_eq!(shown(150, 2).as_deref(), Some("150"));
        assert_eq!(shown(255, 3).as_deref(), Some("255"));
        assert_eq!(shown(5, 1).as_deref(), Some("5"));
    }

    #[test]
    fn numbers_are_their_decimal_text() {
        for n in [0u64, 7, 1_234_567, 10_000_000, 20_260_401, 99_999_999, 100_000_000, 9_999_999_999_999].into_iter().chain([
            10_000_000_000_000,
            20_261_122_093_015,
            99_999_999_999_999,
            100_000_000_000_000,
            u64::MAX,
        ]) {
            assert_eq!(super::number(n), n.to_string());
        }
    }

    #[test]
    fn digits_are_their_decimal_text() {
        for n in [0u8, 1, 2, 9, 10, 255] {
            assert_eq!(super::digit(n), n.to_string());
        }
    }
}
