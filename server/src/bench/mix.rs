//! The key kinds of `eligd bench` and their weights (`--mix`).

use super::{BenchError, Mode};

/// The kinds of keys a bench asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// My Number card: certificate serial number (lookup).
    Serial,
    /// My Number card: J-LIS processing number (lookup).
    Processing,
    /// Insurance card: insurer, symbol, number, branch and birth date.
    Card,
    /// Medical ticket: payer, recipient and birth date.
    Ticket,
    /// Delegated-ticket fetch: institution and treatment month (a `tickets` request).
    Delegated,
}

impl KeyKind {
    pub const ALL: [KeyKind; 5] = [KeyKind::Serial, KeyKind::Processing, KeyKind::Card, KeyKind::Ticket, KeyKind::Delegated];

    /// The name in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Serial => "serial",
            KeyKind::Processing => "processing",
            KeyKind::Card => "card",
            KeyKind::Ticket => "ticket",
            KeyKind::Delegated => "delegated",
        }
    }

    pub fn parse(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether a bulk inquiry takes this kind (insurance cards and medical tickets).
    pub fn in_bulk(self) -> bool {
        matches!(self, KeyKind::Card | KeyKind::Ticket)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

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
            if std::mem::replace(&mut named[kind.index()], true) {
                return Err(bad(format!("'{name}' is given twice")));
            }
            weights[kind.index()] = weight.parse().map_err(|_| bad(format!("the weight '{weight}' of '{name}' is not a whole number")))?;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err(bad("every weight is 0".into()));
        }
        Ok(Mix { weights })
    }

    pub fn weight(&self, kind: KeyKind) -> u32 {
        self.weights[kind.index()]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
