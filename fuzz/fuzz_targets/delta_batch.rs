//! Delta batches (`contract.md` section 2) on arbitrary bytes: parsing never
//! panics; a batch that parses has a positive seq, changes numbered in
//! order within the text, and the digest its text gives without parsing.
#![no_main]

use elig_engine::delta::{parse_batch, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = parse_batch(data) else { return };
    assert!(batch.seq > 0);
    let lines = data.split(|b| *b == b'\n').count();
    let mut last = 1;
    for (line, _) in &batch.changes {
        assert!(*line > last && *line <= lines, "line {line} after {last} of {lines}");
        last = *line;
    }
    assert_eq!(Digest::of_batch(data), Some(batch.digest));
    // The same changes with CRLF line ends are the same batch.
    let crlf: Vec<u8> = data.iter().flat_map(|b| if *b == b'\n' { b"\r\n".to_vec() } else { vec![*b] }).collect();
    if let Ok(again) = parse_batch(&crlf) {
        assert_eq!(again.digest, batch.digest);
    }
});
