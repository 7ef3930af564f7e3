//! Unit tests of the generator: determinism, the contract's rules on whole exports, proportions, defects, pools, helpers.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use elig_engine::ids;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::cat::Cat;
use super::dates::{add_years, age_at, cert_expiry, date_of, days, elderly_start, month_bounds, school_entry, ymd};
use super::draw::{pick_cum, scramble};
use super::files::{ASSISTANCE, CERTS, CONSENTS, DISEASE, ELDERLY, INSURANCE, LIMIT, PERSONS, REFERENCES, REVOKED, TICKETS};
use super::pools::Pools;
use super::{generate, GenError, GenOptions, GenSummary, FILES};

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
            "01" => {
                assert!(matches!((code.as_bytes()[2], t["treatment_type"].as_str()), (b'1', "01" | "02" | "05") | (b'3', "03")), "{t:?}")
            }
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
        lost.get("03").copied().unwrap_or(0) > 200 && lost.get("02").copied().unwrap_or(0) > 10 && lost.get("01").copied().unwrap_or(0) > 5
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
        let key =
            ids::insurance_key(&q["insurer_number"], &ids::card_symbol(&q["card_symbol"]).unwrap(), &q["card_number"], &q["branch_number"]);
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
    // Cumulative weights [1, 1, 5]: weights 1, 0, 4.
    let rng = &mut ChaCha8Rng::seed_from_u64(1);
    let mut counts = [0u32; 3];
    for _ in 0..10_000 {
        counts[pick_cum(rng, &[1, 1, 5])] += 1;
    }
    assert_eq!(counts[1], 0, "a zero weight is never drawn: {counts:?}");
    assert!((1_700..2_300).contains(&counts[0]) && (7_700..8_300).contains(&counts[2]), "about 1:4, got {counts:?}");
    assert!((0..100).all(|_| pick_cum(rng, &[0, 3, 3]) == 1));
}
