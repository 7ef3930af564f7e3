//! `elig-loader lookup`: answers rendered straight from the snapshot are
//! the bytes serde writes for the wire struct (`View::answer_document`),
//! indented for one document, one line each for JSON Lines.

use std::path::{Path, PathBuf};

use crate::fixture::{CLINIC, NOW};
use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::lookup::{Clock, View};
use elig_engine::snapshot::Snapshot;
use serde_json::{json, Value};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{FORMAT_VERSION}"))
}

/// `elig-loader lookup` on `input`: (stdout, stderr).
fn offline(input: &str) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queries");
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_elig-loader"))
        .args(["lookup", "--now", &NOW.to_string(), "--snapshot"])
        .arg(golden())
        .arg("--file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A card, a ticket, a delegated fetch and a serial query of the golden
/// snapshot's persons, and a malformed one.
fn queries(snapshot: &Snapshot) -> Vec<Value> {
    let mut all = Vec::new();
    let persons = || snapshot.iter_persons().map(|(_, p)| p);
    if let Some(p) = persons().find(|p| !p.insurance.is_empty()) {
        let i = &p.insurance[0];
        all.push(json!({"MedicalInstitutionCode": CLINIC, "InsuranceCard": {"InsurerNumber": i.insurer_number.to_string(),
            "InsuredCardSymbol": i.card_symbol.as_str(), "InsuredIdentificationNumber": i.card_number.as_str(),
            "InsuredBranchNumber": i.branch_number.to_string(), "Birthdate": p.birth_date.to_native().to_string()}}));
    }
    if let Some((p, a, t)) = persons().find_map(|p| p.assistance.iter().find_map(|a| a.tickets.first().map(|t| (p, a, t)))) {
        let (inst, month) = (t.institution_code.to_string(), t.treatment_month.to_native());
        all.push(json!({"MedicalInstitutionCode": inst, "QualificationConfirmationDate": format!("{month}01"),
            "MedicalTicket": {"PayerNumber": a.payer_number.as_str(), "RecipientNumber": a.recipient_number.as_str(),
            "Birthdate": p.birth_date.to_native().to_string()}}));
        all.push(json!({"MedicalInstitutionCode": inst, "DelegatedTickets": {"MedicalTreatmentMonth": month.to_string()}}));
    }
    if let Some(c) = persons().find_map(|p| p.certificates.first()) {
        all.push(json!({"MedicalInstitutionCode": CLINIC, "MyNumberCard": {"CertificateSerialNumber": c.serial_number.to_string()}}));
    }
    all.push(json!({"MedicalInstitutionCode": CLINIC, "InsuranceCard": {"InsurerNumber": "06130489"}}));
    all
}

#[test]
fn offline_answers_are_the_structs_json_indented_or_one_a_line() {
    let snapshot = Snapshot::load(&golden()).unwrap();
    let view = View::new(&snapshot);
    let queries = queries(&snapshot);
    assert_eq!(queries.len(), 5, "every kind found in the golden snapshot");
    let answer = |q: &Value| view.answer_document(q.to_string().as_bytes(), Clock::at(NOW));
    for q in &queries {
        let (out, _) = offline(&q.to_string());
        let mut want = serde_json::to_vec_pretty(&answer(q)).unwrap();
        want.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want), "{q}");
    }
    let lines: Vec<String> = queries.iter().map(Value::to_string).collect();
    let (out, err) = offline(&format!("{}\n\n", lines.join("\n")));
    let want: Vec<u8> = queries.iter().flat_map(|q| [serde_json::to_vec(&answer(q)).unwrap(), b"\n".to_vec()].concat()).collect();
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
    assert_eq!(err.trim(), "5 queries: 4 normal, 1 error");
}
