//! Delta batches survive crashes (issue 4): a real `eligd` takes batches
//! from `elig delta`, is killed with SIGKILL and restarted on the same
//! snapshot and log, and every acknowledged batch is there; a torn record
//! (a crash between the log write and the acknowledgement) is dropped; a
//! restart after a swap opens the snapshot swapped in.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use elig_engine::engine::Engine;
use elig_engine::lookup::insurance_in_force;
use serde_json::{json, Value};

const ELIGD: &str = env!("CARGO_BIN_EXE_eligd");
/// `elig` is the client crate's binary, built beside `eligd` by `cargo test --workspace`.
static ELIG: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
    let elig = std::path::Path::new(ELIGD).with_file_name("elig");
    assert!(elig.is_file(), "{} is missing: build it with `cargo build -p elig-client` (cargo test --workspace does)", elig.display());
    elig
});
const TODAY: u32 = 20261122;

/// A running `eligd serve`, its addresses and its start-up log (JSON lines).
struct Eligd {
    child: Child,
    addr: String,
    metrics: String,
    startup: Vec<Value>,
    _log: Receiver<Value>,
}

impl Drop for Eligd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Eligd {
    fn start(config: &Path) -> Eligd {
        let mut child = Command::new(ELIGD)
            .args(["--log-json", "serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eligd serve");
        let (tx, rx) = channel();
        let stderr = child.stderr.take().expect("piped stderr");
        // Keep draining the log so eligd never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({"fields": {"message": line}}));
                let _ = tx.send(v);
            }
        });
        let (mut addr, mut metrics, mut startup) = (None, None, Vec::new());
        while addr.is_none() || metrics.is_none() {
            let v: Value = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("eligd did not start ({e}): {startup:#?}"));
            let f = &v["fields"];
            match f["message"].as_str() {
                Some("eligd listening") => addr = f["local_addr"].as_str().map(str::to_string),
                Some(m) if m.starts_with("metrics on") => metrics = f["m"].as_str().map(str::to_string),
                _ => {}
            }
            startup.push(v);
        }
        Eligd { child, addr: addr.unwrap_or_default(), metrics: metrics.unwrap_or_default(), startup, _log: rx }
    }

    /// The fields of the start-up log line with this message.
    fn logged(&self, message: &str) -> Option<&Value> {
        self.startup.iter().map(|v| &v["fields"]).find(|f| f["message"] == message)
    }

    /// SIGKILL: no shutdown, no flush, nothing after the last acknowledgement.
    fn crash(mut self) {
        self.child.kill().expect("SIGKILL eligd");
        self.child.wait().expect("reap eligd");
    }

    /// Run `elig` in the directory that holds `certs`.
    fn elig(&self, certs: &Path, role: &str, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(&*ELIG)
            .args(args)
            .current_dir(certs.parent().expect("certs in the test directory"))
            .env("ELIG_SERVER", &self.addr)
            .env("ELIG_CA", certs.join("ca.pem"))
            .env("ELIG_CERT", certs.join(format!("{role}.pem")))
            .env("ELIG_KEY", certs.join(format!("{role}.key")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run elig");
        child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("elig output")
    }

    fn metrics(&self) -> String {
        let mut sock = TcpStream::connect(&self.metrics).expect("connect to the metrics endpoint");
        // One request: the exporter keeps a connection open unless told otherwise.
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut body = String::new();
        sock.read_to_string(&mut body).unwrap();
        body
    }
}

fn ok_json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "elig failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(3), "refusals exit 3: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The value of the metric sample `name` (with its labels, if any).
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from\n{body}"))
        .trim()
        .parse()
        .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    certs: PathBuf,
    config: PathBuf,
    base_generation: u64,
    /// (person, insurer, birth) of a person with insurance in force.
    person: (String, String, u32),
    institution: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let snapshot = elig_server::dev::demo::synthetic_snapshot(&root, 600, 5, TODAY).unwrap();
    let (base_generation, person, institution) = {
        let engine = Engine::open(&snapshot).unwrap();
        let gen = engine.pin();
        let p = gen.snapshot.iter_persons().map(|(_, p)| p).find(|p| p.insurance.iter().any(|i| insurance_in_force(i, TODAY))).unwrap();
        let i = p.insurance.iter().find(|i| insurance_in_force(i, TODAY)).unwrap();
        let person = (p.person_id.to_string(), i.insurer_number.to_string(), p.birth_date.to_native());
        (gen.id(), person, elig_server::dev::demo::examples(&gen, TODAY).institution)
    };
    let certs = root.join("certs");
    elig_server::dev::certs::DevPki::generate(&institution, &["localhost"]).unwrap().write(&certs).unwrap();
    let config = root.join("eligd.toml");
    let c = |f: &str| certs.join(f).display().to_string();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nsnapshot_dir = \"{}\"\nfixed_clock = \"{TODAY}120000\"\n\
             [tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            snapshot.display(),
            c("ca.pem"),
            c("server.pem"),
            c("server.key")
        ),
    )
    .unwrap();
    Setup { _dir: dir, root, certs, config, base_generation, person, institution }
}

impl Setup {
    /// Batch `seq` gives the person the card `D`/`90000<seq>`; written to `b<seq>.jsonl`.
    fn batch_file(&self, seq: u64) -> PathBuf {
        let (pid, insurer, _) = &self.person;
        let row = json!({"qualification_id": format!("Q-DUR{seq}"), "person_id": pid, "insurer_number": insurer, "card_symbol": "D",
            "card_number": format!("90000{seq}"), "branch_number": "01", "card_classification": "01", "personal_family": "1",
            "insurer_name": "組合", "qualification_date": "20200101"});
        let text = format!(
            "{}\n{}\n",
            json!({"seq": seq, "created": "20261122101500"}),
            json!({"op": "upsert", "table": "insurance", "row": row})
        );
        let path = self.root.join(format!("b{seq}.jsonl"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn card_query(&self, seq: u64) -> String {
        let (_, insurer, birth) = &self.person;
        format!(
            r#"{{"MedicalInstitutionCode":"{}","InsuranceCard":{{"InsurerNumber":"{insurer}","InsuredCardSymbol":"D","InsuredIdentificationNumber":"90000{seq}","InsuredBranchNumber":"01","Birthdate":"{birth}"}}}}"#,
            self.institution
        )
    }

    /// (validity, DeltaSequence, SnapshotGeneration) of the card of batch `seq`.
    fn lookup(&self, d: &Eligd, seq: u64) -> (String, String, String) {
        let a = &ok_json_lines(&d.elig(&self.certs, "central", &["lookup"], &self.card_query(seq)))[0];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (
            s(&a["MessageBody"]["QualificationValidity"]),
            s(&a["MessageHeader"]["DeltaSequence"]),
            s(&a["MessageHeader"]["SnapshotGeneration"]),
        )
    }

    fn status(&self, d: &Eligd) -> Value {
        let out = d.elig(&self.certs, "operator", &["status"], "");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn acknowledged_batches_survive_sigkill_and_a_torn_record_is_dropped() {
    let s = setup();
    let log = s.root.join("deltas.log");
    // b[seq]: batch seq's file (b[0] is unused).
    let b: Vec<PathBuf> = (0..=5).map(|seq| s.batch_file(seq)).collect();
    let gen = s.base_generation.to_string();

    // First run: three batches, and refusals that change nothing.
    let d = Eligd::start(&s.config);
    let replay = d.logged("delta log replayed").expect("the replay is logged");
    assert_eq!((replay["replayed"].as_u64(), replay["dropped_bytes"].as_u64()), (Some(0), Some(0)));
    assert_eq!(replay["delta_log"], path(&log), "the default log is beside the snapshot directory");
    let acks = ok_json_lines(&d.elig(&s.certs, "operator", &["delta", path(&b[1]), path(&b[2]), path(&b[3])], ""));
    let seqs: Vec<(u64, &str, u64)> =
        acks.iter().map(|a| (a["seq"].as_u64().unwrap(), a["status"].as_str().unwrap(), a["rows"].as_u64().unwrap())).collect();
    assert_eq!(seqs, [(1, "applied", 1), (2, "applied", 1), (3, "applied", 1)]);
    assert_eq!(acks[0]["file"], path(&b[1]));
    assert_eq!(acks[0]["generation"], s.base_generation);
    assert_eq!(s.lookup(&d, 3), ("1".into(), "3".into(), gen.clone()));

    // A gap: refused with the expected sequence; the file after it is not sent.
    let err = refused(&d.elig(&s.certs, "operator", &["delta", path(&b[5]), path(&b[4])], ""));
    assert!(
        err.contains("b5.jsonl") && err.contains("ED02") && err.contains("expected 4") && err.contains("1 later batch file not sent"),
        "{err}"
    );
    // A bad line: refused with its line number and reason.
    let bad = s.root.join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{{\"op\": \"upsert\", \"table\": \"persons\", \"row\": {{\"person_id\": 5}}}}\n",
            json!({"seq": 4, "created": "20261122101500"})
        ),
    )
    .unwrap();
    let err = refused(&d.elig(&s.certs, "operator", &["delta", path(&bad)], ""));
    assert!(err.contains("ED01") && err.contains("line 2") && err.contains("must be a string"), "{err}");
    // Not an operator.
    let err = refused(&d.elig(&s.certs, "central", &["delta", path(&b[4])], ""));
    assert!(err.contains("EP01"), "{err}");
    // A missing file: nothing is sent (the files are read first).
    let out = d.elig(&s.certs, "operator", &["delta", path(&b[4]), "missing.jsonl"], "");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jsonl") && out.stdout.is_empty());
    assert_eq!(s.lookup(&d, 4).0, "4", "batch 4 was never applied");

    let m = d.metrics();
    assert_eq!(metric(&m, "elig_delta_sequence"), 3.0);
    assert_eq!(metric(&m, "elig_overlay_changed_rows"), 3.0);
    assert_eq!(metric(&m, "elig_overlay_persons"), 1.0);
    assert_eq!(metric(&m, "elig_snapshot_generation"), s.base_generation as f64);
    assert_eq!(metric(&m, "elig_delta_batches_total{outcome=\"applied\"}"), 3.0);
    assert_eq!(metric(&m, "elig_delta_batches_total{outcome=\"refused\"}"), 3.0);
    d.crash();

    // Restart on the same snapshot and log: every acknowledged batch is there.
    let d = Eligd::start(&s.config);
    let replay = d.logged("delta log replayed").unwrap();
    assert_eq!((replay["replayed"].as_u64(), replay["delta_seq"].as_u64()), (Some(3), Some(3)));
    for seq in 1..=3 {
        assert_eq!(s.lookup(&d, seq), ("1".into(), "3".into(), gen.clone()), "batch {seq} after the restart");
    }
    let st = s.status(&d);
    assert_eq!(
        (st["delta_seq"].as_u64(), st["overlay"]["changed_rows"].as_u64(), st["generation"].as_u64()),
        (Some(3), Some(3), Some(s.base_generation))
    );
    assert_eq!(st["delta_log"], path(&log));
    assert!(st["rss_bytes"].as_u64().unwrap_or(0) > 0 && st["mapped_bytes"].as_u64().unwrap() > 0, "{st}");
    assert!(st["memory_locked"].is_boolean(), "{st}");
    assert_eq!(st["residency"], "resident", "{st}");
    // The next sequence is expected; a repeat is a duplicate.
    let acks = ok_json_lines(&d.elig(&s.certs, "operator", &["delta", path(&b[3]), path(&b[4])], ""));
    assert_eq!(
        (acks[0]["status"].as_str(), acks[1]["status"].as_str(), acks[1]["seq"].as_u64()),
        (Some("duplicate"), Some("applied"), Some(4))
    );
    d.crash();

    // A crash between the log write and the acknowledgement: batch 5's
    // record is torn (its header and half its payload reached the disk).
    let payload = std::fs::read(&b[5]).unwrap();
    let mut torn = b"ELDL".to_vec();
    torn.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    torn.extend_from_slice(&5u64.to_le_bytes());
    torn.extend_from_slice(&0x1234_5678_9abc_def0u64.to_le_bytes());
    torn.extend_from_slice(&payload[..payload.len() / 2]);
    let before = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(&torn).unwrap();
    let d = Eligd::start(&s.config);
    let replay = d.logged("delta log replayed").unwrap();
    assert_eq!((replay["replayed"].as_u64(), replay["dropped_bytes"].as_u64()), (Some(4), Some(torn.len() as u64)));
    assert!(d.startup.iter().any(|v| v["level"] == "WARN" && v["fields"]["message"].as_str().unwrap_or("").contains("torn")));
    assert_eq!(std::fs::metadata(&log).unwrap().len(), before, "the torn tail is cut off");
    assert_eq!(s.lookup(&d, 5).0, "4", "the torn batch is not visible");
    assert_eq!(s.lookup(&d, 4), ("1".into(), "4".into(), gen.clone()));
    let acks = ok_json_lines(&d.elig(&s.certs, "operator", &["delta", path(&b[5])], ""));
    assert_eq!((acks[0]["seq"].as_u64(), acks[0]["status"].as_str()), (Some(5), Some("applied")));

    // A swap, then a crash: the restart opens the snapshot swapped in, not
    // the configured one, and replays the batches onto it.
    let mut o = elig_loader::compile::CompileOptions::new(s.root.join("export"), s.root.join("snapshot-2"));
    o.generation = Some(s.base_generation + 1);
    o.today = Some(TODAY);
    let newer = elig_loader::compile::compile(&o).unwrap().out;
    // A relative path is made absolute by elig (it runs in the test directory).
    let out = d.elig(&s.certs, "operator", &["swap", "snapshot-2"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["generation"].as_u64(), report["replayed"].as_u64(), report["delta_seq"].as_u64()),
        (Some(s.base_generation + 1), Some(5), Some(5))
    );
    let err = refused(&d.elig(&s.certs, "operator", &["swap", path(&s.root.join("snapshot"))], ""));
    assert!(err.contains("ES03") && err.contains("not newer") && err.contains("keeps serving"), "{err}");
    assert_eq!(metric(&d.metrics(), "elig_snapshot_generation"), (s.base_generation + 1) as f64);
    d.crash();
    let d = Eligd::start(&s.config);
    assert!(d.logged("opening the snapshot last swapped in, newer than snapshot_dir").is_some(), "{:#?}", d.startup);
    let st = s.status(&d);
    assert_eq!(
        (st["generation"].as_u64(), st["delta_seq"].as_u64(), st["snapshot_dir"].as_str()),
        (Some(s.base_generation + 1), Some(5), Some(path(&newer)))
    );
    assert_eq!(s.lookup(&d, 5), ("1".into(), "5".into(), (s.base_generation + 1).to_string()));

    // A clean stop still exits 0.
    let mut d = d;
    assert!(Command::new("kill").args(["-TERM", &d.child.id().to_string()]).status().unwrap().success());
    assert!(d.child.wait().unwrap().success(), "eligd exits 0 after SIGTERM");
}
