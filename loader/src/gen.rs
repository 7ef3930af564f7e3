//! The synthetic nightly export (`contract.md` section 1), for tests, demos and benchmarks.
//!
//! One seeded ChaCha8 stream drives everything, so the same options give byte-identical files.
//! Fixed pools (insurers, municipalities, welfare offices, institutions) are drawn first; then
//! households are generated one at a time and written straight to the per-file CSV writers, so
//! memory stays flat however many persons are asked for. Keys are unique by construction
//! (per-insurer and per-office counters run through bijections); with `defect_rate > 0` defective
//! persons are added on purpose.

use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate};
use elig_engine::ids::with_check_digit;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    pub persons: u64,
    pub seed: u64,
    /// The export date, `YYYYMMDD`: every date is placed relative to it.
    pub today: u32,
    /// Fraction of persons added as data defects (shared insurance keys, duplicated identities).
    pub defect_rate: f64,
}

impl GenOptions {
    pub fn new(persons: u64, seed: u64, today: u32) -> Self {
        GenOptions { persons, seed, today, defect_rate: 0.0 }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    pub persons: u64,
    /// Data rows per file (header excluded), in the order of [`FILES`].
    pub rows: Vec<(String, u64)>,
    pub households: u64,
    /// Defective persons injected (included in `persons`).
    pub defects: u64,
    pub insurers: usize,
    pub institutions: usize,
    pub welfare_offices: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    #[error("export date {0} is not a date YYYYMMDD between 2018 and 2099")]
    InvalidToday(u32),
    #[error("defect rate {0} is not between 0 and 1")]
    InvalidDefectRate(f64),
    #[error("cannot write {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write {}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
}

/// The files of the export and their columns, in the order written.
#[rustfmt::skip]
pub const FILES: [(&str, &[&str]); 11] = [
    ("persons.csv", &["person_id", "name", "name_kana", "other_name", "other_name_kana", "sex", "birth_date", "address", "post_number"]),
    ("certificates.csv", &["serial_number", "processing_number", "person_id", "valid_from", "valid_to"]),
    ("revoked_certificates.csv", &["serial_number", "revoked_at"]),
    ("insurance.csv", &[
        "qualification_id", "person_id", "insurer_number", "card_symbol", "card_number", "branch_number",
        "card_classification", "personal_family", "insured_name", "insurer_name", "qualification_date",
        "disqualification_date", "reason_of_loss", "card_issue_date", "card_valid_from", "card_valid_to",
        "contribution_ratio", "preschool",
    ]),
    ("elderly_certificates.csv", &["qualification_id", "issue_date", "valid_from", "valid_to", "contribution_ratio"]),
    ("limit_certificates.csv", &["qualification_id", "classification", "category", "issue_date", "valid_from", "valid_to", "long_term_date"]),
    ("specific_disease_certificates.csv", &["qualification_id", "category", "issue_date", "valid_from", "valid_to", "self_pay"]),
    ("assistance.csv", &["assistance_id", "person_id", "payer_number", "recipient_number", "welfare_office", "start_date", "end_date"]),
    ("tickets.csv", &[
        "ticket_id", "assistance_id", "ticket_type", "treatment_month", "valid_from", "valid_to", "issue_number",
        "institution_code", "institution_name", "treatment_type", "self_pay", "injury_name_1", "injury_name_2",
        "injury_name_3", "single_or_combined", "social_insurance", "consistency_flag", "infectious_disease",
        "elderly_medical_care", "prefectural_expenses", "prescriber_code", "prescriber_name", "district_contact",
        "handling_contact", "remarks_1", "remarks_2", "remarks_3",
    ]),
    ("reference_numbers.csv", &["institution_code", "person_id", "reference_number"]),
    ("consents.csv", &["institution_code", "person_id", "kind", "consented_at", "expires_at"]),
];
const PERSONS: usize = 0;
const CERTS: usize = 1;
const REVOKED: usize = 2;
const INSURANCE: usize = 3;
const ELDERLY: usize = 4;
const LIMIT: usize = 5;
const DISEASE: usize = 6;
const ASSISTANCE: usize = 7;
const TICKETS: usize = 8;
const REFERENCES: usize = 9;
const CONSENTS: usize = 10;

/// Write the whole export into `out_dir` (created if needed).
pub fn generate(opts: &GenOptions, out_dir: &Path) -> Result<GenSummary, GenError> {
    generate_with_progress(opts, out_dir, |_| {})
}

/// As [`generate`], calling `progress` with the number of persons written every 65,536 persons
/// and once at the end.
pub fn generate_with_progress(opts: &GenOptions, out_dir: &Path, mut progress: impl FnMut(u64)) -> Result<GenSummary, GenError> {
    let today = date_of(opts.today).filter(|d| (2018..=2099).contains(&d.year())).ok_or(GenError::InvalidToday(opts.today))?;
    if !(0.0..=1.0).contains(&opts.defect_rate) {
        return Err(GenError::InvalidDefectRate(opts.defect_rate));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let pools = Pools::build(&mut rng);
    let (serial_key, proc_off) = (rng.gen(), rng.gen_range(0..PROC_MOD));
    let mut g =
        Gen { rng, today, defect_rate: opts.defect_rate, pools, serial_key, proc_off, out: Out::create(out_dir)?, seq: Seq::default() };
    let mut reported = 0;
    while g.seq.person < opts.persons {
        g.household(opts.persons - g.seq.person)?;
        if g.seq.person - reported >= 1 << 16 {
            reported = g.seq.person;
            progress(reported);
        }
    }
    progress(g.seq.person);
    let seq = g.seq;
    let (insurers, institutions, welfare_offices) = (g.pools.insurers.len(), g.pools.insts.len(), g.pools.offices.len());
    let counts = g.out.finish()?;
    Ok(GenSummary {
        persons: seq.person,
        rows: FILES.iter().zip(counts).map(|((f, _), n)| (f.to_string(), n)).collect(),
        households: seq.household,
        defects: seq.defects,
        insurers,
        institutions,
        welfare_offices,
    })
}

/// Kinds of insurance, with the person share of the national mix and the mean household
/// size of each, so that households are drawn in proportion share / size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cat {
    Kyokai,
    Society,
    Nhi,
    Late,
    Mutual,
    Seamen,
    Sdf,
    SpecialRetiree,
    NhiRetiree,
}

#[rustfmt::skip]
const CATS: [(Cat, f64, f64); 9] = [
    (Cat::Kyokai, 30.0, 1.85), (Cat::Society, 22.0, 1.85), (Cat::Nhi, 21.0, 1.55), (Cat::Late, 15.5, 1.0),
    (Cat::Mutual, 7.0, 1.85), (Cat::Seamen, 0.4, 1.85), (Cat::Sdf, 0.8, 1.85),
    (Cat::SpecialRetiree, 0.5, 1.3), (Cat::NhiRetiree, 0.3, 1.3),
];

impl Cat {
    /// Employee-style insurance: one insured, the others dependants (personal_family 2).
    /// In NHI and late-stage elderly insurance every member is insured in their own right.
    fn has_dependants(self) -> bool {
        !matches!(self, Cat::Nhi | Cat::Late)
    }
    /// Municipal insurance: cards expire each July, members leave it for public assistance.
    fn municipal(self) -> bool {
        matches!(self, Cat::Nhi | Cat::Late)
    }
    fn card_class(self) -> &'static str {
        match self {
            Cat::Sdf => "07",
            Cat::SpecialRetiree => "06",
            Cat::NhiRetiree => "02",
            _ => "01",
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Seq {
    person: u64,
    household: u64,
    qual: u64,
    assist: u64,
    ticket: u64,
    cert: u64,
    defects: u64,
}

struct Gen {
    rng: ChaCha8Rng,
    today: NaiveDate,
    defect_rate: f64,
    pools: Pools,
    serial_key: u64,
    proc_off: u64,
    out: Out,
    seq: Seq,
}

#[derive(Clone)]
struct Member {
    name: String,
    kana: String,
    other: Option<(String, String)>,
    given: &'static str,
    sex: u8,
    birth: NaiveDate,
}

#[derive(Clone)]
struct Card {
    ins: usize,
    symbol: String,
    number: String,
}

struct Assist {
    start: NaiveDate,
    end: Option<NaiveDate>,
    combined: bool,
}

/// One insurance row to write.
struct Qual<'a> {
    card: &'a Card,
    branch: usize,
    dependant: bool,
    insured_name: &'a str,
    from: NaiveDate,
    loss: Option<(NaiveDate, &'static str)>,
}

/// Where a household lives.
struct Home {
    pref: usize,
    muni: usize,
    address: String,
    post: String,
}

impl Gen {
    /// One household: its members share an address, an insurer and (employee or NHI) a card.
    fn household(&mut self, room: u64) -> Result<(), GenError> {
        let today = self.today;
        self.seq.household += 1;
        let cat = self.pick_cat();
        let home = self.home(None);
        let mut members = self.members(cat);
        members.truncate(room as usize);
        let holder = members[0].clone();
        let holder_age = age_at(holder.birth, today);
        let ins = self.insurer_for(cat, home.pref, home.muni);
        let card = self.new_card(ins);

        // About 1.6% of persons: whole municipal households leave their insurance for assistance,
        // a few employee households get it on top of their insurance (combined use).
        let assist_rate = match cat {
            Cat::Nhi => 0.05,
            Cat::Late => 0.03,
            _ => 0.003,
        };
        let assist = self.rng.gen_bool(assist_rate).then(|| {
            let combined = !cat.municipal();
            let start = if combined || self.rng.gen_bool(0.45) {
                days(today, -self.rng.gen_range(1..3 * 365))
            } else {
                days(today, -self.rng.gen_range(3 * 365..15 * 365))
            };
            let start = start.max(holder.birth);
            let ends = !combined && start < days(today, -60) && self.rng.gen_bool(0.03);
            let end = ends.then(|| rand_date(&mut self.rng, days(start, 30).max(days(today, -365)), days(today, -1)));
            Assist { start, end, combined }
        });
        // A job change: the household's old qualification, lost (03) the day the new one starts.
        let change = (assist.is_none() && cat != Cat::Late && (20..=64).contains(&holder_age) && self.rng.gen_bool(0.03)).then(|| {
            let at = days(today, -self.rng.gen_range(30..=(3 * 365).min((holder_age as i64 - 19) * 365)));
            let old = self.other_insurer(ins);
            let old_start = days(at, -self.rng.gen_range(365..15 * 365)).max(add_years(holder.birth, 18)).min(days(at, -1));
            (self.new_card(old), at, old_start)
        });
        let start = match (&change, cat) {
            (Some((_, at, _)), _) => *at,
            (None, Cat::SpecialRetiree | Cat::NhiRetiree) => rand_date(&mut self.rng, add_years(holder.birth, 60), today),
            (None, _) => rand_date(&mut self.rng, add_years(holder.birth, 18).max(add_years(today, -40)), today),
        };
        // Municipal members lose their card the day assistance starts; some come back after it ends.
        let pre_start = match &assist {
            Some(a) => rand_date(&mut self.rng, add_years(holder.birth, 20).max(add_years(a.start, -20)), days(a.start, -1)),
            None => today,
        };
        let card_after = match &assist {
            Some(Assist { end: Some(_), .. }) => Some(self.new_card(ins)),
            _ => None,
        };

        let mut key_src = None;
        for (i, m) in members.iter().enumerate() {
            let pid = self.person(m, &home)?;
            let from = if cat == Cat::Late { late_start(m.birth) } else { start.max(m.birth) };
            let q = |card, from, loss| Qual {
                card,
                branch: i + 1,
                dependant: i > 0 && cat.has_dependants(),
                insured_name: &holder.name,
                from,
                loss,
            };
            let mut alive = true;
            match &assist {
                Some(a) if cat.municipal() => {
                    let s = a.start.max(m.birth);
                    let pre = if cat == Cat::Late { from } else { pre_start.max(m.birth) };
                    if s >= add_years(today, -3) && pre < s {
                        self.qual(pid, m, q(&card, pre, Some((s, "02"))))?;
                    }
                    if let (Some(end), Some(c)) = (a.end, &card_after) {
                        self.qual(pid, m, q(c, days(end, 1), None))?;
                    }
                }
                _ => {
                    if let Some((old, at, old_start)) = &change {
                        if m.birth < *at {
                            let old_cat = self.pools.insurers[old.ins].cat;
                            let old_q = Qual {
                                dependant: i > 0 && old_cat.has_dependants(),
                                ..q(old, (*old_start).max(m.birth), Some((*at, "03")))
                            };
                            self.qual(pid, m, old_q)?;
                        }
                    }
                    // About 0.5% have only a lost qualification: deaths among the old, other losses.
                    let lose = assist.is_none() && from < days(today, -1) && self.rng.gen_bool(0.005);
                    let loss = lose.then(|| {
                        let at = rand_date(&mut self.rng, days(from, 1).max(add_years(today, -3)), days(today, -1));
                        let death = age_at(m.birth, at) >= 60 && self.rng.gen_bool(0.6);
                        alive = !death;
                        (at, if death { "01" } else { "99" })
                    });
                    if i == 0 && self.defect_rate > 0.0 {
                        key_src = Some(from);
                    }
                    self.qual(pid, m, q(&card, from, loss))?;
                }
            }
            if alive {
                self.certificates(pid, m)?;
                self.consents(pid, home.pref)?;
            }
            self.references(pid, home.pref)?;
            if let Some(a) = &assist {
                self.assistance(pid, m, &home, a)?;
            }
        }
        if self.defect_rate > 0.0 && (members.len() as u64) < room {
            let p = (self.defect_rate * members.len() as f64).min(1.0);
            if self.rng.gen_bool(p) {
                self.defect(&holder, &home, key_src.map(|from| (card, from)), cat)?;
            }
        }
        Ok(())
    }

    /// A defective extra person: a second person on the holder's insurance key with an
    /// overlapping period, or the holder's identity again under a new person id.
    fn defect(&mut self, holder: &Member, home: &Home, key: Option<(Card, NaiveDate)>, cat: Cat) -> Result<(), GenError> {
        self.seq.defects += 1;
        match key {
            Some((card, from)) if self.rng.gen_bool(0.5) => {
                let (family, age) = (self.rng.gen_range(0..FAMILY.len()), self.rng.gen_range(25..60));
                let mut m = self.member(family, age, 0, &[]);
                if self.rng.gen_bool(0.5) {
                    m.birth = holder.birth;
                }
                let own_home = self.home(Some(home.pref));
                let pid = self.person(&m, &own_home)?;
                let name = m.name.clone();
                self.qual(pid, &m, Qual { card: &card, branch: 1, dependant: false, insured_name: &name, from, loss: None })
            }
            _ => {
                let pid = self.person(holder, home)?;
                let nhi = self.insurer_for(if cat == Cat::Late { Cat::Late } else { Cat::Nhi }, home.pref, home.muni);
                let card = self.new_card(nhi);
                let from = rand_date(&mut self.rng, add_years(self.today, -2), self.today).max(holder.birth);
                self.qual(pid, holder, Qual { card: &card, branch: 1, dependant: false, insured_name: &holder.name, from, loss: None })
            }
        }
    }

    fn pick_cat(&mut self) -> Cat {
        let total: f64 = CATS.iter().map(|c| c.1 / c.2).sum();
        let mut x = self.rng.gen::<f64>() * total;
        for (cat, share, size) in CATS {
            x -= share / size;
            if x < 0.0 {
                return cat;
            }
        }
        Cat::Kyokai
    }

    /// Members of a household: the holder, maybe a spouse, children under employee or NHI cover.
    fn members(&mut self, cat: Cat) -> Vec<Member> {
        // Holder ages by kind: NHI is old (the self-employed and the retired), employees of working age.
        let ages: &[((i32, i32), u32)] = match cat {
            Cat::Late => &[((75, 79), 35), ((80, 84), 30), ((85, 89), 20), ((90, 94), 10), ((95, 100), 5)],
            Cat::Nhi => &[((20, 29), 6), ((30, 39), 7), ((40, 49), 9), ((50, 59), 10), ((60, 64), 10), ((65, 69), 22), ((70, 74), 26)],
            Cat::SpecialRetiree | Cat::NhiRetiree => &[((60, 64), 40), ((65, 69), 35), ((70, 74), 25)],
            _ => &[
                ((18, 24), 8),
                ((25, 34), 20),
                ((35, 44), 23),
                ((45, 54), 26),
                ((55, 59), 11),
                ((60, 64), 8),
                ((65, 69), 3),
                ((70, 74), 1),
            ],
        };
        let (lo, hi) = weighted(&mut self.rng, ages);
        let age = self.rng.gen_range(lo..=hi);
        let male = match cat {
            Cat::Late => 0.42,
            Cat::Nhi => 0.5,
            _ => 0.62,
        };
        let sex = if self.rng.gen_bool(male) { 1 } else { 2 };
        let family = self.rng.gen_range(0..FAMILY.len());
        let mut v = vec![self.member(family, age, sex, &[])];
        if cat == Cat::Late {
            return v;
        }
        if age >= 22 && self.rng.gen_bool(0.35) {
            let spouse_age = (age + self.rng.gen_range(-5..=5)).clamp(18, 74);
            let used: Vec<_> = v.iter().map(|m| m.given).collect();
            v.push(self.member(family, spouse_age, 3 - sex.min(2), &used));
        }
        if (22..=60).contains(&age) {
            let counts: &[(u32, u32)] =
                if cat == Cat::Nhi { &[(0, 75), (1, 13), (2, 9), (3, 3)] } else { &[(0, 66), (1, 16), (2, 15), (3, 3)] };
            for _ in 0..weighted(&mut self.rng, counts) {
                let child_age = self.rng.gen_range(0..=(age - 20).min(22));
                let used: Vec<_> = v.iter().map(|m| m.given).collect();
                let sex = self.rng.gen_range(1..=2);
                v.push(self.member(family, child_age, sex, &used));
            }
        }
        v
    }

    /// A person of the given age; sex 0 draws one. Given names differ within a household.
    fn member(&mut self, family: usize, age: i32, sex: u8, used: &[&str]) -> Member {
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
    fn home(&mut self, pref: Option<usize>) -> Home {
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

    fn insurer_for(&mut self, cat: Cat, pref: usize, muni: usize) -> usize {
        let p = &self.pools;
        match cat {
            Cat::Kyokai => p.kyokai[pref],
            Cat::Late => p.late[pref],
            // A few NHI members belong to a trade's NHI association (doctors, builders) instead.
            Cat::Nhi if self.rng.gen_bool(0.08) => one_of(&mut self.rng, &p.kumiai[pref]),
            Cat::Nhi => p.munis[muni].nhi,
            _ => one_of(&mut self.rng, &p.by_cat[cat as usize]),
        }
    }

    /// The previous employer's (or municipality's) insurer before a job change.
    fn other_insurer(&mut self, ins: usize) -> usize {
        loop {
            let cat = one_of(&mut self.rng, &[Cat::Kyokai, Cat::Kyokai, Cat::Society, Cat::Society, Cat::Nhi, Cat::Mutual]);
            let home = self.home(None);
            let other = self.insurer_for(cat, home.pref, home.muni);
            if other != ins {
                return other;
            }
        }
    }

    /// A new card of an insurer: the number comes from the insurer's counter, so keys never repeat.
    fn new_card(&mut self, ins: usize) -> Card {
        let rng = &mut self.rng;
        let i = &mut self.pools.insurers[ins];
        let n = i.next;
        i.next += 1;
        let number = match i.cat {
            Cat::Nhi => format!("{:07}", scramble(i.off, n, 10_000_000)),
            Cat::Late => format!("{:08}", scramble(i.off, n, 100_000_000)),
            _ => (n + 1).to_string(),
        };
        let symbol = match i.cat {
            Cat::Kyokai => format!("{:08}", rng.gen_range(1..100_000_000)),
            Cat::Late => String::new(),
            // Mutual-aid and NHI symbols often carry kanji, sometimes full-width digits.
            Cat::Mutual | Cat::Nhi if rng.gen_bool(0.3) => {
                let k = one_of(rng, &["本", "東", "西", "教", "警", "市", "国"]);
                let d = rng.gen_range(1..100).to_string();
                let d = if rng.gen_bool(0.5) { d.chars().map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)).collect() } else { d };
                format!("{k}{d}")
            }
            _ => rng.gen_range(1..10_000).to_string(),
        };
        Card { ins, symbol, number }
    }

    fn person(&mut self, m: &Member, home: &Home) -> Result<u64, GenError> {
        self.seq.person += 1;
        let pid = self.seq.person;
        let (other, other_kana) = m.other.as_ref().map_or(("", ""), |(a, b)| (a.as_str(), b.as_str()));
        let r = &mut self.out.row;
        r.f(format_args!("P{pid:010}")).f(&m.name).f(&m.kana).f(other).f(other_kana);
        r.f(m.sex).d(m.birth).f(&home.address).f(&home.post);
        self.out.emit(PERSONS)?;
        Ok(pid)
    }

    /// One insurance row, and for a qualification in force its attached certificates.
    fn qual(&mut self, pid: u64, m: &Member, q: Qual) -> Result<(), GenError> {
        let (today, rng) = (self.today, &mut self.rng);
        self.seq.qual += 1;
        let qid = self.seq.qual;
        let ins = &self.pools.insurers[q.card.ins];
        let current = q.loss.is_none();
        let at = q.loss.map_or(today, |l| l.0);
        let age = age_at(m.birth, at);
        let preschool = at < school_entry(m.birth);
        let elderly = ins.cat != Cat::Late && (70..=74).contains(&age) && elderly_start(m.birth) <= at;
        let ratio = match () {
            _ if preschool => "020",
            _ if ins.cat == Cat::Late => either(rng, 0.9, "010", "030"),
            _ if elderly => either(rng, 0.8, "020", "030"),
            _ => "030",
        };
        let x: f64 = rng.gen();
        let class = if current && x < 0.02 {
            "05"
        } else if current && ins.cat == Cat::Nhi && x < 0.025 {
            "03"
        } else {
            ins.cat.card_class()
        };
        let (issue, valid_from, valid_to) = match class {
            // Qualification certificates replace cards since December 2024; valid up to 5 years.
            "05" => {
                let issue = rand_date(rng, q.from.max(days(today, -365)), today);
                (issue, issue, Some(days(add_years(issue, 5), -1)))
            }
            "03" => (rand_date(rng, q.from.max(days(today, -60)), today), q.from, Some(days(today, rng.gen_range(30..=180)))),
            _ => {
                let valid_to = ins.cat.municipal().then(|| next_jul31(at));
                (rand_date(rng, q.from, days(q.from, 30).min(at)), q.from, valid_to)
            }
        };
        let r = &mut self.out.row;
        r.f(format_args!("Q{qid:011}")).f(format_args!("P{pid:010}")).f(&ins.number).f(&q.card.symbol).f(&q.card.number);
        r.f(format_args!("{:02}", q.branch)).f(class).f(if q.dependant { 2 } else { 1 }).f(q.insured_name).f(&ins.name);
        r.d(q.from).opt(q.loss.map(|l| l.0)).f(q.loss.map_or("", |l| l.1)).d(issue).d(valid_from).opt(valid_to);
        r.f(ratio).f(if preschool { "1" } else { "" });
        self.out.emit(INSURANCE)?;
        if !current {
            return Ok(());
        }
        if elderly {
            let from = elderly_start(m.birth).max(q.from);
            let to = next_jul31(today).min(days(add_years(m.birth, 75), -1));
            let issue = days(from, -rng.gen_range(0..20)).max(m.birth);
            self.out.row.f(format_args!("Q{qid:011}")).d(issue).d(from).d(to).f(ratio);
            self.out.emit(ELDERLY)?;
        }
        if rng.gen_bool(0.03) {
            let class = one_of(rng, &["01", "01", "01", "02", "02", "03"]);
            let from = rand_date(rng, days(today, -330), today).max(q.from);
            let long_term = (class == "02" && rng.gen_bool(0.2)).then(|| rand_date(rng, from, today));
            // Categories A are for patients under 70, B for 70 and over.
            let category = if age < 70 { format!("A{:02}", rng.gen_range(1..=6)) } else { format!("B{:02}", rng.gen_range(1..=10)) };
            self.out.row.f(format_args!("Q{qid:011}")).f(class).f(category).d(from).d(from).d(next_jul31(from)).opt(long_term);
            self.out.emit(LIMIT)?;
        }
        if rng.gen_bool(0.001) {
            let cat = one_of(rng, &[1, 2, 2, 2, 2, 2, 2, 2, 2, 3]);
            let from = rand_date(rng, add_years(today, -10), today).max(q.from);
            let to = rng.gen_bool(0.3).then(|| next_jul31(today));
            let pay = if cat == 2 && age < 70 && rng.gen_bool(0.2) { 20000 } else { 10000 };
            self.out.row.f(format_args!("Q{qid:011}")).f(cat).d(from).d(from).opt(to).f(pay);
            self.out.emit(DISEASE)?;
        }
        Ok(())
    }

    /// About 80% hold a My Number card: one current link, 5% also an older expired one.
    fn certificates(&mut self, pid: u64, m: &Member) -> Result<(), GenError> {
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

    /// Public assistance and the monthly tickets of the last 2 or 3 months.
    fn assistance(&mut self, pid: u64, m: &Member, home: &Home, a: &Assist) -> Result<(), GenError> {
        // A child born after the household's assistance ended was never assisted.
        if a.end.is_some_and(|end| m.birth > end) {
            return Ok(());
        }
        let (today, rng) = (self.today, &mut self.rng);
        self.seq.assist += 1;
        let aid = self.seq.assist;
        let office = &mut self.pools.offices[self.pools.munis[home.muni].office];
        let recipient = with_check_digit(&format!("{:06}", scramble(office.off, office.next, 1_000_000)));
        office.next += 1;
        let start = a.start.max(m.birth);
        let r = &mut self.out.row;
        r.f(format_args!("A{aid:09}")).f(format_args!("P{pid:010}")).f(&office.payer).f(&recipient).f(&office.name).d(start).opt(a.end);
        self.out.emit(ASSISTANCE)?;

        let inst = &self.pools.inst_by[home.pref];
        let dental = rng.gen_bool(0.15);
        let clinic = if dental { one_of(rng, &inst[1]) } else { one_of(rng, &inst[0]) };
        let prescriber = if dental { one_of(rng, &inst[0]) } else { clinic };
        let pharmacy = one_of(rng, &inst[2]);
        let district = rng.gen_bool(0.2).then(|| one_of(rng, FAMILY).0);
        let handling = rng.gen_bool(0.1).then(|| one_of(rng, FAMILY).0);
        let months = rng.gen_range(2..=3);
        for back in (0..months).rev() {
            let (ms, me) = month_bounds(today, back);
            let (vf, vt) = (ms.max(start), a.end.map_or(me, |e| e.min(me)));
            if vf > vt {
                continue;
            }
            let medical = self.rng.gen_bool(0.85);
            let dispensing = !medical || self.rng.gen_bool(0.55);
            for (kind, go) in [("01", medical), ("02", dispensing)] {
                if !go {
                    continue;
                }
                let rng = &mut self.rng;
                self.seq.ticket += 1;
                let tid = self.seq.ticket;
                let i = &self.pools.insts[if kind == "01" { clinic } else { pharmacy }];
                let treatment = match (kind, dental) {
                    ("02", _) => "04",
                    (_, true) => "03",
                    _ => one_of(rng, &["02", "02", "02", "02", "02", "02", "01", "05"]),
                };
                let self_pay = if rng.gen_bool(0.95) { 0 } else { rng.gen_range(1..200) * 100 };
                let injuries: &[&str] = match (kind, dental) {
                    ("02", _) => &[],
                    (_, true) => DENTAL_INJURIES,
                    _ => INJURIES,
                };
                let n_inj = if injuries.is_empty() { 0 } else { rng.gen_range(1..=3) };
                let r = &mut self.out.row;
                r.f(format_args!("T{tid:010}")).f(format_args!("A{aid:09}")).f(kind).f(format_args!("{}{:02}", ms.year(), ms.month()));
                r.d(vf).d(vt).f(format_args!("{:07}", tid % 10_000_000)).f(&i.code).f(&i.name).f(treatment).f(self_pay);
                for k in 0..3 {
                    r.f(if k < n_inj { injuries[(tid as usize + k * 7) % injuries.len()] } else { "" });
                }
                let (single, social) = if a.combined { ("02", "01") } else { ("01", "02") };
                // Status flags are sparse: most tickets leave them empty.
                let flag = |rng: &mut ChaCha8Rng, p: f64| if rng.gen_bool(p) { one_of(rng, &["01", "02"]) } else { "" };
                r.f(single).f(social).f(either(rng, 0.005, "1", "")).f(flag(rng, 0.01)).f(flag(rng, 0.02)).f(flag(rng, 0.02));
                let p = &self.pools.insts[prescriber];
                let (p_code, p_name) = if kind == "02" { (p.code.as_str(), p.name.as_str()) } else { ("", "") };
                r.f(p_code).f(p_name).f(district.unwrap_or("")).f(handling.unwrap_or(""));
                let remark = if rng.gen_bool(0.03) { one_of(rng, REMARKS) } else { "" };
                r.f(remark).f("").f("");
                self.out.emit(TICKETS)?;
            }
        }
        Ok(())
    }

    /// Reference numbers for ~5%: one institution, sometimes two (never the same one twice).
    fn references(&mut self, pid: u64, pref: usize) -> Result<(), GenError> {
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
    fn consents(&mut self, pid: u64, pref: usize) -> Result<(), GenError> {
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

/// Institution name forms by table (medical, dental, pharmacy): {f} a family name, {t} a town.
#[rustfmt::skip]
const INST_NAMES: [&[&str]; 3] = [
    &["{f}クリニック", "{f}内科医院", "{f}整形外科", "{t}中央病院", "{t}記念病院", "{f}小児科", "{f}眼科", "医療法人{f}会{t}病院"],
    &["{f}歯科医院", "{f}歯科クリニック", "{t}駅前歯科"],
    &["{f}薬局", "さくら薬局{t}店", "あおば調剤薬局", "{t}中央薬局"],
];
#[rustfmt::skip]
const CONSENT_KINDS: [(&str, f64); 6] =
    [("diagnosis", 0.5), ("checkup", 0.4), ("operation", 0.3), ("limit", 0.2), ("specific_disease", 0.03), ("pharmacy", 0.8)];
const PROC_MOD: u64 = 10_000_000_000_000_000;

// ---------------------------------------------------------------- pools

struct Pref {
    name: &'static str,
    pop: u32,
    capital: &'static str,
    post: u32,
}
struct Muni {
    name: String,
    nhi: usize,
    office: usize,
}
struct Insurer {
    number: String,
    name: String,
    cat: Cat,
    next: u64,
    off: u64,
}
struct Inst {
    code: String,
    name: String,
}
struct Office {
    payer: String,
    name: String,
    next: u64,
    off: u64,
}

/// Everything drawn once per run: a few thousand insurers, municipalities with their NHI
/// insurer and welfare office, and a few thousand institutions.
struct Pools {
    prefs: Vec<Pref>,
    pref_cum: Vec<u32>,
    munis: Vec<Muni>,
    muni_range: Vec<(usize, usize)>,
    insurers: Vec<Insurer>,
    kyokai: Vec<usize>,
    late: Vec<usize>,
    kumiai: Vec<Vec<usize>>,
    by_cat: Vec<Vec<usize>>,
    insts: Vec<Inst>,
    /// Per prefecture: medical, dental, pharmacy.
    inst_by: Vec<[Vec<usize>; 3]>,
    offices: Vec<Office>,
    /// The last 3-digit number used per (law code, prefecture), while building.
    last: Vec<[u32; 47]>,
}

impl Pools {
    fn build(rng: &mut ChaCha8Rng) -> Pools {
        let prefs: Vec<Pref> = PREFS
            .split_whitespace()
            .map(|s| {
                let f: Vec<&str> = s.split(',').collect();
                Pref { name: f[0], pop: f[1].parse().unwrap_or(1), capital: f[2], post: f[3].parse().unwrap_or(100) }
            })
            .collect();
        let pref_cum = cumulative(prefs.iter().map(|p| p.pop));
        let mut p = Pools {
            prefs,
            pref_cum,
            munis: vec![],
            muni_range: vec![],
            insurers: vec![],
            kyokai: vec![],
            late: vec![],
            kumiai: vec![],
            by_cat: vec![vec![]; CATS.len()],
            insts: vec![],
            inst_by: vec![],
            offices: vec![],
            last: vec![[0; 47]; 100],
        };
        for pi in 0..47 {
            let (pname, short) = (p.prefs[pi].name, short_pref(p.prefs[pi].name));
            let n = 10 + p.prefs[pi].pop as usize / 15;
            let mut combos: Vec<usize> = (0..MUNI_A.len() * MUNI_B.len()).collect();
            let start = p.munis.len();
            for k in 0..n {
                let name = if k == 0 {
                    p.prefs[pi].capital.to_string()
                } else {
                    let c = combos.swap_remove(rng.gen_range(0..combos.len()));
                    let suffix = if pi == 12 && k < 24 { "区" } else { one_of(rng, &["市", "市", "市", "町", "町", "村"]) };
                    format!("{}{}{suffix}", MUNI_A[c % MUNI_A.len()], MUNI_B[c / MUNI_A.len()])
                };
                let nhi = p.add(rng, 0, pi, format!("{name}国民健康保険"), Cat::Nhi);
                let payer = p.number(rng, 12, pi).expect("fewer than 300 offices per prefecture");
                p.offices.push(Office { payer, name: format!("{name}福祉事務所"), next: 0, off: rng.gen_range(0..1_000_000) });
                p.munis.push(Muni { name, nhi, office: p.offices.len() - 1 });
            }
            p.muni_range.push((start, p.munis.len()));
            let k = ["医師", "歯科医師", "建設"].map(|t| p.add(rng, 0, pi, format!("{pname}{t}国民健康保険組合"), Cat::Nhi));
            p.kumiai.push(k.to_vec());
            let kyokai = p.add(rng, 1, pi, format!("全国健康保険協会{short}支部"), Cat::Kyokai);
            p.kyokai.push(kyokai);
            let late = p.add(rng, 39, pi, format!("{pname}後期高齢者医療広域連合"), Cat::Late);
            p.late.push(late);
            for (law, name) in [(32, "地方職員共済組合"), (33, "警察共済組合"), (34, "公立学校共済組合")] {
                let i = p.add(rng, law, pi, format!("{name}{short}支部"), Cat::Mutual);
                p.by_cat[Cat::Mutual as usize].push(i);
            }
        }
        // Health insurance societies cluster in Tokyo, Osaka and Aichi.
        let boost = |i| match i {
            12 => 6,
            22 | 26 => 2,
            _ => 1,
        };
        let society_cum = cumulative(p.prefs.iter().enumerate().map(|(i, pr)| pr.pop * boost(i)));
        for k in 0..1200 {
            let pi = pick_cum(rng, &society_cum);
            let name = format!("{}{}{}健康保険組合", COMPANY_A[k % 20], COMPANY_B[k / 20 % 20], ["", "グループ", "工業"][k / 400]);
            let Some(num) = p.number(rng, 6, pi) else { continue };
            if k % 20 == 0 {
                // Special retirees keep their society's number under law code 63.
                let special = with_check_digit(&format!("63{}", &num[2..7]));
                let i = p.push(rng, special, format!("{name}（特例退職）"), Cat::SpecialRetiree);
                p.by_cat[Cat::SpecialRetiree as usize].push(i);
            }
            let i = p.push(rng, num, name, Cat::Society);
            p.by_cat[Cat::Society as usize].push(i);
        }
        for m in MINISTRIES {
            let i = p.add(rng, 31, 12, format!("{m}共済組合"), Cat::Mutual);
            p.by_cat[Cat::Mutual as usize].push(i);
        }
        let i = p.add(rng, 2, 12, "全国健康保険協会船員保険部".into(), Cat::Seamen);
        p.by_cat[Cat::Seamen as usize].push(i);
        for f in ["陸上自衛隊", "海上自衛隊", "航空自衛隊"] {
            let i = p.add(rng, 7, 12, format!("防衛省{f}"), Cat::Sdf);
            p.by_cat[Cat::Sdf as usize].push(i);
        }
        // NHI retirees (law code 67) keep their municipality's number.
        for _ in 0..40 {
            let nhi = &p.insurers[p.munis[rng.gen_range(0..p.munis.len())].nhi];
            let (number, name) = (with_check_digit(&format!("67{}", &nhi.number[..5])), format!("{}（退職者医療）", nhi.name));
            if p.by_cat[Cat::NhiRetiree as usize].iter().all(|&i| p.insurers[i].number != number) {
                let i = p.push(rng, number, name, Cat::NhiRetiree);
                p.by_cat[Cat::NhiRetiree as usize].push(i);
            }
        }
        p.build_institutions(rng);
        p
    }

    /// The next 3-digit number of a law code (0 for NHI) in a prefecture, with its check digit.
    /// Numbers advance with small gaps, so they are unique by construction.
    fn number(&mut self, rng: &mut ChaCha8Rng, law: usize, pref: usize) -> Option<String> {
        let n = &mut self.last[law][pref];
        *n += rng.gen_range(1..=2);
        let body = if law == 0 { format!("{:02}{n:03}", pref + 1) } else { format!("{law:02}{:02}{n:03}", pref + 1) };
        (*n < 1000).then(|| with_check_digit(&body))
    }

    fn push(&mut self, rng: &mut ChaCha8Rng, number: String, name: String, cat: Cat) -> usize {
        let off = rng.gen_range(0..100_000_000);
        self.insurers.push(Insurer { number, name, cat, next: 0, off });
        self.insurers.len() - 1
    }

    fn add(&mut self, rng: &mut ChaCha8Rng, law: usize, pref: usize, name: String, cat: Cat) -> usize {
        let number = self.number(rng, law, pref).expect("fewer than 300 insurers per law code and prefecture");
        self.push(rng, number, name, cat)
    }

    /// About 4,000 institutions, at least one of each table per prefecture, else by population.
    fn build_institutions(&mut self, rng: &mut ChaCha8Rng) {
        let mut last = vec![[0u32; 3]; 47];
        for l in last.iter_mut().flatten() {
            *l = rng.gen_range(0..100_000);
        }
        self.inst_by = (0..47).map(|_| [vec![], vec![], vec![]]).collect();
        for k in 0..4000 {
            let (pref, table) = if k < 47 * 3 {
                (k / 3, k % 3)
            } else {
                (pick_cum(rng, &self.pref_cum), one_of(rng, &[0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2]))
            };
            last[pref][table] += rng.gen_range(1..=97);
            let code = with_check_digit(&format!("{:02}{}{:06}", pref + 1, [1, 3, 4][table], last[pref][table]));
            let (lo, hi) = self.muni_range[pref];
            let town = &self.munis[rng.gen_range(lo..hi)].name;
            let fam = one_of(rng, FAMILY).0;
            let name = one_of(rng, INST_NAMES[table]).replace("{f}", fam).replace("{t}", town);
            self.inst_by[pref][table].push(self.insts.len());
            self.insts.push(Inst { code, name });
        }
    }
}

// ---------------------------------------------------------------- output

/// The fields of one row, kept in one reusable buffer.
#[derive(Default)]
struct Row {
    buf: String,
    ends: Vec<usize>,
}

impl Row {
    fn f(&mut self, v: impl fmt::Display) -> &mut Self {
        let _ = write!(self.buf, "{v}"); // writing to a String cannot fail
        self.ends.push(self.buf.len());
        self
    }
    fn d(&mut self, d: NaiveDate) -> &mut Self {
        self.f(ymd(d))
    }
    fn opt(&mut self, d: Option<NaiveDate>) -> &mut Self {
        match d {
            Some(d) => self.d(d),
            None => self.f(""),
        }
    }
    fn fields(&self) -> impl Iterator<Item = &str> {
        let mut s = 0;
        self.ends.iter().map(move |&e| {
            let f = &self.buf[s..e];
            s = e;
            f
        })
    }
}

struct Out {
    files: Vec<(PathBuf, csv::Writer<BufWriter<File>>)>,
    rows: [u64; 11],
    row: Row,
}

impl Out {
    fn create(dir: &Path) -> Result<Out, GenError> {
        fs::create_dir_all(dir).map_err(|source| GenError::Io { path: dir.to_path_buf(), source })?;
        let mut files = Vec::new();
        for (name, header) in FILES {
            let path = dir.join(name);
            let file = File::create(&path).map_err(|source| GenError::Io { path: path.clone(), source })?;
            let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 16, file));
            w.write_record(header).map_err(|source| GenError::Csv { path: path.clone(), source })?;
            files.push((path, w));
        }
        Ok(Out { files, rows: [0; 11], row: Row::default() })
    }

    /// Write the row built so far to `file`, and clear it.
    fn emit(&mut self, file: usize) -> Result<(), GenError> {
        debug_assert_eq!(self.row.ends.len(), FILES[file].1.len(), "{}", FILES[file].0);
        let (path, w) = &mut self.files[file];
        w.write_record(self.row.fields()).map_err(|source| GenError::Csv { path: path.clone(), source })?;
        self.rows[file] += 1;
        self.row.buf.clear();
        self.row.ends.clear();
        Ok(())
    }

    fn finish(self) -> Result<[u64; 11], GenError> {
        for (path, mut w) in self.files {
            w.flush().map_err(|source| GenError::Io { path, source })?;
        }
        Ok(self.rows)
    }
}

// ---------------------------------------------------------------- dates and numbers

fn date_of(n: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt((n / 10000) as i32, n / 100 % 100, n % 100)
}

fn ymd(d: NaiveDate) -> u32 {
    d.year() as u32 * 10000 + d.month() * 100 + d.day()
}

fn timestamp(d: NaiveDate, secs: i64) -> u64 {
    let s = secs as u64;
    ymd(d) as u64 * 1_000_000 + s / 3600 * 10_000 + s / 60 % 60 * 100 + s % 60
}

fn days(d: NaiveDate, n: i64) -> NaiveDate {
    d + Duration::days(n)
}

/// The same day `n` years later; 29 February becomes the 28th.
fn add_years(d: NaiveDate, n: i32) -> NaiveDate {
    let y = d.year() + n;
    NaiveDate::from_ymd_opt(y, d.month(), d.day()).or_else(|| NaiveDate::from_ymd_opt(y, 2, 28)).expect("28 February exists")
}

/// A uniform date in `lo..=hi` (`lo` when the range is empty).
fn rand_date(rng: &mut ChaCha8Rng, lo: NaiveDate, hi: NaiveDate) -> NaiveDate {
    let span = (hi - lo).num_days();
    if span <= 0 {
        lo
    } else {
        days(lo, rng.gen_range(0..=span))
    }
}

fn age_at(birth: NaiveDate, at: NaiveDate) -> i32 {
    let a = at.year() - birth.year();
    if (at.month(), at.day()) < (birth.month(), birth.day()) {
        a - 1
    } else {
        a
    }
}

/// First of April of the school year a child enters elementary school: until then, pre-school.
fn school_entry(birth: NaiveDate) -> NaiveDate {
    let y = birth.year() + if (birth.month(), birth.day()) >= (4, 2) { 7 } else { 6 };
    NaiveDate::from_ymd_opt(y, 4, 1).expect("1 April exists")
}

/// Elderly recipients start the month after their 70th birthday (the month itself if born on the 1st).
fn elderly_start(birth: NaiveDate) -> NaiveDate {
    let b = add_years(birth, 70);
    if b.day() == 1 {
        b
    } else {
        month_bounds(b, -1).0
    }
}

/// Late-stage elderly insurance starts at 75, and did not exist before April 2008.
fn late_start(birth: NaiveDate) -> NaiveDate {
    add_years(birth, 75).max(NaiveDate::from_ymd_opt(2008, 4, 1).expect("a valid date"))
}

fn next_jul31(d: NaiveDate) -> NaiveDate {
    let y = if d.month() <= 7 { d.year() } else { d.year() + 1 };
    NaiveDate::from_ymd_opt(y, 7, 31).expect("31 July exists")
}

/// A user certificate expires on the holder's fifth birthday after issue.
fn cert_expiry(birth: NaiveDate, issued: NaiveDate) -> NaiveDate {
    let y = issued.year() + if (birth.month(), birth.day()) > (issued.month(), issued.day()) { 4 } else { 5 };
    NaiveDate::from_ymd_opt(y, birth.month(), birth.day()).unwrap_or_else(|| NaiveDate::from_ymd_opt(y, 2, 28).expect("28 February exists"))
}

/// First and last day of the month `back` months before `d`'s month (negative: after).
fn month_bounds(d: NaiveDate, back: i32) -> (NaiveDate, NaiveDate) {
    let idx = d.year() * 12 + d.month0() as i32 - back;
    let first = |i: i32| NaiveDate::from_ymd_opt(i.div_euclid(12), i.rem_euclid(12) as u32 + 1, 1).expect("the 1st exists");
    (first(idx), days(first(idx + 1), -1))
}

/// `n`-th value of a bijection on `0..modulus` (the stride is coprime with powers of ten),
/// so counters give distinct, random-looking numbers.
fn scramble(off: u64, n: u64, modulus: u64) -> u64 {
    ((off as u128 + n as u128 * 3_141_592_653_589_793u128) % modulus as u128) as u64
}

/// The splitmix64 finaliser: a bijection on u64, so distinct counters give distinct serials.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Running sums of weights, for [`pick_cum`].
fn cumulative(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    weights
        .scan(0, |s, w| {
            *s += w;
            Some(*s)
        })
        .collect()
}

/// An index drawn with probability proportional to its weight, from running sums.
fn pick_cum(rng: &mut ChaCha8Rng, cum: &[u32]) -> usize {
    let x = rng.gen_range(0..*cum.last().unwrap_or(&1));
    cum.partition_point(|&c| c <= x).min(cum.len() - 1)
}

/// An element drawn with probability proportional to its weight.
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
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
fn one_of<T: Copy>(rng: &mut ChaCha8Rng, v: &[T]) -> T {
    v[rng.gen_range(0..v.len())]
}

fn either<'a>(rng: &mut ChaCha8Rng, p: f64, a: &'a str, b: &'a str) -> &'a str {
    if rng.gen_bool(p) {
        a
    } else {
        b
    }
}

fn short_pref(name: &str) -> &str {
    match name.strip_suffix(['都', '府', '県']) {
        Some(s) => s,
        None => name,
    }
}

// ---------------------------------------------------------------- tables

/// Prefecture, population (10,000s), capital, first three postal digits.
#[rustfmt::skip]
const PREFS: &str = "北海道,514,札幌市,060 青森県,120,青森市,030 岩手県,116,盛岡市,020 宮城県,226,仙台市,980 \
    秋田県,92,秋田市,010 山形県,102,山形市,990 福島県,176,福島市,960 茨城県,282,水戸市,310 栃木県,190,宇都宮市,320 \
    群馬県,190,前橋市,371 埼玉県,733,さいたま市,330 千葉県,627,千葉市,260 東京都,1404,千代田区,100 \
    神奈川県,923,横浜市,231 新潟県,213,新潟市,950 富山県,101,富山市,930 石川県,111,金沢市,920 福井県,75,福井市,910 \
    山梨県,80,甲府市,400 長野県,200,長野市,380 岐阜県,194,岐阜市,500 静岡県,355,静岡市,420 愛知県,747,名古屋市,460 \
    三重県,173,津市,514 滋賀県,141,大津市,520 京都府,255,京都市,604 大阪府,876,大阪市,530 兵庫県,535,神戸市,650 \
    奈良県,130,奈良市,630 和歌山県,90,和歌山市,640 鳥取県,54,鳥取市,680 島根県,65,松江市,690 岡山県,185,岡山市,700 \
    広島県,274,広島市,730 山口県,131,山口市,753 徳島県,70,徳島市,770 香川県,93,高松市,760 愛媛県,130,松山市,790 \
    高知県,67,高知市,780 福岡県,510,福岡市,810 佐賀県,80,佐賀市,840 長崎県,128,長崎市,850 熊本県,171,熊本市,860 \
    大分県,111,大分市,870 宮崎県,105,宮崎市,880 鹿児島県,156,鹿児島市,890 沖縄県,147,那覇市,900";
#[rustfmt::skip]
const MUNI_A: [&str; 20] = ["東", "西", "南", "北", "上", "下", "大", "小", "高", "新", "若", "桜", "緑", "青", "白", "石", "金", "中", "長", "朝"];
#[rustfmt::skip]
const MUNI_B: [&str; 15] = ["田", "野", "山", "川", "原", "沢", "浜", "崎", "島", "井", "岡", "森", "宮", "里", "谷"];
#[rustfmt::skip]
const TOWNS: [&str; 20] = ["本町", "中央", "栄町", "緑町", "旭町", "寿町", "幸町", "東町", "西町", "南町", "北町", "新町", "若葉", "桜台", "宮前", "大手町", "元町", "港町", "錦町", "松が丘"];
#[rustfmt::skip]
const COMPANY_A: [&str; 20] = ["東都", "日本", "大和", "関東", "中部", "関西", "九州", "北海", "太平洋", "富士", "三和", "昭和", "平成", "東邦", "信越", "第一", "中央", "明治", "日東", "新日本"];
#[rustfmt::skip]
const COMPANY_B: [&str; 20] = ["電機", "製鉄", "化学", "自動車", "運輸", "銀行", "生命", "商事", "建設", "電力", "ガス", "製薬", "食品", "印刷", "通信", "百貨店", "証券", "海運", "繊維", "機械"];
#[rustfmt::skip]
const MINISTRIES: [&str; 16] = ["衆議院", "参議院", "内閣", "総務省", "法務省", "外務省", "財務省", "文部科学省", "厚生労働省", "農林水産省", "経済産業省", "国土交通省", "裁判所", "会計検査院", "防衛省", "刑務"];
#[rustfmt::skip]
const INJURIES: &[&str] = &["高血圧症", "2型糖尿病", "脂質異常症", "腰痛症", "変形性膝関節症", "急性上気道炎", "慢性胃炎", "不眠症", "気管支喘息", "うつ病", "アルツハイマー型認知症", "骨粗鬆症", "慢性腎臓病", "脳梗塞後遺症", "逆流性食道炎"];
#[rustfmt::skip]
const DENTAL_INJURIES: &[&str] = &["う蝕", "歯周炎", "歯肉炎", "歯冠破折"];
#[rustfmt::skip]
const REMARKS: &[&str] = &["通院移送費あり", "入院中", "精神科通院", "長期入院", "要確認"];
#[rustfmt::skip]
const FAMILY: &[(&str, &str)] = &[
    ("佐藤", "ｻﾄｳ"), ("鈴木", "ｽｽﾞｷ"), ("高橋", "ﾀｶﾊｼ"), ("田中", "ﾀﾅｶ"), ("伊藤", "ｲﾄｳ"), ("渡辺", "ﾜﾀﾅﾍﾞ"), ("山本", "ﾔﾏﾓﾄ"),
    ("中村", "ﾅｶﾑﾗ"), ("小林", "ｺﾊﾞﾔｼ"), ("加藤", "ｶﾄｳ"), ("吉田", "ﾖｼﾀﾞ"), ("山田", "ﾔﾏﾀﾞ"), ("佐々木", "ｻｻｷ"), ("山口", "ﾔﾏｸﾞﾁ"),
    ("松本", "ﾏﾂﾓﾄ"), ("井上", "ｲﾉｳｴ"), ("木村", "ｷﾑﾗ"), ("林", "ﾊﾔｼ"), ("斎藤", "ｻｲﾄｳ"), ("清水", "ｼﾐｽﾞ"), ("山崎", "ﾔﾏｻﾞｷ"),
    ("森", "ﾓﾘ"), ("池田", "ｲｹﾀﾞ"), ("橋本", "ﾊｼﾓﾄ"), ("阿部", "ｱﾍﾞ"), ("石川", "ｲｼｶﾜ"), ("山下", "ﾔﾏｼﾀ"), ("中島", "ﾅｶｼﾞﾏ"),
    ("石井", "ｲｼｲ"), ("小川", "ｵｶﾞﾜ"), ("前田", "ﾏｴﾀﾞ"), ("岡田", "ｵｶﾀﾞ"), ("長谷川", "ﾊｾｶﾞﾜ"), ("藤田", "ﾌｼﾞﾀ"), ("後藤", "ｺﾞﾄｳ"),
    ("近藤", "ｺﾝﾄﾞｳ"), ("村上", "ﾑﾗｶﾐ"), ("遠藤", "ｴﾝﾄﾞｳ"), ("青木", "ｱｵｷ"), ("坂本", "ｻｶﾓﾄ"), ("福田", "ﾌｸﾀﾞ"), ("太田", "ｵｵﾀ"),
    ("西村", "ﾆｼﾑﾗ"), ("藤井", "ﾌｼﾞｲ"), ("金子", "ｶﾈｺ"), ("岡本", "ｵｶﾓﾄ"), ("藤原", "ﾌｼﾞﾜﾗ"), ("中野", "ﾅｶﾉ"), ("三浦", "ﾐｳﾗ"),
    ("原田", "ﾊﾗﾀﾞ"), ("中川", "ﾅｶｶﾞﾜ"), ("松田", "ﾏﾂﾀﾞ"), ("竹内", "ﾀｹｳﾁ"), ("小野", "ｵﾉ"), ("田村", "ﾀﾑﾗ"), ("中山", "ﾅｶﾔﾏ"),
    ("和田", "ﾜﾀﾞ"), ("石田", "ｲｼﾀﾞ"), ("森田", "ﾓﾘﾀ"), ("上田", "ｳｴﾀﾞ"), ("原", "ﾊﾗ"), ("柴田", "ｼﾊﾞﾀ"), ("酒井", "ｻｶｲ"),
    ("工藤", "ｸﾄﾞｳ"), ("横山", "ﾖｺﾔﾏ"), ("宮崎", "ﾐﾔｻﾞｷ"), ("宮本", "ﾐﾔﾓﾄ"), ("内田", "ｳﾁﾀﾞ"), ("高木", "ﾀｶｷﾞ"), ("安藤", "ｱﾝﾄﾞｳ"),
    ("島田", "ｼﾏﾀﾞ"), ("谷口", "ﾀﾆｸﾞﾁ"), ("大野", "ｵｵﾉ"), ("丸山", "ﾏﾙﾔﾏ"), ("今井", "ｲﾏｲ"), ("比嘉", "ﾋｶﾞ"), ("金城", "ｷﾝｼﾞｮｳ"),
];
#[rustfmt::skip]
const MALE: &[(&str, &str)] = &[
    ("太郎", "ﾀﾛｳ"), ("翔太", "ｼｮｳﾀ"), ("大輔", "ﾀﾞｲｽｹ"), ("健太", "ｹﾝﾀ"), ("拓也", "ﾀｸﾔ"), ("直樹", "ﾅｵｷ"), ("誠", "ﾏｺﾄ"),
    ("浩", "ﾋﾛｼ"), ("隆", "ﾀｶｼ"), ("茂", "ｼｹﾞﾙ"), ("清", "ｷﾖｼ"), ("実", "ﾐﾉﾙ"), ("勇", "ｲｻﾑ"), ("修", "ｵｻﾑ"), ("和夫", "ｶｽﾞｵ"),
    ("正", "ﾀﾀﾞｼ"), ("健一", "ｹﾝｲﾁ"), ("哲也", "ﾃﾂﾔ"), ("蓮", "ﾚﾝ"), ("陽翔", "ﾊﾙﾄ"), ("悠真", "ﾕｳﾏ"), ("湊", "ﾐﾅﾄ"),
    ("大翔", "ﾋﾛﾄ"), ("颯太", "ｿｳﾀ"), ("翼", "ﾂﾊﾞｻ"), ("亮", "ﾘｮｳ"), ("剛", "ﾂﾖｼ"), ("明", "ｱｷﾗ"), ("進", "ｽｽﾑ"), ("一郎", "ｲﾁﾛｳ"),
];
#[rustfmt::skip]
const FEMALE: &[(&str, &str)] = &[
    ("花子", "ﾊﾅｺ"), ("陽子", "ﾖｳｺ"), ("恵子", "ｹｲｺ"), ("幸子", "ｻﾁｺ"), ("和子", "ｶｽﾞｺ"), ("節子", "ｾﾂｺ"), ("京子", "ｷｮｳｺ"),
    ("洋子", "ﾖｳｺ"), ("久美子", "ｸﾐｺ"), ("裕子", "ﾕｳｺ"), ("直美", "ﾅｵﾐ"), ("真由美", "ﾏﾕﾐ"), ("美穂", "ﾐﾎ"), ("愛", "ｱｲ"),
    ("彩", "ｱﾔ"), ("舞", "ﾏｲ"), ("美咲", "ﾐｻｷ"), ("さくら", "ｻｸﾗ"), ("陽菜", "ﾋﾅ"), ("結衣", "ﾕｲ"), ("葵", "ｱｵｲ"), ("凛", "ﾘﾝ"),
    ("芽依", "ﾒｲ"), ("明美", "ｱｹﾐ"), ("由美", "ﾕﾐ"), ("智子", "ﾄﾓｺ"), ("純子", "ｼﾞｭﾝｺ"), ("美香", "ﾐｶ"), ("千尋", "ﾁﾋﾛ"), ("優子", "ﾕｳｺ"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use elig_engine::ids;
    use std::collections::{HashMap, HashSet};

    const TODAY: u32 = 20261122;

    fn gen(persons: u64, seed: u64, defect_rate: f64) -> (tempfile::TempDir, GenSummary) {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenOptions { defect_rate, ..GenOptions::new(persons, seed, TODAY) };
        let summary = generate(&opts, dir.path()).unwrap();
        (dir, summary)
    }

    /// The rows of one file as column → value maps, after checking the header.
    fn read(dir: &Path, file: usize) -> Vec<HashMap<String, String>> {
        let (name, header) = FILES[file];
        let mut r = csv::Reader::from_path(dir.join(name)).unwrap();
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), header.to_vec(), "{name}");
        r.records().map(|rec| header.iter().map(|h| h.to_string()).zip(rec.unwrap().iter().map(String::from)).collect()).collect()
    }

    fn date(v: &str) -> u32 {
        ids::date("date", v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let (a, sa) = gen(2_000, 7, 0.0);
        let (b, sb) = gen(2_000, 7, 0.0);
        let (c, _) = gen(2_000, 8, 0.0);
        assert_eq!(sa, sb);
        assert_eq!(sa.persons, 2_000);
        for (name, _) in FILES {
            let bytes = |d: &tempfile::TempDir| fs::read(d.path().join(name)).unwrap();
            assert_eq!(bytes(&a), bytes(&b), "{name}");
        }
        assert_ne!(fs::read(a.path().join("persons.csv")).unwrap(), fs::read(c.path().join("persons.csv")).unwrap());
    }

    #[test]
    fn every_row_is_valid_and_every_reference_resolves() {
        check_export(20_000, 1, TODAY);
    }

    #[test]
    fn rows_stay_valid_on_a_leap_day_and_in_the_first_allowed_year() {
        check_export(3_000, 2, 20240229);
        check_export(3_000, 3, 20180101);
    }

    /// Every rule of `contract.md` section 1, and the generator's own promises, on one export.
    fn check_export(n: u64, seed: u64, today_n: u32) {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(&GenOptions::new(n, seed, today_n), dir.path()).unwrap();
        let d = dir.path();
        for (i, (name, n)) in summary.rows.iter().enumerate() {
            assert_eq!(read(d, i).len() as u64, *n, "{name}");
            assert!(*n > 0, "{name} is empty");
        }
        let persons = read(d, PERSONS);
        let pids: HashSet<_> = persons.iter().map(|p| p["person_id"].clone()).collect();
        assert_eq!(pids.len() as u64, n);
        let today = date_of(today_n).unwrap();
        for p in &persons {
            let birth = date(&p["birth_date"]);
            assert!(birth <= today_n && age_at(date_of(birth).unwrap(), today) <= 100, "{p:?}");
            assert!(["1", "2", "3"].contains(&p["sex"].as_str()));
            assert!(p["name"].contains('\u{3000}'), "{p:?}");
            assert!(p["name_kana"].chars().all(|c| c == ' ' || ('\u{FF61}'..='\u{FF9F}').contains(&c)), "{p:?}");
            let post = p["post_number"].as_bytes();
            assert!(post.len() == 8 && post[3] == b'-', "{p:?}");
        }

        let ins = read(d, INSURANCE);
        let mut qids = HashSet::new();
        let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
        type Card = (String, String, String);
        let mut cards: HashMap<Card, Vec<&HashMap<String, String>>> = HashMap::new();
        for q in &ins {
            assert!(qids.insert(q["qualification_id"].clone()), "duplicate {q:?}");
            assert!(pids.contains(&q["person_id"]), "{q:?}");
            let number = &q["insurer_number"];
            assert_eq!(&ids::insurer_number(number).unwrap(), number);
            // NHI insurers, and only they, have 6 digits.
            assert_eq!(
                number.len() == 6,
                q["insurer_name"].ends_with("国民健康保険") || q["insurer_name"].ends_with("国民健康保険組合"),
                "{q:?}"
            );
            let from = date(&q["qualification_date"]);
            if q["disqualification_date"].is_empty() {
                assert!(q["reason_of_loss"].is_empty());
            } else {
                let to = date(&q["disqualification_date"]);
                let three_years = ymd(add_years(today, -3));
                assert!(from <= to && (three_years..today_n).contains(&to), "{q:?}");
                assert!(["01", "02", "03", "99"].contains(&q["reason_of_loss"].as_str()));
            }
            let (issue, vf) = (date(&q["card_issue_date"]), date(&q["card_valid_from"]));
            assert!(issue >= from && vf >= from, "{q:?}");
            if !q["card_valid_to"].is_empty() {
                assert!(date(&q["card_valid_to"]) >= vf, "{q:?}");
            }
            assert!(["01", "02", "03", "05", "06", "07"].contains(&q["card_classification"].as_str()));
            assert!(["010", "020", "030"].contains(&q["contribution_ratio"].as_str()));
            assert!(q["preschool"] != "1" || q["contribution_ratio"] == "020", "{q:?}");
            let symbol = ids::card_symbol(&q["card_symbol"]).unwrap();
            let key = ids::insurance_key(number, &symbol, &q["card_number"], &q["branch_number"]);
            keys.entry(key).or_default().insert(q["person_id"].clone());
            cards.entry((number.clone(), symbol, q["card_number"].clone())).or_default().push(q);
        }
        assert!(keys.values().all(|p| p.len() == 1), "no key is shared by two persons without defects");
        // Households: one card, distinct branches, the holder's name; dependants only under employee insurance.
        let mut families = 0;
        for rows in cards.values() {
            let branches: HashSet<_> = rows.iter().map(|q| q["branch_number"].as_str()).collect();
            assert_eq!(branches.len(), rows.len(), "{rows:?}");
            assert!(rows.iter().all(|q| q["insured_name"] == rows[0]["insured_name"]));
            for q in rows {
                let municipal = q["insurer_number"].len() == 6 || q["insurer_number"].starts_with("39");
                let dependant = q["personal_family"] == "2";
                assert_eq!(dependant, !municipal && q["branch_number"] != "01", "{q:?}");
            }
            families += (rows.len() > 1) as usize;
        }
        assert!(families as u64 > n / 20, "{families} households");

        for file in [ELDERLY, LIMIT, DISEASE] {
            for r in read(d, file) {
                assert!(qids.contains(&r["qualification_id"]), "{r:?}");
                assert!(date(&r["valid_from"]) <= r.get("valid_to").filter(|v| !v.is_empty()).map_or(u32::MAX, |v| date(v)), "{r:?}");
            }
        }

        let assist = read(d, ASSISTANCE);
        let mut aids = HashSet::new();
        let mut recipients = HashSet::new();
        for a in &assist {
            assert!(aids.insert(a["assistance_id"].clone()));
            assert!(pids.contains(&a["person_id"]));
            assert!(ids::payer_number(&a["payer_number"]).is_ok() && a["payer_number"].starts_with("12"), "{a:?}");
            assert!(ids::recipient_number(&a["recipient_number"]).is_ok(), "{a:?}");
            assert!(recipients.insert((a["payer_number"].clone(), a["recipient_number"].clone())), "{a:?}");
            assert!(a["welfare_office"].ends_with("福祉事務所"));
            date(&a["start_date"]);
        }
        let mut tids = HashSet::new();
        for t in read(d, TICKETS) {
            assert!(tids.insert(t["ticket_id"].clone()));
            assert!(aids.contains(&t["assistance_id"]), "{t:?}");
            let code = ids::institution_code(&t["institution_code"]).unwrap();
            let month = ids::month("m", &t["treatment_month"]).unwrap();
            let (vf, vt) = (date(&t["valid_from"]), date(&t["valid_to"]));
            assert!(vf <= vt && vf / 100 == month && vt / 100 == month, "{t:?}");
            let first = month_bounds(today, 2).0;
            assert!((ymd(first) / 100..=today_n / 100).contains(&month), "{t:?}");
            match t["ticket_type"].as_str() {
                "01" => assert!(
                    matches!((code.as_bytes()[2], t["treatment_type"].as_str()), (b'1', "01" | "02" | "05") | (b'3', "03")),
                    "{t:?}"
                ),
                "02" => {
                    assert!(code.as_bytes()[2] == b'4' && t["treatment_type"] == "04", "{t:?}");
                    ids::institution_code(&t["prescriber_code"]).unwrap();
                }
                other => panic!("ticket type {other}"),
            }
        }

        let certs = read(d, CERTS);
        let (mut serials, mut processing) = (HashMap::new(), HashSet::new());
        for c in &certs {
            let s = &c["serial_number"];
            assert!(s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)), "{c:?}");
            assert!(serials.insert(s.clone(), date(&c["valid_from"])).is_none(), "{c:?}");
            let p = &c["processing_number"];
            assert!(p.len() == 16 && p.bytes().all(|b| b.is_ascii_digit()) && processing.insert(p.clone()), "{c:?}");
            assert!(pids.contains(&c["person_id"]));
            assert!(date(&c["valid_from"]) <= date(&c["valid_to"]));
        }
        for r in read(d, REVOKED) {
            let at = ids::timestamp("t", &r["revoked_at"]).unwrap();
            assert!(at / 1_000_000 > u64::from(serials[&r["serial_number"]]), "{r:?}");
        }
        let mut refs = HashSet::new();
        for r in read(d, REFERENCES) {
            ids::institution_code(&r["institution_code"]).unwrap();
            assert!(pids.contains(&r["person_id"]) && refs.insert((r["institution_code"].clone(), r["person_id"].clone())));
            assert!(r["reference_number"].len() <= 50);
        }
        let mut consents = HashSet::new();
        for c in read(d, CONSENTS) {
            ids::institution_code(&c["institution_code"]).unwrap();
            assert!(pids.contains(&c["person_id"]));
            assert!(consents.insert((c["institution_code"].clone(), c["person_id"].clone(), c["kind"].clone())), "{c:?}");
            let at = ids::timestamp("t", &c["consented_at"]).unwrap();
            assert!((u64::from(ymd(days(today, -1)))..=u64::from(today_n)).contains(&(at / 1_000_000)), "{c:?}");
            if !c["expires_at"].is_empty() {
                let exp = ids::timestamp("t", &c["expires_at"]).unwrap();
                assert_eq!(exp % 1_000_000, at % 1_000_000);
            }
        }
    }

    #[test]
    fn proportions_follow_the_national_mix() {
        let (dir, _) = gen(20_000, 3, 0.0);
        let d = dir.path();
        let persons = read(d, PERSONS).len() as f64;
        let share = |n: usize| n as f64 / persons;
        let assisted: HashSet<_> = read(d, ASSISTANCE).into_iter().map(|a| a["person_id"].clone()).collect();
        assert!((0.008..0.025).contains(&share(assisted.len())), "assistance {}", share(assisted.len()));
        let holders: HashSet<_> = read(d, CERTS).into_iter().map(|c| c["person_id"].clone()).collect();
        assert!((0.74..0.84).contains(&share(holders.len())), "certificates {}", share(holders.len()));

        let current: Vec<_> = read(d, INSURANCE).into_iter().filter(|q| q["disqualification_date"].is_empty()).collect();
        let law = |q: &HashMap<String, String>| {
            if q["insurer_number"].len() == 6 {
                "nhi".to_string()
            } else {
                q["insurer_number"][..2].to_string()
            }
        };
        let mut by_law: HashMap<String, usize> = HashMap::new();
        for q in &current {
            *by_law.entry(law(q)).or_default() += 1;
        }
        let of = |codes: &[&str]| codes.iter().map(|c| by_law.get(*c).copied().unwrap_or(0)).sum::<usize>() as f64 / current.len() as f64;
        eprintln!("{by_law:?}");
        assert!((0.25..0.36).contains(&of(&["01"])), "01 {}", of(&["01"]));
        assert!((0.17..0.27).contains(&of(&["06"])), "06 {}", of(&["06"]));
        assert!((0.15..0.25).contains(&of(&["nhi"])), "nhi {}", of(&["nhi"]));
        assert!((0.12..0.19).contains(&of(&["39"])), "39 {}", of(&["39"]));
        assert!((0.04..0.10).contains(&of(&["31", "32", "33", "34"])), "mutual {}", of(&["31", "32", "33", "34"]));
        assert!(of(&["02", "07", "63", "67"]) > 0.0);

        let today = date_of(TODAY).unwrap();
        let ages: Vec<i32> = read(d, PERSONS).iter().map(|p| age_at(date_of(date(&p["birth_date"])).unwrap(), today)).collect();
        let aged = |lo: i32, hi: i32| share(ages.iter().filter(|a| (lo..=hi).contains(*a)).count());
        eprintln!("0-14 {:.3} 15-64 {:.3} 65-74 {:.3} 75+ {:.3}", aged(0, 14), aged(15, 64), aged(65, 74), aged(75, 200));
        assert!((0.07..0.16).contains(&aged(0, 14)) && (0.13..0.19).contains(&aged(75, 200)));
        let elderly = read(d, ELDERLY).len() as f64 / ages.iter().filter(|a| (70..=74).contains(*a)).count() as f64;
        assert!(elderly > 0.8, "elderly certificates for {elderly} of ages 70-74");
        for (file, lo, hi) in [(LIMIT, 0.02, 0.04), (REFERENCES, 0.04, 0.07)] {
            let n = read(d, file).len();
            assert!((lo..hi).contains(&share(n)), "{} {}", FILES[file].0, share(n));
        }
        let lost: HashMap<String, usize> = read(d, INSURANCE).iter().fold(HashMap::new(), |mut m, q| {
            *m.entry(q["reason_of_loss"].clone()).or_default() += 1;
            m
        });
        eprintln!("losses {lost:?}");
        assert!(
            lost.get("03").copied().unwrap_or(0) > 200
                && lost.get("02").copied().unwrap_or(0) > 10
                && lost.get("01").copied().unwrap_or(0) > 5
        );
    }

    #[test]
    fn defects_share_keys_or_identities() {
        let (dir, summary) = gen(10_000, 5, 0.01);
        assert_eq!(summary.persons, 10_000);
        assert!((50..200).contains(&summary.defects), "{}", summary.defects);
        let d = dir.path();
        let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
        for q in read(d, INSURANCE) {
            let key = ids::insurance_key(
                &q["insurer_number"],
                &ids::card_symbol(&q["card_symbol"]).unwrap(),
                &q["card_number"],
                &q["branch_number"],
            );
            keys.entry(key).or_default().insert(q["person_id"].clone());
        }
        let shared = keys.values().filter(|p| p.len() > 1).count();
        let mut ids_seen: HashMap<String, usize> = HashMap::new();
        for p in read(d, PERSONS) {
            let identity = ["name", "name_kana", "birth_date", "sex", "address"].map(|c| p[c].as_str()).join("|");
            *ids_seen.entry(identity).or_default() += 1;
        }
        let twins = ids_seen.values().filter(|n| **n > 1).count();
        assert!(shared > 10 && twins > 10 && (shared + twins) as u64 <= summary.defects, "{shared} keys, {twins} identities");
    }

    #[test]
    fn pools_have_unique_valid_numbers() {
        let p = Pools::build(&mut ChaCha8Rng::seed_from_u64(9));
        assert!((2_000..5_000).contains(&p.insurers.len()), "{} insurers", p.insurers.len());
        let numbers: HashSet<_> = p.insurers.iter().map(|i| i.number.as_str()).collect();
        assert_eq!(numbers.len(), p.insurers.len());
        for i in &p.insurers {
            assert_eq!(ids::insurer_number(&i.number).unwrap(), i.number);
            assert_eq!(i.number.len() == 6, i.cat == Cat::Nhi, "{} {}", i.number, i.name);
        }
        let codes: HashSet<_> = p.insts.iter().map(|i| ids::institution_code(&i.code).unwrap()).collect();
        assert_eq!(codes.len(), p.insts.len());
        let payers: HashSet<_> = p.offices.iter().map(|o| ids::payer_number(&o.payer).unwrap()).collect();
        assert_eq!(payers.len(), p.offices.len());
        assert!(p.inst_by.iter().all(|t| t.iter().all(|v| !v.is_empty())));
        let societies = &p.by_cat[Cat::Society as usize];
        let tokyo = societies.iter().filter(|&&i| p.insurers[i].number.starts_with("0613")).count();
        assert!(societies.len() > 1_000 && tokyo * 3 > societies.len(), "{tokyo} of {} societies in Tokyo", societies.len());
    }

    #[test]
    fn bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(generate(&GenOptions::new(1, 1, 20260230), dir.path()), Err(GenError::InvalidToday(20260230))));
        let opts = GenOptions { defect_rate: 1.5, ..GenOptions::new(1, 1, TODAY) };
        assert!(matches!(generate(&opts, dir.path()), Err(GenError::InvalidDefectRate(_))));
        let (_, s) = gen(0, 1, 0.0);
        assert_eq!(s.persons, 0);
    }

    #[test]
    fn helpers_keep_calendar_rules() {
        let d = |n| date_of(n).unwrap();
        assert_eq!(school_entry(d(20200401)), d(20260401));
        assert_eq!(school_entry(d(20200402)), d(20270401));
        assert_eq!(elderly_start(d(19550301)), d(20250301));
        assert_eq!(elderly_start(d(19550302)), d(20250401));
        assert_eq!(cert_expiry(d(19800101), d(20210601)), d(20260101));
        assert_eq!(cert_expiry(d(19800901), d(20210601)), d(20250901));
        assert_eq!(add_years(d(20200229), 1), d(20210228));
        assert_eq!(month_bounds(d(20260115), 1), (d(20251201), d(20251231)));
        let mut seen = HashSet::new();
        assert!((0..100_000).all(|n| seen.insert(scramble(12_345, n, 1_000_000))));
        let code = pick_cum(&mut ChaCha8Rng::seed_from_u64(1), &[1, 1, 5]);
        assert_eq!(code, 2);
    }
}
