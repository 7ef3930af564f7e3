//! The weights of the key kinds (`--mix`), and the sampler that picks
//! keys by them while the load runs.

use rand::Rng;

use super::{BenchError, Mode};
use crate::keys::{KeyKind, KeyPool};

/// Relative weights of the key kinds (`--mix serial=40,card=40,...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
}

impl Mix {
    /// The mix of single lookups when none is given.
    pub const SINGLE: Mix = Mix { weights: [40, 10, 40, 10, 0] };
    /// The mix of bulk inquiries when none is given.
    pub const BULK: Mix = Mix { weights: [0, 0, 90, 10, 0] };

    pub fn default_for(mode: Mode) -> Mix {
        match mode {
            Mode::Single => Mix::SINGLE,
            Mode::Bulk => Mix::BULK,
        }
    }

    /// Parse `kind=weight,...`: kinds are named at most once, weights are
    /// whole numbers (relative, they need not add up to 100), not all 0.
    pub fn parse(text: &str) -> Result<Mix, BenchError> {
        let bad = |reason: String| BenchError::option("--mix", text, reason);
        let mut weights = [0u32; 5];
        let mut named = [false; 5];
        for entry in text.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(bad("an entry is empty; write kind=weight,kind=weight".into()));
            }
            let (name, weight) = entry.split_once('=').ok_or_else(|| bad(format!("'{entry}' needs the form kind=weight")))?;
            let (name, weight) = (name.trim(), weight.trim());
            let kind = KeyKind::parse(name).ok_or_else(|| {
                let known: Vec<&str> = KeyKind::ALL.iter().map(|k| k.name()).collect();
                bad(format!("unknown key kind '{name}' (known: {})", known.join(", ")))
            })?;
            if std::mem::replace(&mut named[kind.slot()], true) {
                return Err(bad(format!("'{name}' is given twice")));
            }
            weights[kind.slot()] = weight.parse().map_err(|_| bad(format!("the weight '{weight}' of '{name}' is not a whole number")))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(bad("every weight is 0".into()));
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: KeyKind) -> u32 {
        self.weights[kind.slot()]
    }

    /// The kinds with a weight above 0.
    pub fn kinds(&self) -> impl Iterator<Item = KeyKind> + '_ {
        KeyKind::ALL.into_iter().filter(|k| self.weight(*k) > 0)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.kinds().map(|k| format!("{}={}", k.name(), self.weight(k))).collect();
        f.write_str(&parts.join(","))
    }
}

/// Picks a key kind by weight, then an absent key with the absent share,
/// then a document uniformly.
#[derive(Debug)]
pub struct Sampler {
    pool: KeyPool,
    /// Kinds and cumulative weights.
    kinds: Vec<(KeyKind, u32)>,
    total: u32,
    absent: f64,
}

impl Sampler {
    /// Check that every kind of the mix can be asked in `mode` and has keys.
    pub fn new(pool: KeyPool, mix: &Mix, absent: f64, mode: Mode) -> Result<Sampler, BenchError> {
        let mut kinds = Vec::new();
        let mut total = 0;
        for kind in mix.kinds() {
            if mode == Mode::Bulk && !kind.in_bulk() {
                return Err(BenchError::option(
                    "--mix",
                    &mix.to_string(),
                    format!("a bulk inquiry takes card and ticket keys only, not '{}'", kind.name()),
                ));
            }
            let (present, missing) = pool.counts(kind);
            if present == 0 && (missing == 0 || absent == 0.0) {
                return Err(BenchError::option(
                    "--mix",
                    &mix.to_string(),
                    format!("the data holds no '{}' keys for this requester; give it weight 0", kind.name()),
                ));
            }
            total += mix.weight(kind);
            kinds.push((kind, total));
        }
        Ok(Sampler { pool, kinds, total, absent })
    }

    pub fn pool(&self) -> &KeyPool {
        &self.pool
    }

    /// The next key: its kind and query document.
    pub fn pick(&self, rng: &mut impl Rng) -> (KeyKind, &[u8]) {
        let w = rng.gen_range(0..self.total.max(1));
        let kind = self.kinds.iter().find(|(_, upto)| w < *upto).map_or(KeyKind::Card, |(k, _)| *k);
        let (present, absent) = self.pool.counts(kind);
        let want_absent = absent > 0 && (present == 0 || rng.gen_bool(self.absent.clamp(0.0, 1.0)));
        let n = if want_absent { absent } else { present };
        (kind, self.pool.doc(kind, want_absent, rng.gen_range(0..n.max(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyPlan, KeySource, Requester};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use serde_json::Value;

    const TODAY: u32 = 20261122;

    fn plan(source: KeySource, requester: Requester) -> KeyPlan {
        KeyPlan { source, requester, pool: 200, today: TODAY, date: Some(TODAY), seed: 3 }
    }

    #[test]
    fn the_mix_parser_names_the_bad_value() {
        let m = Mix::parse("serial=40, card=40,ticket=10,processing=10").unwrap();
        assert_eq!((m.weight(KeyKind::Serial), m.weight(KeyKind::Delegated)), (40, 0));
        assert_eq!(m.to_string(), "serial=40,processing=10,card=40,ticket=10");
        let err = |text: &str| Mix::parse(text).unwrap_err().to_string();
        assert_eq!(
            err("serial=40,cards=60"),
            "--mix 'serial=40,cards=60': unknown key kind 'cards' (known: serial, processing, card, ticket, delegated)"
        );
        assert_eq!(err("card=x"), "--mix 'card=x': the weight 'x' of 'card' is not a whole number");
        assert_eq!(err("card=-1"), "--mix 'card=-1': the weight '-1' of 'card' is not a whole number");
        assert_eq!(err("card"), "--mix 'card': 'card' needs the form kind=weight");
        assert_eq!(err("card=1,card=2"), "--mix 'card=1,card=2': 'card' is given twice");
        assert_eq!(err("card=0"), "--mix 'card=0': every weight is 0");
        assert!(err("card=1,").contains("an entry is empty"));
    }

    #[test]
    fn the_sampler_follows_the_mix_and_refuses_what_it_cannot_ask() {
        let dir = tempfile::tempdir().unwrap();
        let snap = elig_server::dev::demo::synthetic_snapshot(dir.path(), 800, 9, TODAY).unwrap();
        let build = || KeyPool::build(&plan(KeySource::Snapshot(snap.clone()), Requester::Central)).unwrap();
        let sampler = Sampler::new(build(), &Mix::parse("card=3,serial=1").unwrap(), 0.0, Mode::Single).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut cards = 0;
        for _ in 0..4000 {
            let (kind, doc) = sampler.pick(&mut rng);
            assert!(matches!(kind, KeyKind::Card | KeyKind::Serial));
            let v: Value = serde_json::from_slice(doc).unwrap();
            assert_eq!(v.get("InsuranceCard").is_some(), kind == KeyKind::Card);
            cards += usize::from(kind == KeyKind::Card);
        }
        assert!((2700..3300).contains(&cards), "{cards} of 4000 should be about 3000");
        let e = Sampler::new(build(), &Mix::parse("card=9,serial=1").unwrap(), 0.1, Mode::Bulk).unwrap_err();
        assert_eq!(e.to_string(), "--mix 'serial=1,card=9': a bulk inquiry takes card and ticket keys only, not 'serial'");
    }
}
