//! The frame decoder on arbitrary bytes: never panics, never allocates past
//! the limit, and whatever it decodes re-encodes to the same bytes.
#![no_main]

use elig_server::protocol::{decode, decode_all, decode_header, encode_into, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if let Some(h) = data.get(..HEADER_LEN) {
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(h);
        if let Ok((_, len)) = decode_header(&header, MAX) {
            assert!(len <= MAX);
        }
    }
    if let Ok(Some((frame, used))) = decode(data, MAX) {
        assert!(used <= data.len() && frame.payload.len() <= MAX);
    }
    if let Ok(frames) = decode_all(data, MAX) {
        let mut again = Vec::new();
        for f in &frames {
            encode_into(&mut again, f.kind, &f.payload);
        }
        assert_eq!(again, data);
    }
});
