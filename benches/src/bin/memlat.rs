//! This host's memory latency, to read every lookup figure beside: the
//! time of one dependent load (a pointer chase over a random cycle of cache
//! lines) in working sets from 1 MiB (the L2 here) to 2 GiB. A lookup at
//! national size is a short chain of such loads (index slot, record, its
//! lists and strings), so a host with slow memory has slow lookups.
//!
//! Run: `cargo run --release -p elig-benches --bin memlat`.

use std::hint::black_box;
use std::time::Instant;

/// usize words per 64-byte line: each line holds the next line's index.
const WORDS: usize = 8;

fn main() {
    for mib in [1usize, 8, 24, 64, 512, 2048] {
        let lines = mib * 1024 * 1024 / 64;
        // A random cyclic order of the lines (a seeded xorshift shuffle).
        let mut order: Vec<usize> = (0..lines).collect();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..lines).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut next = vec![0usize; lines * WORDS];
        for w in 0..lines {
            next[order[w] * WORDS] = order[(w + 1) % lines] * WORDS;
        }
        let mut at = 0;
        for _ in 0..lines {
            at = next[at]; // one lap to fault the pages in
        }
        let hops = (lines * 4).clamp(2_000_000, 20_000_000);
        let started = Instant::now();
        for _ in 0..hops {
            at = next[at];
        }
        let ns = started.elapsed().as_nanos() as f64 / hops as f64;
        black_box(at);
        println!("{mib:>5} MiB working set: {ns:6.1} ns a dependent load");
    }
}
