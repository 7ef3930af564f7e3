//! Kinds of insurance, insurers' cards, and the insurance rows with their attached certificates.

use chrono::NaiveDate;
use rand::Rng;

use super::cat::Cat;
use super::dates::{add_years, age_at, days, elderly_start, next_jul31, rand_date, school_entry};
use super::draw::{either, one_of, scramble};
use super::error::GenError;
use super::files::{DISEASE, ELDERLY, INSURANCE, LIMIT};
use super::person::Member;
use super::state::Gen;

#[derive(Clone)]
pub(super) struct Card {
    pub(super) ins: usize,
    pub(super) symbol: String,
    pub(super) number: String,
}

/// One insurance row to write.
pub(super) struct Qual<'a> {
    pub(super) card: &'a Card,
    pub(super) branch: usize,
    pub(super) dependant: bool,
    pub(super) insured_name: &'a str,
    pub(super) from: NaiveDate,
    pub(super) loss: Option<(NaiveDate, &'static str)>,
}

impl Gen {
    pub(super) fn insurer_for(&mut self, cat: Cat, pref: usize, muni: usize) -> usize {
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
    pub(super) fn other_insurer(&mut self, ins: usize) -> usize {
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
    pub(super) fn new_card(&mut self, ins: usize) -> Card {
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

    /// One insurance row, and for a qualification in force its attached certificates.
    pub(super) fn qual(&mut self, pid: u64, m: &Member, q: Qual) -> Result<(), GenError> {
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
}
