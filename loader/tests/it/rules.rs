//! Every loader rule with its message (contract.md section 1).

use crate::fixture::*;
use elig_loader::compile::{CompileError, CompileOptions};
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
    e.row(
        "elderly_certificates",
        &[("qualification_id", "Q404"), ("valid_from", "20200101"), ("valid_to", "20210101"), ("contribution_ratio", "020")],
    );
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
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
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
    assert!(
        c.summary.anomalies.iter().any(|a| a.kind == "duplicate_identity" && a.person_ids == ["P1", "P2"]),
        "{:?}",
        c.summary.anomalies
    );
    let report = std::fs::read_to_string(c.path().join("anomalies.csv")).unwrap();
    assert!(report.contains("duplicate_identity,P1 P2"));
}

/// One bad row per remaining rule: (table, row, expected rejects line fragment).
#[test]
fn every_other_rule_rejects_with_its_reason() {
    type Case = (&'static str, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "persons",
            vec![("person_id", "P7"), ("name", "x"), ("sex", "1"), ("birth_date", "19800101"), ("post_number", "12-34")],
            "post_number,12-34,must be a postal code 123-4567",
        ),
        (
            "certificates",
            vec![
                ("serial_number", "AA"),
                ("processing_number", "1"),
                ("person_id", "P1"),
                ("valid_from", "20250101"),
                ("valid_to", "20240101"),
            ],
            "valid_to,20240101,is before valid_from 20250101",
        ),
        (
            "certificates",
            vec![
                ("serial_number", "A A"),
                ("processing_number", "1"),
                ("person_id", "P1"),
                ("valid_from", "20250101"),
                ("valid_to", "20260101"),
            ],
            "serial_number,A A,must be 1 to 64 visible ASCII characters",
        ),
        (
            "revoked_certificates",
            vec![("serial_number", "AA"), ("revoked_at", "2026")],
            "revoked_at,2026,must be a timestamp YYYYMMDDHHmmss",
        ),
        (
            "insurance",
            vec![
                ("qualification_id", "Q9"),
                ("person_id", "P1"),
                ("insurer_number", "06130488"),
                ("card_number", "9"),
                ("card_classification", "09"),
                ("personal_family", "1"),
                ("insurer_name", "x"),
                ("qualification_date", "20200101"),
            ],
            "card_classification,09,must be one of 01, 02, 03, 04, 05, 06, 07",
        ),
        (
            "insurance",
            vec![
                ("qualification_id", "Q9"),
                ("person_id", "P1"),
                ("insurer_number", "06130488"),
                ("card_number", "9"),
                ("card_classification", "01"),
                ("personal_family", "1"),
                ("insurer_name", "x"),
                ("qualification_date", "20200101"),
                ("reason_of_loss", "03"),
            ],
            "reason_of_loss,03,given without a disqualification_date",
        ),
        (
            "insurance",
            vec![
                ("qualification_id", "Q9"),
                ("person_id", "P1"),
                ("insurer_number", "06130488"),
                ("card_number", "123456789012345678901"),
                ("card_classification", "01"),
                ("personal_family", "1"),
                ("insurer_name", "x"),
                ("qualification_date", "20200101"),
            ],
            "card_number,123456789012345678901,must be 1 to 20 characters",
        ),
        (
            "elderly_certificates",
            vec![("qualification_id", "Q1"), ("valid_from", "20260101"), ("valid_to", "20270101"), ("contribution_ratio", "040")],
            "contribution_ratio,040,must be one of 010, 020, 030",
        ),
        (
            "limit_certificates",
            vec![
                ("qualification_id", "Q1"),
                ("classification", "01"),
                ("category", "C01"),
                ("valid_from", "20260101"),
                ("valid_to", "20270101"),
            ],
            "category,C01,must be one of A01",
        ),
        (
            "specific_disease_certificates",
            vec![("qualification_id", "Q1"), ("category", "4"), ("valid_from", "20260101")],
            "category,4,must be one of 1, 2, 3",
        ),
        (
            "tickets",
            vec![
                ("ticket_id", "T1"),
                ("assistance_id", "A404"),
                ("ticket_type", "01"),
                ("treatment_month", "202611"),
                ("valid_from", "20261101"),
                ("valid_to", "20261130"),
                ("institution_code", "1310000011"),
            ],
            "assistance_id,A404,no such assistance",
        ),
        (
            "tickets",
            vec![
                ("ticket_id", "T1"),
                ("assistance_id", "A404"),
                ("ticket_type", "01"),
                ("treatment_month", "202613"),
                ("valid_from", "20261101"),
                ("valid_to", "20261130"),
                ("institution_code", "1310000011"),
            ],
            "treatment_month,202613,must be a month YYYYMM",
        ),
        (
            "tickets",
            vec![
                ("ticket_id", "T1"),
                ("assistance_id", "A404"),
                ("ticket_type", "01"),
                ("treatment_month", "202611"),
                ("valid_from", "20261101"),
                ("valid_to", "20261130"),
                ("institution_code", "1320000019"),
            ],
            "institution_code,1320000019,third digit must be 1 (medical), 3 (dental) or 4 (pharmacy)",
        ),
        (
            "reference_numbers",
            vec![
                ("institution_code", "1310000011"),
                ("person_id", "P1"),
                ("reference_number", "123456789012345678901234567890123456789012345678901"),
            ],
            "longer than 50 characters",
        ),
        (
            "consents",
            vec![
                ("institution_code", "1310000011"),
                ("person_id", "P1"),
                ("kind", "pharmacy"),
                ("consented_at", "20261122100000"),
                ("expires_at", "20261121100000"),
            ],
            "expires_at,20261121100000,is before consented_at",
        ),
    ];
    for (table, row, expected) in cases {
        let mut e = base();
        e.row(table, &row);
        let (dir, r) = try_compile(&e, |o| o.max_reject_ratio = 1.0);
        let s = r.unwrap_or_else(|err| panic!("{table}: {err}"));
        assert_eq!(s.rejected, 1, "{table}: {expected}");
        // Reasons with commas are quoted in the CSV.
        let text = rejects(&dir).replace('"', "");
        assert!(text.contains(expected), "{table}: missing '{expected}' in:\n{text}");
    }
}

#[test]
fn a_leftover_half_written_temp_directory_does_not_disturb_a_compile() {
    let e = base();
    let dir = tempfile::tempdir().unwrap();
    e.write(&dir.path().join("export"));
    // A crashed compile of this same process id left its temporary
    // directory with half a shard (the one name a compile clears).
    let stale = dir.path().join(format!(".snap.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("persons-00000.rkyv"), b"half").unwrap();
    std::fs::write(stale.join("leftover.bin"), b"not of this compile").unwrap();
    let s = elig_loader::compile::compile(&options(dir.path())).unwrap();
    elig_engine::snapshot::Snapshot::load(&s.out).expect("the published snapshot verifies");
    assert!(s.out.join("persons-00000.rkyv").metadata().unwrap().len() >= 100, "a real shard, not the stale half");
    assert!(!s.out.join("leftover.bin").exists(), "the stale directory was cleared, not published along");
}

/// An export written to `dir/export`, its other files encoded by `others`,
/// `persons.csv` changed by `patch`; compiled with `encoding` (reject ratio 0.5).
fn compile_patched(
    e: &Export,
    encoding: elig_loader::export::Encoding,
    others: fn(Vec<u8>) -> Vec<u8>,
    patch: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> (tempfile::TempDir, Result<elig_loader::compile::CompileSummary, CompileError>) {
    let dir = tempfile::tempdir().unwrap();
    e.write(&dir.path().join("export"));
    for f in std::fs::read_dir(dir.path().join("export")).unwrap() {
        let f = f.unwrap().path();
        if !f.ends_with("persons.csv") {
            std::fs::write(&f, others(std::fs::read(&f).unwrap())).unwrap();
        }
    }
    let persons = dir.path().join("export/persons.csv");
    std::fs::write(&persons, patch(std::fs::read(&persons).unwrap())).unwrap();
    let opts = elig_loader::compile::CompileOptions { encoding, ..options(dir.path()) };
    let r = elig_loader::compile::compile(&opts);
    (dir, r)
}

fn replace(bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes.windows(from.len()).position(|w| w == from).expect("the text to replace");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

fn same(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

fn sjis(bytes: Vec<u8>) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(std::str::from_utf8(&bytes).unwrap()).0.into_owned()
}

#[test]
fn a_row_that_does_not_decode_is_rejected_and_the_others_compile() {
    use elig_loader::export::Encoding;
    let mut e = base();
    e.person("P2", "BADNAME", "19800101").person("P3", "佐藤　花子", "19900101");
    // UTF-8: one name with a byte that is not UTF-8.
    let (dir, r) = compile_patched(&e, Encoding::Utf8, same, |b| replace(b, b"BADNAME", b"AB\xffC"));
    let s = r.expect("one undecodable row does not fail the export");
    assert_eq!((s.rejected, s.manifest.persons), (1, 2));
    assert!(
        rejects(&dir).contains("persons.csv,3,name,,bytes that are not valid utf-8 (at byte 2 of the value); nothing of the row was read"),
        "{}",
        rejects(&dir)
    );
    // Shift_JIS: a lead byte with no valid trail byte is rejected, not compiled as U+FFFD.
    let (dir, r) = compile_patched(&e, Encoding::ShiftJis, sjis, |b| replace(sjis(b), b"BADNAME", b"AB\x81\x20C"));
    let s = r.expect("one undecodable row does not fail the export");
    assert_eq!((s.rejected, s.manifest.persons), (1, 2));
    let text = rejects(&dir);
    assert!(
        text.contains(
            "persons.csv,3,name,AB\u{fffd} C,bytes that are not valid shift_jis (at byte 2 of the value); nothing of the row was read"
        ),
        "{text}"
    );
    let snap = elig_engine::snapshot::Snapshot::load(&s.out).unwrap();
    let names: Vec<String> = (0..2).map(|i| snap.person(i).unwrap().name.to_string()).collect();
    assert!(names.contains(&"佐藤　花子".to_string()) && !names.iter().any(|n| n.contains('\u{fffd}')), "{names:?}");
}

#[test]
fn an_export_in_another_encoding_fails_naming_the_likely_one() {
    use elig_loader::export::Encoding;
    let mut e = base();
    for i in 0..5 {
        e.person(&format!("P{}", i + 2), "佐藤　花子", "19900101");
    }
    // UTF-8 given as Shift_JIS would decode, every name garbled: refused.
    let (_d, r) = compile_patched(&e, Encoding::ShiftJis, same, same);
    let err = r.unwrap_err().to_string();
    assert!(err.ends_with("persons.csv: the file is UTF-8 (its non-ASCII text decodes as UTF-8), but --encoding shift_jis would garble every name: compile with --encoding utf-8"), "{err}");
    // Shift_JIS given as UTF-8: most lines do not decode.
    let (_d, r) = compile_patched(&e, Encoding::Utf8, sjis, sjis);
    let err = r.unwrap_err().to_string();
    assert!(
        err.ends_with(
            "persons.csv: 6 of the first 7 lines are not utf-8; the file looks like shift_jis: compile with --encoding shift_jis"
        ),
        "{err}"
    );
}

#[test]
fn an_empty_file_is_reported_as_empty_and_a_bom_is_skipped() {
    let (_d, r) = compile_patched(&base(), elig_loader::export::Encoding::Utf8, same, |_| Vec::new());
    let err = r.unwrap_err().to_string();
    assert!(err.ends_with("persons.csv: the file is empty (0 bytes); an export file starts with a header row naming its columns"), "{err}");
    let (_d, r) = compile_patched(&base(), elig_loader::export::Encoding::Utf8, same, |b| [b"\xef\xbb\xbf".as_slice(), &b].concat());
    assert_eq!(r.expect("a UTF-8 BOM is no column").manifest.persons, 1);
}

/// A generated export with defects (anomalies) and rejected rows, compiled
/// with one thread and with several: the same snapshot, rejects, anomalies
/// and summary.
#[test]
fn compile_output_is_the_same_with_one_thread_and_with_several() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let opts = elig_loader::gen::GenOptions { defect_rate: 0.02, ..elig_loader::gen::GenOptions::new(3_000, 11, 20261122) };
    elig_loader::gen::generate(&opts, &export).unwrap();
    // Rows repeated at the end of two files: rejected as duplicate keys.
    for file in ["persons.csv", "insurance.csv"] {
        let path = export.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let repeated: String = text.lines().skip(1).step_by(97).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text + &repeated).unwrap();
    }
    let run = |threads: usize| {
        let out = dir.path().join(format!("snap-{threads}"));
        let s = elig_loader::compile::compile(&CompileOptions {
            today: Some(20261122),
            generation: Some(1),
            max_reject_ratio: 0.5,
            threads,
            ..CompileOptions::new(&export, &out)
        })
        .unwrap();
        let files: Vec<(String, Vec<u8>)> = s
            .manifest
            .shards
            .iter()
            .chain(s.manifest.indexes.iter().map(|(_, e)| e))
            .map(|e| e.file.clone())
            .chain(["anomalies.csv".to_string()])
            .map(|f| (f.clone(), std::fs::read(out.join(&f)).unwrap()))
            .collect();
        let rejects = std::fs::read(&s.rejects_file).unwrap();
        let anomalies: Vec<(String, Vec<String>)> = s.anomalies.iter().map(|a| (a.kind.clone(), a.person_ids.clone())).collect();
        (files, rejects, anomalies, s.rows_read, s.rejected, s.reject_reasons, s.dropped_by_retention, s.manifest.counts)
    };
    let one = run(1);
    assert!(one.4 > 0 && !one.2.is_empty(), "the export must have rejects and anomalies: {} rejected, {:?}", one.4, one.2);
    for threads in [2, 3] {
        assert!(run(threads) == one, "compile with {threads} threads differs from one thread");
    }
}
