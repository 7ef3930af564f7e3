//! One household at a time: its kind of insurance, members, job changes, assistance and defects.

use chrono::NaiveDate;
use rand::Rng;

use super::assistance::Assist;
use super::cat::{Cat, CATS};
use super::dates::{add_years, age_at, days, late_start, rand_date};
use super::draw::weighted;
use super::error::GenError;
use super::insurance::{Card, Qual};
use super::names::FAMILY;
use super::person::{Home, Member};
use super::state::Gen;

impl Gen {
    /// One household: its members share an address, an insurer and (employee or NHI) a card.
    pub(super) fn household(&mut self, room: u64) -> Result<(), GenError> {
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
}
