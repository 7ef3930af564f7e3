//! What the `elig` command line needs besides the client library: its
//! connection settings (file, environment, flags), reading query input,
//! and writing answers as JSON or as the real `XmlMsg` document.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use elig_wire::answer::{Answer, BulkConfirmUnit, MessageHeader, Str, ToCompactString};
use serde::Deserialize;

use crate::connection::{Client, ClientError, ClientOptions};
use crate::failover::TierOptions;
use elig_wire::report::{BulkSummary, DeltaAck};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("missing setting '{key}': pass {flag}, set {env}, or put it in the --config file")]
    Missing { key: &'static str, flag: &'static str, env: &'static str },
    #[error("'{value}' is not a server address like 127.0.0.1:4433 or localhost:4433")]
    Address { value: String },
    #[error("server '{value}': its host name does not resolve")]
    Resolve { value: String, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A setting out of its range (the same check as the server's).
    #[error("setting '{key}' = '{value}': {reason}")]
    Invalid { key: &'static str, value: String, reason: String },
}

/// The `--config` file of `elig`: where the servers are and which
/// certificate to present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// One address, or several nodes comma-separated.
    pub server: Option<String>,
    /// Several nodes as a list (instead of `server`).
    pub servers: Option<Vec<String>>,
    pub server_name: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Largest UDP payload MTU discovery may reach (default 1452).
    pub max_udp_payload: Option<u64>,
    /// How long lookups, bulk inquiries and ticket fetches are retried on
    /// other nodes (default 10; 0 sends each once).
    pub failover_secs: Option<u64>,
}

/// The longest `failover_secs`.
pub const MAX_FAILOVER_SECS: u64 = 600;

impl ClientSettings {
    pub fn from_file(path: &Path) -> Result<ClientSettings, CliError> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|e| CliError::Parse { path: path.to_path_buf(), message: e.to_string().trim_end().into() })
    }

    /// `self` with the settings `over` gives replaced (the server list as
    /// a whole: `over`'s `server` or `servers` replaces both).
    pub fn overridden_by(self, over: ClientSettings) -> ClientSettings {
        let (server, servers) = match over.server.is_some() || over.servers.is_some() {
            true => (over.server, over.servers),
            false => (self.server, self.servers),
        };
        ClientSettings {
            server,
            servers,
            server_name: over.server_name.or(self.server_name),
            ca: over.ca.or(self.ca),
            cert: over.cert.or(self.cert),
            key: over.key.or(self.key),
            max_udp_payload: over.max_udp_payload.or(self.max_udp_payload),
            failover_secs: over.failover_secs.or(self.failover_secs),
        }
    }

    /// The server addresses as given, in order: `servers`, or `server`
    /// split at commas; each trimmed.
    pub fn server_list(&self) -> Result<Vec<String>, CliError> {
        let list: Vec<String> = match (&self.server, &self.servers) {
            (Some(_), Some(_)) => {
                return Err(CliError::Usage("settings 'server' and 'servers' are both set: give the nodes in one of them".into()))
            }
            (Some(s), None) => s.split(',').map(|a| a.trim().to_string()).collect(),
            (None, Some(list)) => list.iter().map(|a| a.trim().to_string()).collect(),
            (None, None) => Vec::new(),
        };
        if list.is_empty() {
            return Err(CliError::Missing { key: "server", flag: "--server", env: "ELIG_SERVER" });
        }
        Ok(list)
    }

    /// Validate and load the PEM files: every node of the tier, in order.
    pub fn tier(&self) -> Result<TierOptions, CliError> {
        let servers = self.server_list()?;
        let mut addrs: Vec<(SocketAddr, &str)> = Vec::with_capacity(servers.len());
        for server in &servers {
            let addr = resolve(server)?;
            if let Some((_, first)) = addrs.iter().find(|(a, _)| *a == addr) {
                return Err(CliError::Usage(format!("server '{server}' is given twice (as '{first}' before; both are {addr})")));
            }
            addrs.push((addr, server));
        }
        let ca = self.ca.as_deref().ok_or(CliError::Missing { key: "ca", flag: "--ca", env: "ELIG_CA" })?;
        let cert = self.cert.as_deref().ok_or(CliError::Missing { key: "cert", flag: "--cert", env: "ELIG_CERT" })?;
        let key = self.key.as_deref().ok_or(CliError::Missing { key: "key", flag: "--key", env: "ELIG_KEY" })?;
        let max_udp_payload = crate::udp::checked_max_udp_payload(self.max_udp_payload).map_err(|reason| CliError::Invalid {
            key: "max_udp_payload",
            value: self.max_udp_payload.unwrap_or_default().to_string(),
            reason,
        })?;
        let failover = match self.failover_secs {
            Some(s) if s > MAX_FAILOVER_SECS => {
                return Err(CliError::Invalid {
                    key: "failover_secs",
                    value: s.to_string(),
                    reason: format!("must be at most {MAX_FAILOVER_SECS}"),
                })
            }
            Some(s) => std::time::Duration::from_secs(s),
            None => crate::failover::DEFAULT_FAILOVER,
        };
        let (first, _) = addrs[0];
        let base = ClientOptions { max_udp_payload, ..ClientOptions::from_files(first, "localhost", ca, Some((cert, key)))? };
        let nodes = addrs
            .iter()
            .map(|&(server, given)| {
                // A server named by host name: its certificate carries that name.
                let host = given.rsplit_once(':').map(|(h, _)| h).filter(|h| h.parse::<std::net::IpAddr>().is_err() && !h.starts_with('['));
                let server_name = self.server_name.as_deref().or(host).unwrap_or("localhost").to_string();
                ClientOptions { server, server_name, ..base.clone() }
            })
            .collect();
        Ok(TierOptions { nodes, failover, ..TierOptions::new(&[], &base) })
    }

    /// Validate and load the PEM files: the first node.
    pub fn options(&self) -> Result<ClientOptions, CliError> {
        let mut tier = self.tier()?;
        Ok(tier.nodes.swap_remove(0))
    }
}

/// Where `elig` (and the load generator) connect and as whom: the flags,
/// each also an `ELIG_*` variable, over the `--config` file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnArgs {
    /// TOML file with server or servers, server_name, ca, cert, key, max_udp_payload, failover_secs (default: none; flags and ELIG_* override it).
    #[arg(long, global = true, env = "ELIG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Server address, host:port, e.g. 127.0.0.1:4433 or localhost:4433; several nodes of one tier comma-separated or the flag repeated (required: here, ELIG_SERVER or --config; no default).
    #[arg(long, global = true, env = "ELIG_SERVER", value_delimiter = ',')]
    pub server: Vec<String>,
    /// Name the server certificate must carry (default: each --server's host name, else localhost).
    #[arg(long, global = true, env = "ELIG_SERVER_NAME")]
    pub server_name: Option<String>,
    /// CA certificate (PEM) that issued the server certificate (required: no default).
    #[arg(long, global = true, env = "ELIG_CA")]
    pub ca: Option<PathBuf>,
    /// Our client certificate (PEM); its role decides what we may ask (required: no default).
    #[arg(long, global = true, env = "ELIG_CERT")]
    pub cert: Option<PathBuf>,
    /// Our private key (PEM) (required: no default).
    #[arg(long, global = true, env = "ELIG_KEY")]
    pub key: Option<PathBuf>,
    /// Largest UDP payload MTU discovery may reach, 1200..65527 (default 1452).
    #[arg(long, global = true, env = "ELIG_MAX_UDP_PAYLOAD")]
    pub max_udp_payload: Option<u64>,
    /// Seconds a lookup, bulk inquiry or ticket fetch is retried on other nodes when a node is lost or not ready, 0..600 (default 10).
    #[arg(long, global = true, env = "ELIG_FAILOVER_SECS")]
    pub failover_secs: Option<u64>,
}

impl ConnArgs {
    /// The `--config` file with these flags over it.
    pub fn settings(&self) -> Result<ClientSettings, CliError> {
        let file = match &self.config {
            Some(p) => ClientSettings::from_file(p)?,
            None => ClientSettings::default(),
        };
        Ok(file.overridden_by(ClientSettings {
            server: None,
            servers: (!self.server.is_empty()).then(|| self.server.clone()),
            server_name: self.server_name.clone(),
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            max_udp_payload: self.max_udp_payload,
            failover_secs: self.failover_secs,
        }))
    }

    /// Every node, validated.
    pub fn tier(&self) -> Result<TierOptions, CliError> {
        self.settings()?.tier()
    }

    /// The first node, validated.
    pub fn options(&self) -> Result<ClientOptions, CliError> {
        self.settings()?.options()
    }

    /// The node an operator command goes to: `node` if given (then no
    /// `--server` is needed), else the first server.
    pub fn node(&self, node: Option<&str>) -> Result<ClientOptions, CliError> {
        let settings = self.settings()?;
        match node {
            Some(n) if n.contains(',') => {
                Err(CliError::Usage(format!("--node '{n}': an operator command goes to one node; name one address")))
            }
            Some(n) => ClientSettings { server: Some(n.to_string()), servers: None, ..settings }.options(),
            None => settings.options(),
        }
    }
}

/// `n` and the noun, singular for 1: `1 error`, `2 errors`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The counts line of a bulk inquiry: `3 items, 2 normal, 1 error`.
pub fn bulk_counts(items: u64, normal: u64, errors: u64) -> String {
    format!("{}, {normal} normal, {}", count(items, "item"), count(errors, "error"))
}

/// An error and its causes on one line, each cause once
/// ([`elig_wire::message::error_report`]).
pub fn report(e: &anyhow::Error) -> String {
    elig_wire::message::error_report(e.as_ref())
}

/// Whether an error is a write to a closed pipe (output piped into `head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The address of `host:port`, an IP address or a host name (the first
/// IPv4 address it resolves to, else the first).
pub fn resolve(server: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || CliError::Address { value: server.to_string() };
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(server)
        .map_err(|source| CliError::Resolve { value: server.to_string(), source })?
        .collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| CliError::Resolve {
        value: server.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

/// Output format of answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// The `XmlMsg` document; `true` for Shift_JIS.
    Xml {
        shift_jis: bool,
    },
}

impl Format {
    pub fn new(format: &str, encoding: &str) -> Result<Format, CliError> {
        let sjis = match encoding.to_ascii_lowercase().replace('-', "_").as_str() {
            "utf_8" | "utf8" => false,
            "shift_jis" | "sjis" => true,
            other => return Err(CliError::Usage(format!("--encoding '{other}': expected utf-8 or shift_jis"))),
        };
        match format {
            "json" if sjis => Err(CliError::Usage("--encoding shift_jis needs --format xml (JSON is always UTF-8)".into())),
            "json" => Ok(Format::Json),
            "xml" => Ok(Format::Xml { shift_jis: sjis }),
            other => Err(CliError::Usage(format!("--format '{other}': expected json or xml"))),
        }
    }

    /// One answer document, ending with a newline.
    pub fn render(self, answer: &Answer, pretty: bool) -> Vec<u8> {
        let mut out = match self {
            Format::Json if pretty => serde_json::to_vec_pretty(answer).unwrap_or_default(),
            Format::Json => serde_json::to_vec(answer).unwrap_or_default(),
            Format::Xml { shift_jis } => crate::xml::render(answer, shift_jis),
        };
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
        out
    }
}

/// Read all of `file`, or standard input when `None`. A UTF-8 byte-order
/// mark at the start (as some Windows editors write) is dropped.
pub fn read_input(file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    let mut buf = match file {
        Some(p) => std::fs::read(p).map_err(|source| CliError::Read { path: p.to_path_buf(), source })?,
        None => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|source| CliError::Read { path: "<stdin>".into(), source })?;
            buf
        }
    };
    if buf.starts_with(elig_wire::request::BOM) {
        buf.drain(..elig_wire::request::BOM.len());
    }
    Ok(buf)
}

/// The query of `elig lookup`: the input as one document. Input holding
/// several JSON documents (JSON Lines) is refused, pointing to `elig bulk`:
/// answering its first line only would drop the others silently. Anything
/// else (one document, or input that does not parse) goes to the server,
/// whose answer names what is wrong.
pub fn lookup_query(input: &[u8], file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    let input = input.trim_ascii();
    let documents =
        serde_json::Deserializer::from_slice(input).into_iter::<serde::de::IgnoredAny>().take_while(Result::is_ok).take(1000).count();
    if documents > 1 {
        let (source, bulk) = match file {
            Some(p) => (p.display().to_string(), format!("elig bulk --file {}", p.display())),
            None => ("standard input".to_string(), "elig bulk".to_string()),
        };
        let lines = query_lines(input).len();
        return Err(CliError::Usage(format!(
            "{source} holds {lines} lines of queries (JSON Lines), but elig lookup answers exactly one query; \
             use '{bulk}' for JSON Lines (one answer per line); nothing was sent"
        )));
    }
    Ok(input.to_vec())
}

/// The query lines of JSON Lines input. Blank lines are skipped (they are
/// not queries); every other line is sent as it is, so a malformed line
/// gets its own error answer in its position.
pub fn query_lines(input: &[u8]) -> Vec<Vec<u8>> {
    input
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .map(<[u8]>::to_vec)
        .collect()
}

/// A bulk inquiry's answers as one document of the real bulk result: one
/// `BulkConfirmUnit` per query, the counts in the header.
pub fn bulk_document(answers: &[Answer], summary: &BulkSummary) -> Answer {
    let first = answers.first().map(|a| &a.message_header);
    let institution = first.map(|h| h.medical_institution_code.clone()).unwrap_or_default();
    let same = answers.iter().all(|a| a.message_header.medical_institution_code == institution);
    let header = MessageHeader {
        process_execution_time: first.map(|h| h.process_execution_time.clone()).unwrap_or_default(),
        qualification_confirmation_date: first.map(|h| h.qualification_confirmation_date.clone()).unwrap_or_default(),
        medical_institution_code: if same { institution } else { Str::default() },
        reference_classification: "2".into(),
        segment_of_result: "1".into(),
        character_code_identifier: "0".into(),
        snapshot_generation: summary.generation.to_compact_string(),
        delta_sequence: summary.delta_seq.to_compact_string(),
        number_of_processing_result: Some(summary.items.to_compact_string()),
        number_of_normal_processing: Some(summary.normal.to_compact_string()),
        number_of_error: Some(summary.errors.to_compact_string()),
        ..Default::default()
    };
    let units = answers
        .iter()
        .map(|a| {
            let b = &a.message_body;
            let entry = b.result_list.first().cloned();
            BulkConfirmUnit {
                qualification_confirm_search_info: b.qualification_confirm_search_info.clone(),
                processing_result_status: b.processing_result_status.clone(),
                processing_result_code: b.processing_result_code.clone(),
                processing_result_message: b.processing_result_message.clone(),
                qualification_validity: b.qualification_validity.clone(),
                reference_number: entry.as_ref().and_then(|e| e.reference_number.clone()),
                result_of_qualification_confirmation: entry,
            }
        })
        .collect();
    let mut doc = Answer { message_header: Box::new(header), ..Default::default() };
    doc.message_body.processing_result_status = "1".into();
    doc.message_body.bulk_confirm_unit_list = units;
    doc
}

// ---- delta and swap (operator) --------------------------------------------

/// Read every batch file before anything is sent: a missing file stops
/// the command before the first batch goes out.
pub fn read_batches(files: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>, CliError> {
    files.iter().map(|f| Ok((f.clone(), std::fs::read(f).map_err(|source| CliError::Read { path: f.clone(), source })?))).collect()
}

/// The absolute form of a path given on the command line, for the server
/// to read (relative paths are taken from the current directory).
pub fn absolute(path: &Path) -> Result<String, CliError> {
    let abs = std::path::absolute(path).map_err(|source| CliError::Read { path: path.to_path_buf(), source })?;
    abs.to_str().map(str::to_string).ok_or_else(|| CliError::Usage(format!("{}: the path is not UTF-8", abs.display())))
}

/// One acknowledgement as a JSON line.
pub fn ack_line(file: &Path, ack: &DeltaAck) -> String {
    #[derive(serde::Serialize)]
    struct Line {
        file: String,
        seq: u64,
        status: &'static str,
        duplicate: bool,
        rows: u64,
        generation: u64,
    }
    let status = if ack.duplicate { "duplicate" } else { "applied" };
    let line = Line {
        file: file.display().to_string(),
        seq: ack.seq,
        status,
        duplicate: ack.duplicate,
        rows: ack.rows,
        generation: ack.generation,
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Send the batches in order, one at a time, writing one acknowledgement
/// line each as it arrives. The first refusal ends the command: the error
/// names the file (the server's message names the line and the reason),
/// and the batches after it are not sent.
pub async fn send_deltas(client: &Client, batches: &[(PathBuf, Vec<u8>)], out: &mut impl std::io::Write) -> anyhow::Result<()> {
    for (i, (file, batch)) in batches.iter().enumerate() {
        match client.delta(batch).await {
            Ok(ack) => {
                writeln!(out, "{}", ack_line(file, &ack))?;
                out.flush()?;
            }
            Err(e) => {
                let rest = batches.len() - i - 1;
                let unsent = match rest {
                    0 => String::new(),
                    1 => " (1 later batch file not sent)".to_string(),
                    n => format!(" ({n} later batch files not sent)"),
                };
                return Err(anyhow::Error::new(e).context(format!("{}: batch not applied{unsent}", file.display())));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_formats_and_settings() {
        let lines = query_lines(b"{\"a\":1}\r\n\n  \n{bad\n{\"b\":2}");
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{bad".to_vec(), b"{\"b\":2}".to_vec()]);
        assert_eq!(Format::new("xml", "Shift_JIS").unwrap(), Format::Xml { shift_jis: true });
        assert!(Format::new("json", "shift_jis").unwrap_err().to_string().contains("needs --format xml"));
        assert!(Format::new("yaml", "utf-8").is_err());
        let e = ClientSettings::default().options().unwrap_err();
        assert_eq!(e.to_string(), "missing setting 'server': pass --server, set ELIG_SERVER, or put it in the --config file");
        let s = ClientSettings { server: Some("localhost:1".into()), ..Default::default() };
        assert_eq!(s.options().unwrap_err().to_string(), "missing setting 'ca': pass --ca, set ELIG_CA, or put it in the --config file");
    }

    #[test]
    fn servers_are_addresses_or_host_names() {
        assert_eq!(resolve("127.0.0.1:4433").unwrap(), "127.0.0.1:4433".parse::<SocketAddr>().unwrap());
        assert_eq!(resolve("[::1]:4433").unwrap(), "[::1]:4433".parse::<SocketAddr>().unwrap());
        assert_eq!(resolve("localhost:4433").unwrap(), "127.0.0.1:4433".parse::<SocketAddr>().unwrap());
        for bad in ["nowhere", "localhost", ":4433", "localhost:port", "localhost:70000"] {
            assert_eq!(
                resolve(bad).unwrap_err().to_string(),
                format!("'{bad}' is not a server address like 127.0.0.1:4433 or localhost:4433")
            );
        }
        let e = resolve("no-such-host.invalid:4433").unwrap_err();
        assert_eq!(e.to_string(), "server 'no-such-host.invalid:4433': its host name does not resolve");
        assert!(std::error::Error::source(&e).is_some(), "the resolver's reason is the source, not repeated");
    }

    #[test]
    fn several_servers_are_one_list_in_order() {
        let list = |server: Option<&str>, servers: Option<&[&str]>| {
            ClientSettings {
                server: server.map(str::to_string),
                servers: servers.map(|l| l.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }
            .server_list()
        };
        assert_eq!(list(Some("127.0.0.1:1"), None).unwrap(), ["127.0.0.1:1"]);
        assert_eq!(list(Some("127.0.0.1:1, localhost:2,[::1]:3"), None).unwrap(), ["127.0.0.1:1", "localhost:2", "[::1]:3"]);
        assert_eq!(list(None, Some(&["127.0.0.1:1", " 127.0.0.1:2"])).unwrap(), ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(list(Some("a:1"), Some(&["b:2"])).unwrap_err().to_string().contains("'server' and 'servers' are both set"));
        assert!(matches!(list(None, Some(&[])), Err(CliError::Missing { key: "server", .. })));
        assert!(matches!(list(None, None), Err(CliError::Missing { key: "server", .. })));

        // Each entry is checked, the bad one named, before any file is read.
        let tier = |server: &str| ClientSettings { server: Some(server.into()), ..Default::default() }.tier();
        let e = tier("127.0.0.1:1,127.0.0.1:44x").unwrap_err();
        assert_eq!(e.to_string(), "'127.0.0.1:44x' is not a server address like 127.0.0.1:4433 or localhost:4433");
        let e = tier("127.0.0.1:1,,127.0.0.1:2").unwrap_err();
        assert_eq!(e.to_string(), "'' is not a server address like 127.0.0.1:4433 or localhost:4433");
        let e = tier("127.0.0.1:1,localhost:1").unwrap_err();
        assert_eq!(e.to_string(), "server 'localhost:1' is given twice (as '127.0.0.1:1' before; both are 127.0.0.1:1)");
        assert!(matches!(tier("127.0.0.1:1,127.0.0.1:2"), Err(CliError::Missing { key: "ca", .. })));

        // The flags' list replaces the file's whole.
        let file = ClientSettings { servers: Some(vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()]), ..Default::default() };
        let flags = ClientSettings { server: Some("127.0.0.1:3".into()), ..Default::default() };
        assert_eq!(file.clone().overridden_by(flags).server_list().unwrap(), ["127.0.0.1:3"]);
        assert_eq!(file.overridden_by(ClientSettings::default()).server_list().unwrap(), ["127.0.0.1:1", "127.0.0.1:2"]);
    }

    #[test]
    fn server_flags_take_commas_and_repeats_and_operators_name_one_node() {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            conn: ConnArgs,
        }
        let args = <Cmd as clap::Parser>::try_parse_from([
            "elig",
            "--server",
            "127.0.0.1:1,127.0.0.1:2",
            "--server",
            "127.0.0.1:3",
            "--failover-secs",
            "601",
        ])
        .unwrap();
        assert_eq!(args.conn.server, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let s = args.conn.settings().unwrap();
        assert_eq!(s.server_list().unwrap().len(), 3);
        let with_files = ClientSettings { ca: Some("ca.pem".into()), cert: Some("c.pem".into()), key: Some("c.key".into()), ..s };
        assert_eq!(with_files.tier().unwrap_err().to_string(), "setting 'failover_secs' = '601': must be at most 600");

        let none = ConnArgs::default();
        assert!(none.node(Some("127.0.0.1:1,127.0.0.1:2")).unwrap_err().to_string().contains("goes to one node"));
        // A named node needs no --server: the next missing setting is the CA.
        assert!(matches!(none.node(Some("127.0.0.1:9")), Err(CliError::Missing { key: "ca", .. })));
        assert!(matches!(none.node(None), Err(CliError::Missing { key: "server", .. })));
    }

    #[test]
    fn lookup_takes_one_document_and_refuses_json_lines() {
        assert_eq!(lookup_query(b"  {\"a\": 1}\n", None).unwrap(), b"{\"a\": 1}");
        // Not JSON, or one document with trailing bytes: the server's answer says what is wrong.
        assert_eq!(lookup_query(b"{bad", None).unwrap(), b"{bad");
        let e = lookup_query(b"{\"a\": 1}\n{\"b\": 2}\n\n{\"c\": 3}\n", Some(Path::new("q.jsonl"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "q.jsonl holds 3 lines of queries (JSON Lines), but elig lookup answers exactly one query; \
             use 'elig bulk --file q.jsonl' for JSON Lines (one answer per line); nothing was sent"
        );
        let e = lookup_query(b"{}\n{}", None).unwrap_err();
        assert!(e.to_string().starts_with("standard input holds 2 lines") && e.to_string().contains("'elig bulk'"), "{e}");
    }

    #[test]
    fn a_report_names_each_cause_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 127.0.0.1:4433: {source}")]
        struct Bind {
            source: std::io::Error,
        }
        let e = anyhow::Error::from(Bind { source: io() }).context("starting the server");
        assert_eq!(report(&e), format!("starting the server: cannot listen on 127.0.0.1:4433: {}", io()));
        assert_eq!(format!("{e:#}").matches(&io().to_string()).count(), 2, "what anyhow alone prints");
    }

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(bulk_counts(3, 2, 1), "3 items, 2 normal, 1 error");
        assert_eq!(bulk_counts(1, 1, 0), "1 item, 1 normal, 0 errors");
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).context("writing answers");
        assert!(is_broken_pipe(&pipe));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("q.json");
        std::fs::write(&f, b"\xef\xbb\xbf{\"a\": 1}\n").unwrap();
        assert_eq!(read_input(Some(&f)).unwrap(), b"{\"a\": 1}\n");
    }

    #[test]
    fn the_udp_payload_is_checked_and_passed_on() {
        let base = ClientSettings {
            server: Some("127.0.0.1:4433".into()),
            ca: Some("ca.pem".into()),
            cert: Some("central.pem".into()),
            key: Some("central.key".into()),
            ..Default::default()
        };
        let with = |p: u64| base.clone().overridden_by(ClientSettings { max_udp_payload: Some(p), ..Default::default() }).options();
        // Checked before any file is read.
        assert_eq!(with(1199).unwrap_err().to_string(), "setting 'max_udp_payload' = '1199': must be between 1200 and 65527");
        assert_eq!(with(70000).unwrap_err().to_string(), "setting 'max_udp_payload' = '70000': must be between 1200 and 65527");
        assert!(matches!(with(9000), Err(CliError::Client(ClientError::Tls(_)))), "in range: on to the PEM files");
        assert_eq!(crate::udp::checked_max_udp_payload(None), Ok(1452));
        assert_eq!(crate::udp::checked_max_udp_payload(Some(9000)), Ok(9000));
    }

    #[test]
    fn a_bulk_becomes_one_document_of_units() {
        let mut ok = Answer::default();
        ok.message_header.medical_institution_code = "3410712362".into();
        ok.message_body.processing_result_status = "1".into();
        ok.message_body.qualification_validity = Some("1".into());
        let mut bad = ok.clone();
        bad.message_body.processing_result_status = "2".into();
        bad.message_body.processing_result_code = Some("EQ04".into());
        let summary = BulkSummary { items: 2, normal: 1, errors: 1, generation: 9, delta_seq: 0 };
        let ack = DeltaAck { seq: 4, duplicate: true, rows: 2, generation: 9 };
        assert_eq!(
            ack_line(Path::new("b4.jsonl"), &ack),
            r#"{"file":"b4.jsonl","seq":4,"status":"duplicate","duplicate":true,"rows":2,"generation":9}"#
        );
        let doc = bulk_document(&[ok, bad], &summary);
        assert_eq!(doc.message_header.number_of_error.as_deref(), Some("1"));
        assert_eq!(doc.message_header.snapshot_generation, "9");
        assert_eq!(doc.message_body.bulk_confirm_unit_list.len(), 2);
        assert_eq!(doc.message_body.bulk_confirm_unit_list[1].processing_result_code.as_deref(), Some("EQ04"));
    }
}
