//! Public assistance: the assistance rows and their monthly medical and dispensing tickets.

use chrono::{Datelike, NaiveDate};
use elig_engine::ids::with_check_digit;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dates::month_bounds;
use super::draw::{either, one_of, scramble};
use super::error::GenError;
use super::files::{ASSISTANCE, TICKETS};
use super::names::FAMILY;
use super::person::{Home, Member};
use super::state::Gen;

pub(super) struct Assist {
    pub(super) start: NaiveDate,
    pub(super) end: Option<NaiveDate>,
    pub(super) combined: bool,
}

impl Gen {
    /// Public assistance and the monthly tickets of the last 2 or 3 months.
    pub(super) fn assistance(&mut self, pid: u64, m: &Member, home: &Home, a: &Assist) -> Result<(), GenError> {
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
}

#[rustfmt::skip]
const INJURIES: &[&str] = &["高血圧症", "2型糖尿病", "脂質異常症", "腰痛症", "変形性膝関節症", "急性上気道炎", "慢性胃炎", "不眠症", "気管支喘息", "うつ病", "アルツハイマー型認知症", "骨粗鬆症", "慢性腎臓病", "脳梗塞後遺症", "逆流性食道炎"];
#[rustfmt::skip]
const DENTAL_INJURIES: &[&str] = &["う蝕", "歯周炎", "歯肉炎", "歯冠破折"];
#[rustfmt::skip]
const REMARKS: &[&str] = &["通院移送費あり", "入院中", "精神科通院", "長期入院", "要確認"];
