//! `elig`: the client of `eligd`. A thin shell over `elig_server::client`.
//!
//! Exit codes: 0 success, 1 connection or transport failure, 2 invalid
//! arguments, settings or input, 3 the server refused the request.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use elig_server::bench::{self, BenchArgs, BenchError};
use elig_server::cli::{self, CliError, ClientSettings, Format};
use elig_server::client::{Client, ClientError};

// mimalloc: answers allocate many small strings, and after a day of deltas
// glibc's fragmented heap made every allocation slower (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "elig", version, about = "Client of the eligibility lookup server")]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConnArgs {
    /// TOML file with server, server_name, ca, cert, key, max_udp_payload (default: none; flags and ELIG_* override it).
    #[arg(long, global = true, env = "ELIG_CONFIG")]
    config: Option<PathBuf>,
    /// Server address, host:port, e.g. 127.0.0.1:4433 or localhost:4433 (required: here, ELIG_SERVER or --config; no default).
    #[arg(long, global = true, env = "ELIG_SERVER")]
    server: Option<String>,
    /// Name the server certificate must carry (default: the --server host name, else localhost).
    #[arg(long, global = true, env = "ELIG_SERVER_NAME")]
    server_name: Option<String>,
    /// CA certificate (PEM) that issued the server certificate (required: no default).
    #[arg(long, global = true, env = "ELIG_CA")]
    ca: Option<PathBuf>,
    /// Our client certificate (PEM); its role decides what we may ask (required: no default).
    #[arg(long, global = true, env = "ELIG_CERT")]
    cert: Option<PathBuf>,
    /// Our private key (PEM) (required: no default).
    #[arg(long, global = true, env = "ELIG_KEY")]
    key: Option<PathBuf>,
    /// Largest UDP payload MTU discovery may reach, 1200..65527 (default 1452).
    #[arg(long, global = true, env = "ELIG_MAX_UDP_PAYLOAD")]
    max_udp_payload: Option<u64>,
}

#[derive(Args)]
struct OutArgs {
    /// json (answer documents) or xml (the XmlMsg document).
    #[arg(long, default_value = "json")]
    format: String,
    /// utf-8 or shift_jis (XML only).
    #[arg(long, default_value = "utf-8")]
    encoding: String,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one query (JSON on standard input or --file).
    Lookup {
        /// Read the query document from this file (default: standard input); JSON Lines go to `elig bulk`.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        out: OutArgs,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Bulk inquiry: JSON Lines of queries in, one answer line per query out, streamed in order.
    Bulk {
        /// Read the JSON Lines of queries from this file (default: standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// With --format xml: one XmlMsg of BulkConfirmUnits after the last answer.
        #[command(flatten)]
        out: OutArgs,
    },
    /// Fetch the tickets that delegate an institution for a month.
    Tickets {
        /// Institution code (default: an institution certificate's own code; required with a central certificate).
        #[arg(long)]
        institution: Option<String>,
        /// Treatment month, YYYYMM.
        #[arg(long)]
        month: String,
        /// Confirmation date, YYYYMMDD (default today).
        #[arg(long)]
        date: Option<String>,
        #[command(flatten)]
        out: OutArgs,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
    },
    /// Operator: the server's status.
    Status,
    /// Operator: usage counts per institution and lookup kind.
    Usage {
        /// Write the counts as CSV to this file (default: print them as JSON).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Operator: send delta batches (JSON Lines files) in order, one acknowledgement line each; stops at a refused one.
    Delta {
        /// Delta batch files (JSON Lines), sent in this order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Operator: publish delta batches (JSON Lines files) to the NATS JetStream delta stream that every
    /// node follows, in order, one acknowledgement line each; stops at a refused one. Needs no eligd.
    Publish(PublishArgs),
    /// Operator: swap in a compiled snapshot directory (read by the server); prints the swap report.
    Swap {
        /// The compiled snapshot directory (made absolute here; the server reads it).
        snapshot_dir: PathBuf,
    },
    /// Load generator: keys from a snapshot or export, a mix of key kinds, concurrency; prints throughput and latency percentiles.
    Bench(Box<BenchArgs>),
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// Delta batch files (JSON Lines), published in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// NATS server URLs, comma-separated (any server of the cluster).
    #[arg(long, env = "ELIG_NATS", value_delimiter = ',', default_value = "nats://127.0.0.1:4222")]
    nats: Vec<String>,
    /// The JetStream stream.
    #[arg(long, default_value = elig_server::ops::jetstream::DEFAULT_STREAM)]
    stream: String,
    /// The subject prefix: batch N goes to `<prefix>.N`.
    #[arg(long, default_value = elig_server::ops::jetstream::DEFAULT_PREFIX)]
    subject_prefix: String,
    /// Replicas of the stream if it has to be created (a three-server cluster: 3).
    #[arg(long, default_value_t = elig_server::ops::jetstream::DEFAULT_REPLICAS)]
    replicas: usize,
    /// Replace the batch of the same seq in the stream (after every node refused it), instead of appending.
    #[arg(long)]
    replace: bool,
}

/// `elig publish`: each batch checked as rows, then published in seq order.
async fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    use elig_server::ops::jetstream::{self, StreamNames};
    let batches = cli::read_batches(&args.files)?;
    let names = StreamNames { servers: args.nats, stream: args.stream, subject_prefix: args.subject_prefix };
    let js = jetstream::connect(&names).await?;
    let mut stream = jetstream::ensure_stream(&js, &names, args.replicas).await?;
    let mut stdout = std::io::stdout().lock();
    for (file, text) in batches {
        let published = if args.replace {
            jetstream::replace(&js, &mut stream, &names, &text).await
        } else {
            jetstream::publish(&js, &mut stream, &names, &text).await
        }
        .map_err(|e| anyhow::Error::new(PublishRefused(format!("{}: {e}", file.display()))))?;
        let line = serde_json::json!({"file": file.display().to_string(), "published": published});
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}

/// A batch `elig publish` did not put in the stream (exit code 3, as a refused request).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PublishRefused(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("elig: starting the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`elig bulk ... | head`): what
        // it wanted was written; nothing to report.
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("elig: {}", cli::report(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(b) = e.downcast_ref::<BenchError>() {
        return b.exit_code();
    }
    if e.downcast_ref::<PublishRefused>().is_some() {
        return 3;
    }
    let client = e.downcast_ref::<ClientError>().or_else(|| match e.downcast_ref::<CliError>() {
        Some(CliError::Client(c)) => Some(c),
        _ => None,
    });
    match (client, e.downcast_ref::<CliError>()) {
        (Some(ClientError::Refused { .. }), _) => 3,
        (Some(ClientError::Tls(_)), _) => 2,
        (Some(_), _) => 1,
        (None, Some(_)) => 2,
        (None, None) => 1,
    }
}

async fn connect(conn: &ConnArgs) -> anyhow::Result<Client> {
    Ok(Client::connect(&client_options(conn)?).await?)
}

fn client_options(conn: &ConnArgs) -> anyhow::Result<elig_server::client::ClientOptions> {
    let file = match &conn.config {
        Some(p) => ClientSettings::from_file(p)?,
        None => ClientSettings::default(),
    };
    let settings = file.overridden_by(ClientSettings {
        server: conn.server.clone(),
        server_name: conn.server_name.clone(),
        ca: conn.ca.clone(),
        cert: conn.cert.clone(),
        key: conn.key.clone(),
        max_udp_payload: conn.max_udp_payload,
    });
    Ok(settings.options()?)
}

/// `elig bench`: draw the keys, run the load, print the report (exit 1 if requests failed).
async fn run_bench(conn: &ConnArgs, args: BenchArgs) -> anyhow::Result<()> {
    let json = args.json;
    let opts = args.validate(elig_engine::ids::japan_now().0)?;
    let client = client_options(conn)?;
    // The certificate's role first: no key drawing for a bench that cannot run.
    bench::requester(&bench::role_of(&client)?, opts.institution.as_deref())?;
    eprintln!("elig bench: drawing keys from the {}, then loading {} ...", opts.source, client.server);
    let report = bench::run(&opts, &client).await?;
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        stdout.write_all(report.text().as_bytes())?;
    }
    stdout.flush()?;
    if report.failed > 0 {
        anyhow::bail!("{} of {} requests failed; first: {}", report.failed, report.requests, report.first_failure.unwrap_or_default());
    }
    Ok(())
}

/// A command with its input read and checked, ready to send.
enum Ready {
    Lookup { query: Vec<u8>, format: Format, pretty: bool },
    Bulk { lines: Vec<Vec<u8>>, format: Format },
    Tickets { query: Vec<u8>, format: Format, pretty: bool },
    Status,
    Usage { export: Option<PathBuf> },
    Delta { batches: Vec<(PathBuf, Vec<u8>)> },
    Swap { dir: String },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Input and arguments first: a mistake there needs no connection.
    let ready = match cli.command {
        Command::Lookup { file, out, pretty } => Ready::Lookup {
            format: Format::new(&out.format, &out.encoding)?,
            query: cli::lookup_query(&cli::read_input(file.as_deref())?, file.as_deref())?,
            pretty,
        },
        Command::Bulk { file, out } => {
            Ready::Bulk { format: Format::new(&out.format, &out.encoding)?, lines: cli::query_lines(&cli::read_input(file.as_deref())?) }
        }
        Command::Tickets { institution, month, date, out, pretty } => Ready::Tickets {
            format: Format::new(&out.format, &out.encoding)?,
            query: Client::tickets_query(institution.as_deref(), &month, date.as_deref()),
            pretty,
        },
        Command::Status => Ready::Status,
        Command::Usage { export } => Ready::Usage { export },
        Command::Delta { files } => Ready::Delta { batches: cli::read_batches(&files)? },
        Command::Swap { snapshot_dir } => Ready::Swap { dir: cli::absolute(&snapshot_dir)? },
        Command::Bench(args) => return run_bench(&cli.conn, *args).await,
        Command::Publish(args) => return run_publish(args).await,
    };
    let client = connect(&cli.conn).await?;
    let result = execute(&client, ready).await;
    // Close politely on every path, so the server does not wait for an idle timeout.
    client.close().await;
    result
}

async fn execute(client: &Client, ready: Ready) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match ready {
        Ready::Lookup { query, format, pretty } => {
            let answer = client.lookup(&query).await?;
            stdout.write_all(&format.render(&answer, pretty))?;
        }
        Ready::Bulk { lines, format } => {
            let mut results = client.bulk(lines).await?;
            let mut kept = Vec::new();
            while let Some(answer) = results.next().await? {
                match format {
                    Format::Json => {
                        stdout.write_all(&format.render(&answer, false))?;
                        stdout.flush()?;
                    }
                    Format::Xml { .. } => kept.push(answer),
                }
            }
            let summary = results.summary().cloned().context("the bulk ended without a summary")?;
            if let Format::Xml { .. } = format {
                stdout.write_all(&format.render(&cli::bulk_document(&kept, &summary), false))?;
            }
            eprintln!("elig bulk: {} (generation {})", cli::bulk_counts(summary.items, summary.normal, summary.errors), summary.generation);
        }
        Ready::Tickets { query, format, pretty } => {
            let answer = client.tickets(&query).await?.collect().await?;
            stdout.write_all(&format.render(&answer, pretty))?;
        }
        Ready::Status => {
            let status = client.status().await?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&status)?)?;
        }
        Ready::Usage { export } => {
            let report = client.usage().await?;
            match export {
                Some(path) => {
                    std::fs::write(&path, report.to_csv()).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("elig usage: wrote {} rows to {}", report.rows.len(), path.display());
                }
                None => writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?,
            }
        }
        Ready::Delta { batches } => cli::send_deltas(client, &batches, &mut stdout).await?,
        Ready::Swap { dir } => {
            let report = client.swap(&dir).await?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
            if let Some(warning) = &report.compact_error {
                eprintln!("elig swap: swapped, but: {warning}");
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_and_argument_says_what_it_is_and_its_default() {
        let missing = elig_loader::cli::undocumented(&super::Cli::command());
        assert!(missing.is_empty(), "without help text or default:\n{}", missing.join("\n"));
        super::Cli::command().debug_assert();
    }
}
