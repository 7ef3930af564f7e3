//! The `elig` binary without a server: settings and input mistakes are
//! reported before any connection, with exit code 2, and nothing of the
//! server, loader or engine is needed to build or run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const ELIG: &str = env!("CARGO_BIN_EXE_elig");

fn elig(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(ELIG)
        .args(args)
        .env_remove("ELIG_CONFIG")
        .env_remove("ELIG_SERVER")
        .env_remove("ELIG_CA")
        .env_remove("ELIG_CERT")
        .env_remove("ELIG_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run elig");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("elig output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_setting_is_named_before_any_connection() {
    let out = elig(&["status"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out), "elig: missing setting 'server': pass --server, set ELIG_SERVER, or put it in the --config file\n");
    let out = elig(&["--server", "nowhere", "status"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'nowhere' is not a server address"), "{}", stderr(&out));
    let out = elig(&["--server", "127.0.0.1:4433", "--ca", "/nonexistent/ca.pem", "--cert", "c", "--key", "k", "status"], "");
    assert_eq!(out.status.code(), Some(2), "an unreadable CA is a settings error");
    assert!(stderr(&out).contains("/nonexistent/ca.pem"), "{}", stderr(&out));
}

#[test]
fn input_mistakes_need_no_server() {
    let out = elig(&["lookup", "--format", "yaml"], "{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("yaml"), "{}", stderr(&out));
    let out = elig(&["lookup"], "{\"a\":1}\n{\"b\":2}\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("elig bulk"), "{}", stderr(&out));
}

#[test]
fn the_server_side_commands_are_not_here() {
    let out = Command::new(ELIG).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["lookup", "bulk", "tickets", "status", "usage", "delta", "swap"] {
        assert!(help.contains(cmd), "{cmd} in {help}");
    }
    // The load generator and the stream publisher need the engine: eligd's.
    for gone in ["bench", "publish"] {
        assert!(!help.lines().any(|l| l.trim_start().starts_with(gone)), "{gone} in {help}");
    }
}
