//! The two binaries end to end: `eligd demo` serves a small data set on
//! 127.0.0.1:0, the printed `elig` commands work, and SIGTERM shuts the
//! server down cleanly. Plus `eligd certs` and configuration errors.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const ELIGD: &str = env!("CARGO_BIN_EXE_eligd");
/// `elig` is the client crate's binary, built beside `eligd` by `cargo test --workspace`.
static ELIG: std::sync::LazyLock<std::path::PathBuf> = std::sync::LazyLock::new(|| {
    let elig = std::path::Path::new(ELIGD).with_file_name("elig");
    assert!(elig.is_file(), "{} is missing: build it with `cargo build -p elig-client` (cargo test --workspace does)", elig.display());
    elig
});

struct Demo {
    child: Child,
    env: Vec<(String, String)>,
    lines: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(dir: &Path) -> Demo {
    // Its log goes to a file, as an operator's would: no colour codes there.
    let log = std::fs::File::create(dir.join("eligd.log")).expect("log file");
    let mut child = Command::new(ELIGD)
        .args(["demo", "--persons", "600", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start eligd demo");
    let out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut lines = Vec::new();
    let mut env = Vec::new();
    for line in out.lines() {
        let line = line.expect("demo output");
        if let Some(rest) = line.strip_prefix("export ") {
            env = rest.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        }
        let done = line.starts_with("Stop the server");
        lines.push(line);
        if done {
            break;
        }
    }
    assert_eq!(env.len(), 4, "export line in {lines:?}");
    Demo { child, env, lines }
}

fn elig(demo: &Demo, args: &[&str], stdin: &str, cert: &str) -> Output {
    let mut cmd = Command::new(&*ELIG);
    cmd.args(args).envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if cert != "central" {
        let certs =
            Path::new(&demo.env.iter().find(|(k, _)| k == "ELIG_CA").expect("ELIG_CA").1).parent().expect("certs dir").to_path_buf();
        cmd.env("ELIG_CERT", certs.join(format!("{cert}.pem"))).env("ELIG_KEY", certs.join(format!("{cert}.key")));
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run elig");
    child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("elig output")
}

/// The query after `echo '` on the line following `comment`.
fn example(demo: &Demo, comment: &str) -> String {
    let at = demo.lines.iter().position(|l| l.starts_with(comment)).unwrap_or_else(|| panic!("{comment} in {:?}", demo.lines));
    let line = &demo.lines[at + 1];
    line.strip_prefix("echo '").and_then(|l| l.split_once("' |")).map(|(q, _)| q.to_string()).expect("an echo line")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "elig failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn demo_commands_work_and_sigterm_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_demo(dir.path());

    let card = example(&demo, "# insurance card");
    let a = json(&elig(&demo, &["lookup"], &card, "central"));
    assert_eq!(a["MessageBody"]["QualificationValidity"], "1");

    let ticket = example(&demo, "# medical ticket");
    let out = elig(&demo, &["lookup", "--format", "xml", "--encoding", "shift_jis"], &ticket, "central");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(b"<?xml version=\"1.0\" encoding=\"Shift_JIS\""), "{}", String::from_utf8_lossy(&out.stdout));
    let doc = elig_client::xml::parse(&out.stdout).unwrap();
    assert_eq!(doc.message_header.character_code_identifier, "1");

    // JSON Lines in, one line out per query line, in order, errors in place.
    let input = format!("{card}\n\n{{\"InsuranceCard\":{{}}}}\n{ticket}\n");
    let out = elig(&demo, &["bulk"], &input, "central");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["MessageBody"]["QualificationConfirmSearchInfo"]["ArbitraryIdentifier"], "demo-1");
    assert_eq!(lines[1]["MessageBody"]["ProcessingResultCode"], "EQ03");
    assert_eq!(lines[2]["MessageBody"]["QualificationConfirmSearchInfo"]["ArbitraryIdentifier"], "demo-2");
    assert_eq!(lines[0]["MessageHeader"]["ArbitraryFileIdentifier"], serde_json::Value::Null, "not the query's identifier");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("elig bulk: 3 items, 2 normal, 1 error (generation "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One 70 KB line (over the server's 64 KiB frame limit) gets its error answer in its place; the bulk goes on.
    let big = format!("{{\"ArbitraryIdentifier\":\"big\",\"Pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let out = elig(&demo, &["bulk"], &format!("{card}\n{big}\n{ticket}\n"), "central");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "one answer per query line");
    assert_eq!(lines[0]["MessageBody"]["QualificationConfirmSearchInfo"]["ArbitraryIdentifier"], "demo-1");
    assert_eq!(lines[1]["MessageBody"]["ProcessingResultCode"], "EF02");
    assert_eq!(
        lines[1]["MessageBody"]["ProcessingResultMessage"],
        "bulk item 2 of 71718 bytes exceeds the limit of 65536 bytes (max_frame_bytes) and was not read; the other items are answered"
    );
    assert_eq!(lines[2]["MessageBody"]["QualificationConfirmSearchInfo"]["ArbitraryIdentifier"], "demo-2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 items, 2 normal, 1 error"));

    // JSON Lines given to `elig lookup`: refused (exit 2), pointing to `elig bulk`; nothing sent.
    let jsonl = dir.path().join("queries.jsonl");
    std::fs::write(&jsonl, format!("{card}\n{ticket}\n")).unwrap();
    let out = elig(&demo, &["lookup", "--file", jsonl.to_str().unwrap()], "", "central");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "elig: {p} holds 2 lines of queries (JSON Lines), but elig lookup answers exactly one query; use 'elig bulk --file {p}' for JSON Lines (one answer per line); nothing was sent\n",
            p = jsonl.display()
        )
    );

    // A UTF-8 byte-order mark before the query is accepted.
    let a = json(&elig(&demo, &["lookup"], &format!("\u{feff}{card}"), "central"));
    assert_eq!(a["MessageBody"]["QualificationValidity"], "1");

    // A server given by host name.
    let port = demo.env.iter().find(|(k, _)| k == "ELIG_SERVER").and_then(|(_, v)| v.rsplit_once(':')).map(|(_, p)| p.to_string()).unwrap();
    let a = json(&elig(&demo, &["--server", &format!("localhost:{port}"), "lookup"], &card, "central"));
    assert_eq!(a["MessageBody"]["QualificationValidity"], "1");

    // Output piped into a reader that goes away (`| head`): no error, no panic.
    let many = format!("{card}\n").repeat(2000);
    let mut child = Command::new(&*ELIG)
        .arg("bulk")
        .envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(many.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("Broken pipe") && !err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");

    let out = elig(&demo, &["bulk", "--format", "xml"], &input, "central");
    let doc = elig_client::xml::parse(&out.stdout).unwrap();
    assert_eq!(doc.message_body.bulk_confirm_unit_list.len(), 3);
    assert_eq!(doc.message_header.number_of_error.as_deref(), Some("1"));

    let month = demo.lines.iter().find_map(|l| l.split("elig tickets --month ").nth(1)).expect("tickets line").to_string();
    let t = json(&elig(&demo, &["tickets", "--month", &month], "", "institution"));
    assert_ne!(t["MessageHeader"]["NumberOfProcessingResult"], "0");

    // Operator commands need the operator certificate: exit code 3 otherwise.
    let out = elig(&demo, &["status"], "", "central");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EP01"), "{}", String::from_utf8_lossy(&out.stderr));
    let s = json(&elig(&demo, &["status"], "", "operator"));
    assert_eq!(s["persons"], 600);
    let csv = dir.path().join("usage.csv");
    let out = elig(&demo, &["usage", "--export", csv.to_str().unwrap()], "", "operator");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("institution_code,lookup_kind,requests,normal,errors,certificate_checks\n"), "{text}");
    assert!(text.contains(",insurance_card,"), "{text}");

    // A bad setting: exit code 2 and the setting named.
    let out = elig(&demo, &["--server", "nowhere", "status"], "", "operator");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'nowhere' is not a server address"));

    // Every command the demo printed works as pasted into a shell: the block
    // between "paste:" and "Stop the server", run by bash, stops at the first failure.
    let from = demo.lines.iter().position(|l| l.ends_with("paste:")).expect("the paste line") + 1;
    let block = demo.lines[from..demo.lines.len() - 1].join("\n");
    assert!(block.contains("elig delta ") && block.contains("elig swap "), "{block}");
    assert!(!block.contains("/path/to"), "no placeholders: {block}");
    let shell = tempfile::tempdir().unwrap();
    let script = shell.path().join("pasted.sh");
    std::fs::write(&script, format!("set -eo pipefail\nshopt -s expand_aliases\n{block}\n")).unwrap();
    let out = Command::new("bash").arg(&script).current_dir(shell.path()).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the pasted commands failed:\n{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(stdout.matches(r#""status":"applied""#).count(), 2, "{stdout}");
    assert!(stdout.contains(r#""ArbitraryIdentifier":"demo-3""#) && stdout.contains(r#""QualificationValidity":"1""#), "{stdout}");
    assert!(stdout.contains(r#""replayed": 2"#), "the swap carries both batches over: {stdout}");
    assert!(shell.path().join("usage.csv").is_file());

    let pid = demo.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = demo.child.wait().unwrap();
    assert!(status.success(), "eligd exits 0 after SIGTERM: {status}");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().count() >= 9, "{audit}");
    let log = std::fs::read_to_string(dir.path().join("eligd.log")).unwrap();
    assert!(log.contains("eligd listening"), "{log}");
    assert!(!log.contains('\x1b'), "no ANSI colour codes in a log written to a file: {log}");
}

#[test]
fn a_demo_port_in_use_is_found_before_any_data_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out =
        Command::new(ELIGD).args(["demo", "--persons", "50", "--listen", &addr.to_string(), "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    // The cause once, not repeated by every layer.
    assert_eq!(err.matches("os error 98").count(), 1, "{err}");
    assert!(err.starts_with(&format!("eligd: cannot listen on {addr}: ")), "{err}");
    assert!(err.contains("Address already in use") || err.contains(&in_use), "{err}");
    let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(made.is_empty(), "nothing generated: {made:?}");
}

#[test]
fn certs_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(ELIGD).args(["certs", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["ca.pem", "server.key", "central.pem", "institution.pem", "operator.key"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let out = Command::new(ELIGD).args(["certs", "--institution", "3410712363", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check digit"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(ELIGD).args(["serve", "--ca"]).arg(dir.path().join("ca.pem")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing setting 'snapshot_dir'") && err.contains("--snapshot"), "{err}");

    // An unknown key: the error lists the known keys, and every one of them is documented.
    let config = dir.path().join("eligd.toml");
    std::fs::write(&config, "listne = \"127.0.0.1:4433\"\n").unwrap();
    let out = Command::new(ELIGD).args(["serve", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let listed = err.split_once("expected one of ").map(|(_, l)| l).unwrap_or_else(|| panic!("{err}"));
    let keys: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
    assert!(keys.contains(&"listen") && keys.contains(&"fixed_clock"), "{err}");
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for k in keys {
        assert!(
            readme.contains(&format!("| `{k}` |")) || readme.contains(&format!("| `{k}.")),
            "config key '{k}' is not in server/README.md"
        );
    }

    std::fs::write(&config, "listen = \"127.0.0.1:4433\"\n[limits]\nmax_bulk_items = \"many\"\n").unwrap();
    let out = Command::new(ELIGD).args(["serve", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("eligd.toml") && err.contains("max_bulk_items"), "{err}");
}
