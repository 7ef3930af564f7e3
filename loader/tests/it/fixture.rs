//! A tiny export written row by row, compiled into a snapshot in a temp dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use elig_engine::answer::Answer;
use elig_engine::lookup::{Clock, View};
use elig_engine::snapshot::Snapshot;
use elig_loader::compile::{compile, CompileError, CompileOptions, CompileSummary};

pub const CLINIC: &str = "1310000011";
pub const PHARMACY: &str = "1340000015";
pub const NOW: u64 = 20261122100000;

/// Rows by table, each row a list of (column, value).
#[derive(Default, Clone)]
pub struct Export {
    pub tables: BTreeMap<&'static str, Vec<Vec<(&'static str, String)>>>,
}

impl Export {
    pub fn row(&mut self, table: &'static str, cols: &[(&'static str, &str)]) -> &mut Self {
        self.tables.entry(table).or_default().push(cols.iter().map(|(c, v)| (*c, v.to_string())).collect());
        self
    }

    pub fn person(&mut self, id: &str, name: &str, birth: &str) -> &mut Self {
        self.row(
            "persons",
            &[
                ("person_id", id),
                ("name", name),
                ("name_kana", "ﾃｽﾄ"),
                ("sex", "1"),
                ("birth_date", birth),
                ("address", "東京都千代田区1-1"),
                ("post_number", "100-0001"),
            ],
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insurance(
        &mut self,
        qid: &str,
        pid: &str,
        insurer: &str,
        symbol: &str,
        number: &str,
        branch: &str,
        from: &str,
        lost: &str,
    ) -> &mut Self {
        let reason = if lost.is_empty() { "" } else { "03" };
        self.row(
            "insurance",
            &[
                ("qualification_id", qid),
                ("person_id", pid),
                ("insurer_number", insurer),
                ("card_symbol", symbol),
                ("card_number", number),
                ("branch_number", branch),
                ("card_classification", "01"),
                ("personal_family", "1"),
                ("insurer_name", &format!("保険者{insurer}")),
                ("qualification_date", from),
                ("disqualification_date", lost),
                ("reason_of_loss", reason),
                ("contribution_ratio", "030"),
            ],
        )
    }

    pub fn certificate(&mut self, serial: &str, processing: &str, pid: &str, from: &str, to: &str) -> &mut Self {
        self.row(
            "certificates",
            &[("serial_number", serial), ("processing_number", processing), ("person_id", pid), ("valid_from", from), ("valid_to", to)],
        )
    }

    pub fn assistance(&mut self, aid: &str, pid: &str, payer: &str, recipient: &str, start: &str, end: &str) -> &mut Self {
        self.row(
            "assistance",
            &[
                ("assistance_id", aid),
                ("person_id", pid),
                ("payer_number", payer),
                ("recipient_number", recipient),
                ("welfare_office", "千代田区福祉事務所"),
                ("start_date", start),
                ("end_date", end),
            ],
        )
    }

    pub fn ticket(&mut self, tid: &str, aid: &str, month: &str, institution: &str) -> &mut Self {
        self.row(
            "tickets",
            &[
                ("ticket_id", tid),
                ("assistance_id", aid),
                ("ticket_type", "01"),
                ("treatment_month", month),
                ("valid_from", &format!("{month}01")),
                ("valid_to", &format!("{month}28")),
                ("institution_code", institution),
                ("institution_name", "テスト医院"),
                ("treatment_type", "02"),
                ("injury_name_1", "感冒"),
            ],
        )
    }

    /// Write the CSV files; a table's header is the union of its rows' columns.
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for (table, rows) in &self.tables {
            let mut cols: Vec<&str> = Vec::new();
            for r in rows {
                for (c, _) in r {
                    if !cols.contains(c) {
                        cols.push(c);
                    }
                }
            }
            let mut w = csv::Writer::from_path(dir.join(format!("{table}.csv"))).unwrap();
            w.write_record(&cols).unwrap();
            for r in rows {
                let rec: Vec<String> =
                    cols.iter().map(|c| r.iter().find(|(k, _)| k == c).map(|(_, v)| v.clone()).unwrap_or_default()).collect();
                w.write_record(&rec).unwrap();
            }
            w.flush().unwrap();
        }
    }
}

pub struct Compiled {
    pub _dir: tempfile::TempDir,
    pub snapshot: Snapshot,
    pub summary: CompileSummary,
}

pub fn options(dir: &Path) -> CompileOptions {
    CompileOptions {
        today: Some(20261122),
        generation: Some(1),
        max_reject_ratio: 0.5,
        ..CompileOptions::new(dir.join("export"), dir.join("snap"))
    }
}

pub fn try_compile(export: &Export, tweak: impl FnOnce(&mut CompileOptions)) -> (tempfile::TempDir, Result<CompileSummary, CompileError>) {
    let dir = tempfile::tempdir().unwrap();
    export.write(&dir.path().join("export"));
    let mut opts = options(dir.path());
    tweak(&mut opts);
    let r = compile(&opts);
    (dir, r)
}

pub fn build(export: &Export) -> Compiled {
    let (dir, r) = try_compile(export, |_| {});
    let summary = r.expect("compile");
    let snapshot = Snapshot::load(&summary.out).expect("load");
    Compiled { _dir: dir, snapshot, summary }
}

impl Compiled {
    pub fn ask(&self, query: serde_json::Value) -> Answer {
        rendered_as_built(&View::new(&self.snapshot), &query)
    }

    pub fn path(&self) -> PathBuf {
        self.summary.out.clone()
    }
}

/// The answer to `query` as the wire struct, after checking that the
/// rendered answer (what eligd sends, `elig-loader lookup` prints) is its
/// serde JSON byte for byte: every test asking through here checks that.
pub fn rendered_as_built(view: &View<'_>, query: &serde_json::Value) -> Answer {
    let doc = query.to_string();
    let answer = view.answer_document(doc.as_bytes(), Clock::at(NOW));
    let mut rendered = Vec::new();
    view.render_document(doc.as_bytes(), Clock::at(NOW), &mut rendered);
    assert_eq!(String::from_utf8_lossy(&rendered), String::from_utf8_lossy(&serde_json::to_vec(&answer).unwrap()), "{doc}");
    answer
}

/// Edit a snapshot's manifest and write it back with a fresh checksum, as a
/// loader would have written it: for tests of what lies beyond the manifest's
/// own check.
pub fn reseal_manifest(dir: &Path, edit: impl FnOnce(&mut elig_engine::manifest::Manifest)) {
    let path = dir.join(elig_engine::manifest::MANIFEST_FILE);
    let mut m: elig_engine::manifest::Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(&path, m.encode()).unwrap();
}

pub fn card(insurer: &str, symbol: &str, number: &str, branch: &str, birth: &str) -> serde_json::Value {
    serde_json::json!({"MedicalInstitutionCode": CLINIC, "QualificationConfirmationDate": "20261122",
        "InsuranceCard": {"InsurerNumber": insurer, "InsuredCardSymbol": symbol, "InsuredIdentificationNumber": number,
                          "InsuredBranchNumber": branch, "Birthdate": birth}})
}

pub fn serial(s: &str, institution: &str) -> serde_json::Value {
    serde_json::json!({"MedicalInstitutionCode": institution, "QualificationConfirmationDate": "20261122",
        "MyNumberCard": {"CertificateSerialNumber": s}})
}

pub fn ticket_query(payer: &str, recipient: &str, birth: &str, institution: &str) -> serde_json::Value {
    serde_json::json!({"MedicalInstitutionCode": institution, "QualificationConfirmationDate": "20261122",
        "MedicalTicket": {"PayerNumber": payer, "RecipientNumber": recipient, "Birthdate": birth}})
}

pub fn validity(a: &Answer) -> &str {
    a.validity().unwrap_or("-")
}
