//! Usage accounting: per institution and lookup kind, counts since the
//! server started, exported as CSV (`elig usage --export FILE`).
//!
//! My Number lookups (`certificate_serial`, `processing_number`) make a
//! certificate check that J-LIS bills per check; `certificate_checks`
//! counts them separately from the other requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use elig_wire::report::{UsageReport, UsageRow};

use crate::core::{Asked, Outcome};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    requests: u64,
    normal: u64,
    errors: u64,
    certificate_checks: u64,
}

/// The live counters.
#[derive(Debug)]
pub struct Usage {
    since: u64,
    /// By institution, then kind: a lookup by `&str` needs no key allocated
    /// (the institution was cloned for every query before). Hashed, not
    /// ordered: with thousands of institutions an ordered map compared a
    /// dozen codes per request; the report sorts.
    counts: Mutex<HashMap<String, BTreeMap<Asked, Counts>, ahash::RandomState>>,
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
        let c = kinds.entry(o.asked).or_default();
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
                lookup_kind: kind.name().to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::Request;
    use elig_engine::answer::Status;
    use elig_engine::query::KeyKind;

    fn outcome(inst: &str, asked: Asked, status: Status, cert: bool) -> Outcome {
        Outcome {
            request: Request::Lookup,
            asked,
            institution: inst.into(),
            key: None,
            generation: 1,
            delta_seq: 0,
            status,
            validity: None,
            code: None,
            item: None,
            certificate_check: cert,
        }
    }

    #[test]
    fn counts_by_institution_and_kind_and_exports_csv() {
        let u = Usage::new(20261122000000);
        let serial = Asked::Key(KeyKind::CertificateSerial);
        u.record(&outcome("3410712362", serial, Status::Normal, true));
        u.record(&outcome("3410712362", serial, Status::Error, true));
        u.record(&outcome("3410712362", Asked::Key(KeyKind::InsuranceCard), Status::Normal, false));
        u.record(&outcome("1311111114", Asked::Malformed, Status::Error, false));
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
