//! Every loader rule with its message (contract.md section 1).

use crate::fixture::*;
use elig_loader::compile::CompileError;
use elig_loader::export::ExportError;

fn base() -> Export {
    let mut e = Export::default();
    e.person("P1", "山田　太郎", "19800101").insurance("Q1", "P1", "06130488", "A", "1", "01", "20200101", "");
    e
}

fn rejects(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("snap.rejects.csv")).unwrap()
}

#[test]
fn bad_rows_are_rejected_with_file_line_column_value_reason() {
    let mut e = base();
    e.person("P2", "x", "19800231"); // bad date
    e.person("P1", "dup", "19800101"); // duplicate id
    e.insurance("Q2", "P1", "06130489", "A", "2", "01", "20200101", ""); // check digit
    e.insurance("Q3", "P404", "06130488", "A", "3", "01", "20200101", ""); // no such person
    e.insurance("Q1", "P1", "06130488", "A", "4", "01", "20200101", ""); // duplicate qualification id
    e.row("elderly_certificates", &[("qualification_id", "Q404"), ("valid_from", "20200101"), ("valid_to", "20210101"), ("contribution_ratio", "020")]);
    e.assistance("A1", "P1", "12130019", "1234567", "20200101", ""); // recipient check digit
    e.row("consents", &[("institution_code", CLINIC), ("person_id", "P1"), ("kind", "pharmacy"), ("consented_at", "20261122250000")]);
    let (dir, r) = try_compile(&e, |o| o.max_reject_ratio = 0.9);
    let s = r.expect("rejects under the ratio still compile");
    assert_eq!(s.rejected, 8);
    let text = rejects(&dir);
    for expected in [
        "persons.csv,3,birth_date,19800231,must be a date YYYYMMDD",
        "persons.csv,4,person_id,P1,duplicate key: an earlier row has it",
        "insurance.csv,3,insurer_number,06130489,fails its check digit (expected 8)",
        "insurance.csv,4,person_id,P404,no such person",
        "insurance.csv,5,qualification_id,Q1,duplicate key: an earlier row has it",
        "elderly_certificates.csv,2,qualification_id,Q404,no such qualification",
        "assistance.csv,2,recipient_number,1234567,fails its check digit (expected 6)",
        "consents.csv,2,consented_at,20261122250000,must be a timestamp YYYYMMDDHHmmss",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
    // The good rows are all there.
    assert_eq!(s.manifest.persons, 1);
    assert!(s.reject_reasons.iter().any(|(r, n)| r.contains("insurer_number") && *n == 1));
}

#[test]
fn too_many_rejects_fail_and_publish_nothing() {
    let mut e = base();
    e.person("P2", "x", "bad");
    let (dir, r) = try_compile(&e, |o| o.max_reject_ratio = 0.001);
    match r {
        Err(CompileError::TooManyRejects { rejected: 1, rows: 3, .. }) => {}
        other => panic!("expected TooManyRejects, got {other:?}"),
    }
    assert!(!dir.path().join("snap").exists(), "no snapshot under the final name");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "temporary directory removed");
    assert!(rejects(&dir).contains("birth_date,bad"));
}

#[test]
fn unknown_missing_and_duplicate_columns_fail_with_the_column_named() {
    let mut e = base();
    e.row("persons", &[("person_id", "P9"), ("name", "x"), ("sex", "1"), ("birth_date", "19800101"), ("colour", "red")]);
    let (_d, r) = try_compile(&e, |_| {});
    let err = r.unwrap_err();
    assert!(matches!(&err, CompileError::Export(ExportError::UnknownColumn { column, .. }) if column == "colour"), "{err}");
    assert!(err.to_string().contains("unknown column 'colour'"));

    let mut e = Export::default();
    e.row("persons", &[("person_id", "P9"), ("name", "x"), ("sex", "1")]);
    let (_d, r) = try_compile(&e, |_| {});
    let err = r.unwrap_err();
    assert!(err.to_string().contains("required column 'birth_date' is missing"), "{err}");

    let (_d, r) = try_compile(&Export::default(), |_| {});
    assert!(r.unwrap_err().to_string().contains("persons.csv"));
}

#[test]
fn published_snapshot_is_never_overwritten() {
    let e = base();
    let (dir, r) = try_compile(&e, |_| {});
    r.unwrap();
    let again = elig_loader::compile::compile(&options(dir.path()));
    assert!(again.unwrap_err().to_string().contains("already exists"));
}

#[test]
fn shift_jis_and_gzip_exports_compile_alike() {
    let e = base();
    let plain = build(&e);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    e.write(&export);
    for entry in std::fs::read_dir(&export).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let (sjis, _, bad) = encoding_rs::SHIFT_JIS.encode(&text);
        assert!(!bad);
        let gz = std::fs::File::create(format!("{}.gz", path.display())).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &sjis).unwrap();
        enc.finish().unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    let opts = elig_loader::compile::CompileOptions { encoding: elig_loader::export::Encoding::ShiftJis, ..options(dir.path()) };
    let s = elig_loader::compile::compile(&opts).unwrap();
    let snap = elig_engine::snapshot::Snapshot::load(&s.out).unwrap();
    let a = plain.snapshot.person(0).unwrap();
    let b = snap.person(0).unwrap();
    assert_eq!(a.name, b.name);
    assert_eq!(b.name.as_str(), "山田　太郎");
    assert_eq!(a.insurance[0].insurer_name, b.insurance[0].insurer_name);
}

#[test]
fn lost_qualifications_past_retention_are_dropped() {
    let mut e = base();
    e.insurance("Q0", "P1", "01130012", "S", "1", "01", "20000101", "20100101");
    let (_d, r) = try_compile(&e, |o| o.retain_lost_days = 365);
    let s = r.unwrap();
    assert_eq!(s.dropped_by_retention, 1);
    let (_d, r) = try_compile(&e, |o| o.retain_lost_days = 365 * 30);
    assert_eq!(r.unwrap().dropped_by_retention, 0);
}

#[test]
fn identical_identities_under_two_ids_are_reported() {
    let mut e = base();
    e.person("P2", "山田　太郎", "19800101");
    let c = build(&e);
    assert!(c.summary.anomalies.iter().any(|a| a.kind == "duplicate_identity" && a.person_ids == ["P1", "P2"]), "{:?}", c.summary.anomalies);
    let report = std::fs::read_to_string(c.path().join("anomalies.csv")).unwrap();
    assert!(report.contains("duplicate_identity,P1 P2"));
}
