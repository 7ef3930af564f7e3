//! One person: name, birth and address, and the per-person rows (certificates, references, consents).

use chrono::NaiveDate;
use rand::Rng;

use super::dates::{add_years, cert_expiry, days, rand_date, timestamp};
use super::draw::{mix, one_of, pick_cum, scramble};
use super::error::GenError;
use super::files::{CERTS, CONSENTS, PERSONS, REFERENCES, REVOKED};
use super::names::{FAMILY, FEMALE, MALE, TOWNS};
use super::state::Gen;

/// Certificate processing numbers have 16 digits.
pub(super) const PROC_MOD: u64 = 10_000_000_000_000_000;

#[derive(Clone)]
pub(super) struct Member {
    pub(super) name: String,
    pub(super) kana: String,
    pub(super) other: Option<(String, String)>,
    pub(super) given: &'static str,
    pub(super) sex: u8,
    pub(super) birth: NaiveDate,
}

/// Where a household lives.
pub(super) struct Home {
    pub(super) pref: usize,
    pub(super) muni: usize,
    pub(super) address: String,
    pub(super) post: String,
}

impl Gen {
    /// A person of the given age; sex 0 draws one. Given names differ within a household.
    pub(super) fn member(&mut self, family: usize, age: i32, sex: u8, used: &[&str]) -> Member {
        let rng = &mut self.rng;
        let mut sex = if sex == 0 { rng.gen_range(1..=2) } else { sex };
        let names = if sex == 1 { MALE } else { FEMALE };
        let (given, given_kana) = loop {
            let g = one_of(rng, names);
            if !used.contains(&g.0) {
                break g;
            }
        };
        if rng.gen_bool(0.0001) {
            sex = 3;
        }
        let hi = add_years(self.today, -age);
        let birth = rand_date(rng, days(add_years(self.today, -age - 1), 1), hi);
        let (fam, fam_kana) = FAMILY[family];
        let mut name = format!("{fam}\u{3000}{given}");
        // Characters outside the character set arrive as "●".
        if rng.gen_bool(0.001) {
            let chars: Vec<char> = name.chars().collect();
            let mut i = rng.gen_range(0..chars.len() - 1);
            if chars[i] == '\u{3000}' {
                i += 1;
            }
            name = chars.iter().enumerate().map(|(j, c)| if j == i { '●' } else { *c }).collect();
        }
        let other = rng.gen_bool(0.01).then(|| {
            let (of, ofk) = one_of(rng, FAMILY);
            (format!("{of}\u{3000}{given}"), format!("{ofk} {given_kana}"))
        });
        Member { name, kana: format!("{fam_kana} {given_kana}"), other, given, sex, birth }
    }

    /// An address in a prefecture (drawn by population unless given).
    pub(super) fn home(&mut self, pref: Option<usize>) -> Home {
        let rng = &mut self.rng;
        let p = &self.pools;
        let pref = pref.unwrap_or_else(|| pick_cum(rng, &p.pref_cum));
        let (lo, hi) = p.muni_range[pref];
        let muni = if rng.gen_bool(0.25) { lo } else { rng.gen_range(lo..hi) };
        let town = one_of(rng, &TOWNS);
        let (a, b, c) = (rng.gen_range(1..10), rng.gen_range(1..30), rng.gen_range(1..40));
        let address = format!("{}{}{town}{a}-{b}-{c}", p.prefs[pref].name, p.munis[muni].name);
        let post = format!("{:03}-{:04}", (p.prefs[pref].post + rng.gen_range(0..10)).min(999), rng.gen_range(0..10000));
        Home { pref, muni, address, post }
    }

    pub(super) fn person(&mut self, m: &Member, home: &Home) -> Result<u64, GenError> {
        self.seq.person += 1;
        let pid = self.seq.person;
        let (other, other_kana) = m.other.as_ref().map_or(("", ""), |(a, b)| (a.as_str(), b.as_str()));
        let r = &mut self.out.row;
        r.f(format_args!("P{pid:010}")).f(&m.name).f(&m.kana).f(other).f(other_kana);
        r.f(m.sex).d(m.birth).f(&home.address).f(&home.post);
        self.out.emit(PERSONS)?;
        Ok(pid)
    }

    /// About 80% hold a My Number card: one current link, 5% also an older expired one.
    pub(super) fn certificates(&mut self, pid: u64, m: &Member) -> Result<(), GenError> {
        let (today, rng) = (self.today, &mut self.rng);
        if !rng.gen_bool(0.8) {
            return Ok(());
        }
        let card_start = NaiveDate::from_ymd_opt(2016, 1, 1).expect("a valid date");
        let from = rand_date(rng, m.birth.max(card_start).max(add_years(today, -4)), today);
        let old =
            rng.gen_bool(0.05).then(|| rand_date(rng, m.birth.max(card_start), add_years(from, -1))).filter(|o| *o < add_years(from, -1));
        for (vf, vt) in
            [Some((from, cert_expiry(m.birth, from))), old.map(|o| (o, cert_expiry(m.birth, o).min(days(from, -1))))].into_iter().flatten()
        {
            self.seq.cert += 1;
            let serial = mix(self.seq.cert ^ self.serial_key);
            let processing = scramble(self.proc_off, self.seq.cert, PROC_MOD);
            self.out.row.f(format_args!("{serial:016X}")).f(format_args!("{processing:016}")).f(format_args!("P{pid:010}")).d(vf).d(vt);
            self.out.emit(CERTS)?;
            if vf == from && vf < today && self.rng.gen_bool(0.005) {
                let at = rand_date(&mut self.rng, days(vf, 1), today);
                let secs = self.rng.gen_range(0..86_400);
                self.out.row.f(format_args!("{serial:016X}")).f(timestamp(at, secs));
                self.out.emit(REVOKED)?;
            }
        }
        Ok(())
    }

    /// Reference numbers for ~5%: one institution, sometimes two (never the same one twice).
    pub(super) fn references(&mut self, pid: u64, pref: usize) -> Result<(), GenError> {
        if !self.rng.gen_bool(0.05) {
            return Ok(());
        }
        let all = &self.pools.inst_by[pref];
        let table = self.rng.gen_range(0..3);
        let first = one_of(&mut self.rng, &all[table]);
        let second = Some(one_of(&mut self.rng, &all[0])).filter(|s| *s != first && self.rng.gen_bool(0.1));
        for i in std::iter::once(first).chain(second) {
            let number = self.rng.gen_range(0..10_000_000_000u64);
            self.out.row.f(&self.pools.insts[i].code).f(format_args!("P{pid:010}")).f(format_args!("K{number:010}"));
            self.out.emit(REFERENCES)?;
        }
        Ok(())
    }

    /// Consents for ~3%, given at a card reader in the last two days: every kind chosen at once.
    pub(super) fn consents(&mut self, pid: u64, pref: usize) -> Result<(), GenError> {
        let rng = &mut self.rng;
        if !rng.gen_bool(0.03) {
            return Ok(());
        }
        let all = &self.pools.inst_by[pref];
        let table = rng.gen_range(0..3);
        let inst = &self.pools.insts[one_of(rng, &all[table])];
        let secs = rng.gen_range(0..2 * 86_400);
        let day = days(self.today, secs / 86_400 - 1);
        let expires = rng.gen_bool(0.9);
        let mut any = false;
        for (i, (kind, p)) in CONSENT_KINDS.iter().enumerate() {
            if rng.gen_bool(*p) || (!any && i == CONSENT_KINDS.len() - 1) {
                any = true;
                let r = &mut self.out.row;
                r.f(&inst.code).f(format_args!("P{pid:010}")).f(kind).f(timestamp(day, secs % 86_400));
                // Viewing expires 24 hours after consent; some readers send no expiry.
                r.f(expires.then(|| timestamp(days(day, 1), secs % 86_400)).map_or(String::new(), |t| t.to_string()));
                self.out.emit(CONSENTS)?;
            }
        }
        Ok(())
    }
}

#[rustfmt::skip]
const CONSENT_KINDS: [(&str, f64); 6] =
    [("diagnosis", 0.5), ("checkup", 0.4), ("operation", 0.3), ("limit", 0.2), ("specific_disease", 0.03), ("pharmacy", 0.8)];
