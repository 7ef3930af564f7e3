//! Usage accounting: per institution and lookup kind, counts since the
//! server started, exported as CSV (`elig usage --export FILE`).
//!
//! My Number lookups (`certificate_serial`, `processing_number`) make a
//! certificate check that J-LIS bills per check; `certificate_checks`
//! counts them separately from the other requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::handler::Outcome;

/// Header line of the CSV export.
pub const CSV_HEADER: &str = "institution_code,lookup_kind,requests,normal,errors,certificate_checks";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    requests: u64,
    normal: u64,
    errors: u64,
    certificate_checks: u64,
}

/// One row of the usage report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub institution_code: String,
    pub lookup_kind: String,
    pub requests: u64,
    pub normal: u64,
    pub errors: u64,
    pub certificate_checks: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Counting started (server start), `YYYYMMDDHHmmss`.
    pub since: u64,
    /// When the report was made, `YYYYMMDDHHmmss`.
    pub at: u64,
    /// Sorted by institution code, then lookup kind.
    pub rows: Vec<UsageRow>,
}

/// The live counters.
#[derive(Debug)]
pub struct Usage {
    since: u64,
    /// By institution, then kind: a lookup by `&str` needs no key allocated
    /// (the institution was cloned for every query before). Hashed, not
    /// ordered: with thousands of institutions an ordered map compared a
    /// dozen codes per request; the report sorts.
    counts: Mutex<HashMap<String, BTreeMap<&'static str, Counts>, ahash::RandomState>>,
}

impl Usage {
    pub fn new(since: u64) -> Usage {
        Usage { since, counts: Mutex::new(HashMap::default()) }
    }

    /// Count one answered query.
    pub fn record(&self, o: &Outcome) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let kinds = match map.get_mut(o.institution.as_str()) {
            Some(kinds) => kinds,
            None => map.entry(o.institution.clone()).or_default(),
        };
        let c = kinds.entry(o.kind).or_default();
        c.requests += 1;
        if o.is_normal() {
            c.normal += 1;
        } else {
            c.errors += 1;
        }
        if o.certificate_check {
            c.certificate_checks += 1;
        }
    }

    pub fn report(&self, at: u64) -> UsageReport {
        let map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<UsageRow> = map
            .iter()
            .flat_map(|(inst, kinds)| kinds.iter().map(move |(kind, c)| (inst, kind, c)))
            .map(|(inst, kind, c)| UsageRow {
                institution_code: inst.clone(),
                lookup_kind: kind.to_string(),
                requests: c.requests,
                normal: c.normal,
                errors: c.errors,
                certificate_checks: c.certificate_checks,
            })
            .collect();
        drop(map);
        rows.sort_by(|a, b| (&a.institution_code, &a.lookup_kind).cmp(&(&b.institution_code, &b.lookup_kind)));
        UsageReport { since: self.since, at, rows }
    }
}

impl UsageReport {
    /// The CSV export: [`CSV_HEADER`] then one line per row. Institution
    /// codes and kinds never hold commas or quotes.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.institution_code, r.lookup_kind, r.requests, r.normal, r.errors, r.certificate_checks
            ));
        }
        out
    }

    /// The row for one institution and kind.
    pub fn row(&self, institution: &str, kind: &str) -> Option<&UsageRow> {
        self.rows.iter().find(|r| r.institution_code == institution && r.lookup_kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(inst: &str, kind: &'static str, status: &str, cert: bool) -> Outcome {
        Outcome {
            request: "lookup",
            kind,
            institution: inst.into(),
            key: None,
            generation: 1,
            delta_seq: 0,
            status: status.into(),
            validity: None,
            code: None,
            item: None,
            certificate_check: cert,
        }
    }

    #[test]
    fn counts_by_institution_and_kind_and_exports_csv() {
        let u = Usage::new(20261122000000);
        u.record(&outcome("3410712362", "certificate_serial", "1", true));
        u.record(&outcome("3410712362", "certificate_serial", "2", true));
        u.record(&outcome("3410712362", "insurance_card", "1", false));
        u.record(&outcome("1311111114", "malformed", "2", false));
        let r = u.report(20261122010000);
        assert_eq!(r.rows.len(), 3);
        let row = r.row("3410712362", "certificate_serial").unwrap();
        assert_eq!((row.requests, row.normal, row.errors, row.certificate_checks), (2, 1, 1, 2));
        assert_eq!(
            r.to_csv(),
            "institution_code,lookup_kind,requests,normal,errors,certificate_checks\n\
             1311111114,malformed,1,0,1,0\n\
             3410712362,certificate_serial,2,1,1,2\n\
             3410712362,insurance_card,1,1,0,0\n"
        );
    }
}
