//! The frame decoder and the incremental frame reader on arbitrary bytes:
//! never panic, never allocate past the limit, whatever is decoded
//! re-encodes to the same bytes, and the reader fed in chunks of any size
//! decodes what the whole-buffer decoder does.
#![no_main]

use elig_wire::frame::{decode, decode_all, decode_header, encode_into, HEADER_LEN};
use elig_wire::reader::{FrameReader, Step};
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
    let whole = decode_all(data, MAX);
    if let Ok(frames) = &whole {
        let mut again = Vec::new();
        for f in frames {
            encode_into(&mut again, f.kind, &f.payload);
        }
        assert_eq!(again, data);
    }
    // The reader, fed `chunk` bytes at a time (the first byte picks it).
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut reader = FrameReader::new();
    let mut rest = data;
    let mut frames = Vec::new();
    let read = loop {
        match reader.decode(|_| MAX) {
            Err(e) => break Err(e),
            Ok(Step::Ready(kind)) => frames.push((kind, reader.payload().to_vec())),
            Ok(Step::End) => break Ok(()),
            Ok(Step::More) => reader.read_from(&mut rest, chunk),
        }
    };
    match whole {
        Ok(want) => {
            assert!(read.is_ok());
            assert_eq!(frames, want.into_iter().map(|f| (f.kind, f.payload)).collect::<Vec<_>>());
        }
        Err(_) => assert!(read.is_err()),
    }
});
