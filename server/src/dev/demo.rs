//! `eligd demo`: a synthetic export compiled into a snapshot, a development
//! PKI, a configuration, and ready-to-paste `elig` commands whose keys come
//! from the data. The README's first command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use elig_engine::engine::Generation;
use elig_engine::lookup::{assistance_in_force, insurance_in_force};
use elig_loader::compile::{compile, CompileOptions};
use elig_loader::gen::{generate, GenOptions};

use crate::config::{Config, Limits, TlsPaths};
use crate::dev::certs::{CertError, DevPki};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("generating the synthetic export")]
    Generate(#[from] elig_loader::gen::GenError),
    #[error("compiling the snapshot")]
    Compile(#[from] elig_loader::compile::CompileError),
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Generate `persons` synthetic persons dated `today` into `dir/export`
/// and compile them into `dir/snapshot`. Returns the snapshot directory.
pub fn synthetic_snapshot(dir: &Path, persons: u64, seed: u64, today: u32) -> Result<PathBuf, DemoError> {
    let export = dir.join("export");
    let snapshot = dir.join("snapshot");
    generate(&GenOptions::new(persons, seed, today), &export)?;
    let mut opts = CompileOptions::new(&export, &snapshot);
    opts.today = Some(today);
    compile(&opts)?;
    Ok(snapshot)
}

/// Real keys from a snapshot, as query documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Examples {
    /// An institution delegated by a ticket of this month (or any).
    pub institution: String,
    /// `YYYYMM` of that ticket.
    pub month: String,
    pub card: Option<String>,
    pub my_number: Option<String>,
    pub ticket: Option<String>,
}

/// Pick keys answered "valid" on `today` from the generation.
pub fn examples(gen: &Generation, today: u32) -> Examples {
    let snap = &gen.snapshot;
    let mut ex = Examples::default();
    let mut card = None;
    let mut serial = None;
    let mut ticket = None;
    for (_, p) in snap.iter_persons() {
        let birth = p.birth_date.to_native();
        if card.is_none() {
            if let Some(i) = p.insurance.iter().find(|i| insurance_in_force(i, today)) {
                card = Some((
                    i.insurer_number.to_string(),
                    i.card_symbol.to_string(),
                    i.card_number.to_string(),
                    i.branch_number.to_string(),
                    birth,
                ));
            }
        }
        if serial.is_none() && p.insurance.iter().any(|i| insurance_in_force(i, today)) {
            serial = p
                .certificates
                .iter()
                .find(|c| c.revoked_at.to_native() == 0 && c.valid_from.to_native() <= today && today <= c.valid_to.to_native())
                .map(|c| c.serial_number.to_string());
        }
        if ticket.is_none() {
            for a in p.assistance.iter().filter(|a| assistance_in_force(a, today)) {
                if let Some(t) = a.tickets.iter().find(|t| t.treatment_month.to_native() == today / 100) {
                    ticket = Some((a.payer_number.to_string(), a.recipient_number.to_string(), birth, t.institution_code.to_string()));
                    ex.month = (today / 100).to_string();
                    break;
                }
            }
        }
        if card.is_some() && serial.is_some() && ticket.is_some() {
            break;
        }
    }
    ex.institution = ticket.as_ref().map(|t| t.3.clone()).unwrap_or_else(|| "3410712362".to_string());
    if ex.month.is_empty() {
        ex.month = (today / 100).to_string();
    }
    let inst = &ex.institution;
    ex.card = card.map(|(ins, sym, num, br, b)| {
        format!(
            r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"demo-1","InsuranceCard":{{"InsurerNumber":"{ins}","InsuredCardSymbol":"{sym}","InsuredIdentificationNumber":"{num}","InsuredBranchNumber":"{br}","Birthdate":"{b}"}}}}"#
        )
    });
    ex.my_number = serial.map(|s| format!(r#"{{"MedicalInstitutionCode":"{inst}","MyNumberCard":{{"CertificateSerialNumber":"{s}"}}}}"#));
    ex.ticket = ticket.map(|(payer, rec, b, _)| {
        format!(
            r#"{{"MedicalInstitutionCode":"{inst}","ArbitraryIdentifier":"demo-2","MedicalTicket":{{"PayerNumber":"{payer}","RecipientNumber":"{rec}","Birthdate":"{b}"}}}}"#
        )
    });
    ex
}

/// What the printed operator commands use: two delta batches (the next
/// sequence numbers of the live engine) and a newer snapshot to swap in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    pub batches: Vec<PathBuf>,
    /// `snapshot-g<generation>`: the live snapshot re-written one generation on.
    pub next_snapshot: PathBuf,
    /// A card query the first batch makes answer valid.
    pub card: String,
}

/// Write `batch-1.jsonl` and `batch-2.jsonl` (a new person with a card, then
/// a reference number for them at `institution`), numbered after the
/// engine's delta sequence, and a snapshot one generation newer than the
/// live one (the live snapshot folded with no deltas; kept if it exists).
pub fn samples(dir: &Path, gen: &Generation, today: u32, institution: &str) -> Result<Samples, DemoError> {
    let seq = gen.overlay.visible();
    let created = format!("{today}090000");
    let person = serde_json::json!({"op": "upsert", "table": "persons", "row": {
        "person_id": "DEMO-P1", "name": "差分　花子", "name_kana": "ｻﾌﾞﾝ ﾊﾅｺ", "sex": "2", "birth_date": "19900101"}});
    let card = serde_json::json!({"op": "upsert", "table": "insurance", "row": {
        "qualification_id": "DEMO-Q1", "person_id": "DEMO-P1", "insurer_number": "06130488", "card_symbol": "DEMO",
        "card_number": "1", "branch_number": "01", "card_classification": "01", "personal_family": "1",
        "insurer_name": "デモ健康保険組合", "qualification_date": "20200101"}});
    let reference = serde_json::json!({"op": "upsert", "table": "reference_numbers", "row": {
        "institution_code": institution, "person_id": "DEMO-P1", "reference_number": "DEMO-REF-1"}});
    let mut batches = Vec::new();
    for (i, lines) in [vec![person, card], vec![reference]].into_iter().enumerate() {
        let mut text = serde_json::json!({"seq": seq + 1 + i as u64, "created": created}).to_string();
        for l in lines {
            text.push('\n');
            text.push_str(&l.to_string());
        }
        text.push('\n');
        let path = dir.join(format!("batch-{}.jsonl", i + 1));
        std::fs::write(&path, text).map_err(|source| DemoError::Io { path: path.clone(), source })?;
        batches.push(path);
    }
    let generation = gen.id() + 1;
    let next_snapshot = dir.join(format!("snapshot-g{generation}"));
    if !next_snapshot.join(elig_engine::manifest::MANIFEST_FILE).is_file() {
        let empty = dir.join("no-deltas.log");
        std::fs::write(&empty, b"").map_err(|source| DemoError::Io { path: empty.clone(), source })?;
        elig_loader::fold::fold(&elig_loader::fold::FoldOptions {
            base: gen.snapshot.dir().to_path_buf(),
            deltas: empty.clone(),
            out: next_snapshot.clone(),
            generation: Some(generation),
            today: Some(today),
            retain_lost_days: None,
            threads: elig_loader::compile::default_threads(),
        })?;
        let _ = std::fs::remove_file(&empty);
    }
    let card = format!(
        r#"{{"MedicalInstitutionCode":"{institution}","ArbitraryIdentifier":"demo-3","InsuranceCard":{{"InsurerNumber":"06130488","InsuredCardSymbol":"DEMO","InsuredIdentificationNumber":"1","InsuredBranchNumber":"01","Birthdate":"19900101"}}}}"#
    );
    Ok(Samples { batches, next_snapshot, card })
}

/// A prepared demo: snapshot, certificates and configuration in `dir`.
#[derive(Debug)]
pub struct Demo {
    pub dir: PathBuf,
    pub snapshot: PathBuf,
    pub certs: PathBuf,
    pub institution: String,
    pub config: Config,
}

/// Write the dev PKI for `institution` into `dir/certs` and build the
/// server configuration.
pub fn prepare(
    dir: &Path,
    snapshot: PathBuf,
    institution: &str,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<Demo, DemoError> {
    let certs = dir.join("certs");
    DevPki::generate(institution, &["localhost"])?.write(&certs)?;
    let config = Config {
        listen,
        snapshot_dir: snapshot.clone(),
        tls: TlsPaths { ca: certs.join("ca.pem"), cert: certs.join("server.pem"), key: certs.join("server.key") },
        metrics_listen: metrics,
        audit_log: Some(dir.join("audit.jsonl")),
        audit_key_salt: String::new(),
        delta_log: dir.join(crate::config::DEFAULT_DELTA_LOG),
        fixed_clock: None,
        worker_threads: crate::config::DEFAULT_WORKER_THREADS,
        workers: crate::quic::workers::default_workers(),
        // As `eligd demo` opens its engine (`EngineOptions::default()`).
        lock_memory: elig_engine::engine::EngineOptions::default().lock_memory,
        residency: elig_engine::engine::EngineOptions::default().residency,
        memory_limit: elig_engine::engine::EngineOptions::default().memory_limit,
        udp: crate::config::Udp::default(),
        limits: Limits::default(),
        feed: None,
    };
    let toml = format!(
        "listen = \"{}\"\nsnapshot_dir = \"{}\"\naudit_log = \"{}\"\ndelta_log = \"{}\"\n{}\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        listen,
        snapshot.display(),
        dir.join("audit.jsonl").display(),
        dir.join(crate::config::DEFAULT_DELTA_LOG).display(),
        metrics.map(|m| format!("metrics_listen = \"{m}\"")).unwrap_or_default(),
        certs.join("ca.pem").display(),
        certs.join("server.pem").display(),
        certs.join("server.key").display(),
    );
    let path = dir.join("eligd.toml");
    std::fs::write(&path, toml).map_err(|source| DemoError::Io { path, source })?;
    Ok(Demo { dir: dir.to_path_buf(), snapshot, certs, institution: institution.to_string(), config })
}

/// The text `eligd demo` prints once it serves.
pub fn instructions(
    demo: &Demo,
    ex: &Examples,
    samples: &Samples,
    server: SocketAddr,
    metrics: Option<SocketAddr>,
    persons: u64,
    elig: &str,
) -> String {
    let c = |n: &str| demo.certs.join(n).display().to_string();
    let mut s = String::new();
    s.push_str(&format!(
        "eligd demo: {persons} synthetic persons, snapshot {}, serving on {server}\n\
         Files (snapshot, certificates, eligd.toml, audit.jsonl, deltas.log) are in {}\n\n\
         In another shell, paste:\n\n",
        demo.snapshot.display(),
        demo.dir.display()
    ));
    s.push_str(&format!("alias elig='{elig}'\n"));
    s.push_str(&format!(
        "export ELIG_SERVER={server} ELIG_CA={} ELIG_CERT={} ELIG_KEY={}\n\n",
        c("ca.pem"),
        c("central.pem"),
        c("central.key")
    ));
    if let Some(q) = &ex.card {
        s.push_str(&format!("# insurance card, as the central system\necho '{q}' | elig lookup\n\n"));
    }
    if let Some(q) = &ex.my_number {
        s.push_str(&format!("# My Number card (certificate serial)\necho '{q}' | elig lookup\n\n"));
    }
    if let Some(q) = &ex.ticket {
        s.push_str(&format!("# medical ticket, as the real XmlMsg document in Shift_JIS\necho '{q}' | elig lookup --format xml --encoding shift_jis | iconv -f SHIFT_JIS -t UTF-8\n\n"));
    }
    let lines: Vec<&String> = [&ex.card, &ex.ticket].into_iter().flatten().collect();
    if !lines.is_empty() {
        let quoted: Vec<String> = lines.iter().map(|l| format!("'{l}'")).collect();
        s.push_str(&format!(
            "# bulk inquiry: JSON Lines in, one answer line per query out, in order\nprintf '%s\\n' {} '{{\"InsuranceCard\":{{}}}}' | elig bulk\n\n",
            quoted.join(" ")
        ));
    }
    s.push_str(&format!(
        "# delegated tickets of {month}, as institution {inst} itself (its certificate carries the code)\n\
         ELIG_CERT={} ELIG_KEY={} elig tickets --month {month}\n\n",
        c("institution.pem"),
        c("institution.key"),
        month = ex.month,
        inst = demo.institution
    ));
    s.push_str(&format!(
        "# operator: status and usage (CSV export)\n\
         ELIG_CERT={op} ELIG_KEY={opk} elig status\n\
         ELIG_CERT={op} ELIG_KEY={opk} elig usage --export usage.csv\n\n\
         # operator: two delta batches (JSON Lines, contract.md 2) in sequence order; the card they add\n\
         ELIG_CERT={op} ELIG_KEY={opk} elig delta {batches}\n\
         echo '{card}' | elig lookup\n\n\
         # operator: swap in the newer snapshot (generation {next_gen}); the batches carry over\n\
         ELIG_CERT={op} ELIG_KEY={opk} elig swap {next}\n\n",
        op = c("operator.pem"),
        opk = c("operator.key"),
        batches = samples.batches.iter().map(|b| b.display().to_string()).collect::<Vec<_>>().join(" "),
        card = samples.card,
        next = samples.next_snapshot.display(),
        next_gen =
            samples.next_snapshot.file_name().map(|n| n.to_string_lossy().trim_start_matches("snapshot-g").to_string()).unwrap_or_default(),
    ));
    if let Some(m) = metrics {
        s.push_str(&format!("# Prometheus metrics\ncurl -s http://{m}/metrics | grep -E '^elig_(requests|bulk|connections|snapshot)'\n\n"));
    }
    s.push_str("Stop the server with Ctrl-C (or SIGTERM): requests in flight finish first.\n");
    s
}
