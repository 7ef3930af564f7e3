//! Half-width katakana, one byte a character in a snapshot (format 2).
//!
//! A name kana is half-width katakana (U+FF61..=U+FF9F, three bytes each in
//! UTF-8) and spaces. Archived, each of those 63 characters is the one ASCII
//! byte `0x40 + (c - U+FF61)` (`0x40..=0x7E`) and a space stays a space, so
//! a name of up to eight characters fits inline in rkyv's string (no
//! out-of-line bytes at all) and a longer one takes a third of the bytes.
//! Any other text is archived as `0x01` followed by its UTF-8 (so it never
//! reads back as compact kana). Owned records keep the plain `String`;
//! [`Kana`] is the rkyv `with` wrapper that converts on archive and on
//! deserialise, and [`ArchivedKana::text`] decodes for an answer.

use rkyv::string::ArchivedString;
use rkyv::Portable;

use crate::answer::Str;

const FIRST: u32 = 0xFF61;
const LAST: u32 = 0xFF9F;
const BASE: u8 = 0x40;
const RAW: char = '\u{1}';

/// The archived form of `s`.
pub fn encode(s: &str) -> String {
    let compact = s.chars().all(|c| c == ' ' || (FIRST..=LAST).contains(&u32::from(c)));
    if !compact {
        let mut raw = String::with_capacity(s.len() + 1);
        raw.push(RAW);
        raw.push_str(s);
        return raw;
    }
    s.chars().map(|c| if c == ' ' { ' ' } else { char::from(BASE + (u32::from(c) - FIRST) as u8) }).collect()
}

/// The archived form of `s`, given to `f`.
fn encoded<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    f(&encode(s))
}

/// The text of an archived form (the inverse of [`encode`]); `f` gets it
/// without an allocation for names of up to 21 characters.
pub fn decode<R>(stored: &str, f: impl FnOnce(&str) -> R) -> R {
    if let Some(raw) = stored.strip_prefix(RAW) {
        return f(raw);
    }
    let mut buf = [0u8; 64];
    if stored.len() * 3 > buf.len() {
        let s: String = stored.bytes().map(unmap).collect();
        return f(&s);
    }
    let mut n = 0;
    for b in stored.bytes() {
        n += unmap(b).encode_utf8(&mut buf[n..]).len();
    }
    // Only chars were encoded into the buffer: always UTF-8.
    f(std::str::from_utf8(&buf[..n]).unwrap_or_default())
}

fn unmap(b: u8) -> char {
    if (BASE..=BASE + (LAST - FIRST) as u8).contains(&b) {
        char::from_u32(FIRST + u32::from(b - BASE)).unwrap_or(' ')
    } else {
        // A space; anything else cannot come from `encode`.
        char::from(b)
    }
}

/// A name kana as archived (see the module docs).
#[derive(Portable, rkyv::bytecheck::CheckBytes, Debug)]
#[bytecheck(crate = rkyv::bytecheck)]
#[rkyv(crate = rkyv)]
#[repr(transparent)]
pub struct ArchivedKana(ArchivedString);

impl ArchivedKana {
    /// The text for an answer; `None` when empty (as `values::text`).
    pub fn text(&self) -> Option<Str> {
        decode(self.0.as_str(), crate::values::text)
    }

    /// Whether the text is empty (`text` gives `None`).
    pub(crate) fn is_blank(&self) -> bool {
        let stored = self.0.as_str();
        stored.is_empty() || stored.strip_prefix(RAW) == Some("")
    }

    /// The text appended to `out` as [`decode`] reads it, through `escape`
    /// (the renderer's JSON escaping) where it may need it: compact kana
    /// are their three UTF-8 bytes, written without a decode buffer.
    pub(crate) fn write_escaped(&self, out: &mut Vec<u8>, escape: fn(&mut Vec<u8>, &str)) {
        let stored = self.0.as_str();
        if let Some(raw) = stored.strip_prefix(RAW) {
            return escape(out, raw);
        }
        for b in stored.bytes() {
            if (BASE..=BASE + (LAST - FIRST) as u8).contains(&b) {
                let c = FIRST + u32::from(b - BASE);
                out.extend_from_slice(&[0xEF, 0x80 | ((c >> 6) & 0x3F) as u8, 0x80 | (c & 0x3F) as u8]);
            } else {
                escape(out, unmap(b).encode_utf8(&mut [0; 4]));
            }
        }
    }

    /// The text, owned.
    pub fn to_text(&self) -> String {
        decode(self.0.as_str(), str::to_string)
    }
}

/// The rkyv `with` wrapper: `#[rkyv(with = Kana)]` on a `String` field.
#[derive(Debug)]
pub struct Kana;

crate::coded::coded_string!(Kana, ArchivedKana, encoded, ArchivedKana::to_text);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_and_spaces_take_a_byte_each_and_read_back() {
        for s in ["ﾔﾏﾀﾞ ﾀﾛｳ", "｡ﾟ", "", " ", "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝ"]
        {
            let e = encode(s);
            assert_eq!(e.len(), s.chars().count(), "{s}");
            assert!(e.bytes().all(|b| b == b' ' || (0x40..=0x7E).contains(&b)), "{e:?}");
            assert_eq!(decode(&e, str::to_string), s);
        }
    }

    #[test]
    fn kana_are_written_as_they_decode() {
        for s in ["ﾔﾏﾀﾞ ﾀﾛｳ", "｡ﾟ", "", "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝ", "ABC \"q\"", "\u{1}"]
        {
            let r = crate::model::PersonRecord { name_kana: s.into(), ..Default::default() };
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&r).unwrap();
            let a = rkyv::access::<crate::model::ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
            let mut out = Vec::new();
            a.name_kana.write_escaped(&mut out, |out, s| out.extend_from_slice(s.as_bytes()));
            assert_eq!(String::from_utf8(out).unwrap(), s);
            assert_eq!(a.name_kana.is_blank(), a.name_kana.text().is_none(), "{s:?}");
        }
    }

    #[test]
    fn other_text_is_kept_as_it_is() {
        for s in ["ABC", "ﾔﾏﾀﾞ1", "やまだ", "\u{1}ｱ", "ﾔﾏﾀﾞ　ﾀﾛｳ"] {
            let e = encode(s);
            assert!(e.starts_with(RAW), "{e:?}");
            assert_eq!(decode(&e, str::to_string), s);
        }
    }

    #[test]
    fn archived_records_read_back_their_kana() {
        let r = crate::model::PersonRecord { name_kana: "ﾔﾏﾀﾞ ﾀﾛｳ".into(), ..Default::default() };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&r).unwrap();
        let a = rkyv::access::<crate::model::ArchivedPersonRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(a.name_kana.text().as_deref(), Some("ﾔﾏﾀﾞ ﾀﾛｳ"));
        let back = rkyv::deserialize::<crate::model::PersonRecord, rkyv::rancor::Error>(a).unwrap();
        assert_eq!(back, r);
    }
}
