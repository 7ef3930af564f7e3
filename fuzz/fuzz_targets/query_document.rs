//! Query documents (`contract.md` section 3) on arbitrary bytes: parsing
//! never panics, as any caller and as an institution; what parses has a
//! key kind and key text, and an error names its code.
#![no_main]

use elig_engine::query::{parse_query, parse_query_for};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in [parse_query(data, 20261122), parse_query_for(data, 20261122, Some("3410712362"))] {
        match parsed {
            Ok(q) => {
                assert!(!q.key.kind().is_empty());
                let _ = q.key.key_text();
            }
            Err(e) => assert!(e.code.len() == 4, "{e}"),
        }
    }
});
