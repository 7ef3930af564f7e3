//! The fixed pools drawn once per run: prefectures, municipalities, insurers, welfare offices, institutions.

use elig_engine::ids::with_check_digit;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::cat::{Cat, CATS};
use super::draw::{cumulative, one_of, pick_cum};
use super::names::{COMPANY_A, COMPANY_B, FAMILY, MINISTRIES, MUNI_A, MUNI_B, PREFS};

pub(super) struct Pref {
    pub(super) name: &'static str,
    pub(super) pop: u32,
    pub(super) capital: &'static str,
    pub(super) post: u32,
}
pub(super) struct Muni {
    pub(super) name: String,
    pub(super) nhi: usize,
    pub(super) office: usize,
}
pub(super) struct Insurer {
    pub(super) number: String,
    pub(super) name: String,
    pub(super) cat: Cat,
    pub(super) next: u64,
    pub(super) off: u64,
}
pub(super) struct Inst {
    pub(super) code: String,
    pub(super) name: String,
}
pub(super) struct Office {
    pub(super) payer: String,
    pub(super) name: String,
    pub(super) next: u64,
    pub(super) off: u64,
}

/// Everything drawn once per run: a few thousand insurers, municipalities with their NHI
/// insurer and welfare office, and a few thousand institutions.
pub(super) struct Pools {
    pub(super) prefs: Vec<Pref>,
    pub(super) pref_cum: Vec<u32>,
    pub(super) munis: Vec<Muni>,
    pub(super) muni_range: Vec<(usize, usize)>,
    pub(super) insurers: Vec<Insurer>,
    pub(super) kyokai: Vec<usize>,
    pub(super) late: Vec<usize>,
    pub(super) kumiai: Vec<Vec<usize>>,
    pub(super) by_cat: Vec<Vec<usize>>,
    pub(super) insts: Vec<Inst>,
    /// Per prefecture: medical, dental, pharmacy.
    pub(super) inst_by: Vec<[Vec<usize>; 3]>,
    pub(super) offices: Vec<Office>,
    /// The last 3-digit number used per (law code, prefecture), while building.
    last: Vec<[u32; 47]>,
}

impl Pools {
    pub(super) fn build(rng: &mut ChaCha8Rng) -> Pools {
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

/// Institution name forms by table (medical, dental, pharmacy): {f} a family name, {t} a town.
#[rustfmt::skip]
const INST_NAMES: [&[&str]; 3] = [
    &["{f}クリニック", "{f}内科医院", "{f}整形外科", "{t}中央病院", "{t}記念病院", "{f}小児科", "{f}眼科", "医療法人{f}会{t}病院"],
    &["{f}歯科医院", "{f}歯科クリニック", "{t}駅前歯科"],
    &["{f}薬局", "さくら薬局{t}店", "あおば調剤薬局", "{t}中央薬局"],
];

fn short_pref(name: &str) -> &str {
    match name.strip_suffix(['都', '府', '県']) {
        Some(s) => s,
        None => name,
    }
}
