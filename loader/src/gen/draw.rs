//! Random draws (weighted, uniform, yes/no) and the bijections that keep counters' numbers unique.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `n`-th value of a bijection on `0..modulus` (the stride is coprime with powers of ten),
/// so counters give distinct, random-looking numbers.
pub(super) fn scramble(off: u64, n: u64, modulus: u64) -> u64 {
    ((off as u128 + n as u128 * 3_141_592_653_589_793u128) % modulus as u128) as u64
}

/// The splitmix64 finaliser: a bijection on u64, so distinct counters give distinct serials.
pub(super) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Running sums of weights, for [`pick_cum`].
pub(super) fn cumulative(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    weights
        .scan(0, |s, w| {
            *s += w;
            Some(*s)
        })
        .collect()
}

/// An index drawn with probability proportional to its weight, from running sums.
pub(super) fn pick_cum(rng: &mut ChaCha8Rng, cum: &[u32]) -> usize {
    let x = rng.gen_range(0..*cum.last().unwrap_or(&1));
    cum.partition_point(|&c| c <= x).min(cum.len() - 1)
}

/// An element drawn with probability proportional to its weight.
pub(super) fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let mut x = rng.gen_range(0..items.iter().map(|i| i.1).sum::<u32>());
    for &(t, w) in items {
        if x < w {
            return t;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

/// A uniform element (an index into a pool, a code, a name).
pub(super) fn one_of<T: Copy>(rng: &mut ChaCha8Rng, v: &[T]) -> T {
    v[rng.gen_range(0..v.len())]
}

pub(super) fn either<'a>(rng: &mut ChaCha8Rng, p: f64, a: &'a str, b: &'a str) -> &'a str {
    if rng.gen_bool(p) {
        a
    } else {
        b
    }
}
