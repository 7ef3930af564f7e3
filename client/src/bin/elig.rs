//! `elig`: the client of `eligd`. A thin shell over `elig_client`.
//!
//! Exit codes: 0 success, 1 connection or transport failure, 2 invalid
//! arguments, settings or input, 3 the server refused the request.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use elig_client::cli::{self, CliError, ConnArgs, Format};
use elig_client::{Client, ClientError, Tier};

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
struct OutArgs {
    /// json (answer documents) or xml (the XmlMsg document).
    #[arg(long, default_value = "json")]
    format: String,
    /// utf-8 or shift_jis (XML only).
    #[arg(long, default_value = "utf-8")]
    encoding: String,
}

/// Operator commands go to one node and are never failed over.
#[derive(Args)]
struct NodeArg {
    /// The node to send this to, host:port (default: the first --server; given --node, --server is not needed).
    #[arg(long, env = "ELIG_NODE")]
    node: Option<String>,
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
    Status {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Operator: usage counts per institution and lookup kind.
    Usage {
        #[command(flatten)]
        node: NodeArg,
        /// Write the counts as CSV to this file (default: print them as JSON).
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// Operator: send delta batches (JSON Lines files) in order, one acknowledgement line each; stops at a refused one.
    Delta {
        #[command(flatten)]
        node: NodeArg,
        /// Delta batch files (JSON Lines), sent in this order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Operator: swap in a compiled snapshot directory (read by the server); prints the swap report.
    Swap {
        #[command(flatten)]
        node: NodeArg,
        /// The compiled snapshot directory (made absolute here; the server reads it).
        snapshot_dir: PathBuf,
    },
}

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

/// A command with its input read and checked, ready to send.
enum Ready {
    /// Read-only: sent to any node, retried on another.
    Read(Read),
    /// Operator: sent to the node named, never failed over.
    Operator(Option<String>, Operator),
}

enum Read {
    Lookup { query: Vec<u8>, format: Format, pretty: bool },
    Bulk { lines: Vec<Vec<u8>>, format: Format },
    Tickets { query: Vec<u8>, format: Format, pretty: bool },
}

enum Operator {
    Status,
    Usage { export: Option<PathBuf> },
    Delta { batches: Vec<(PathBuf, Vec<u8>)> },
    Swap { dir: String },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Input and arguments first: a mistake there needs no connection.
    let ready = match cli.command {
        Command::Lookup { file, out, pretty } => Ready::Read(Read::Lookup {
            format: Format::new(&out.format, &out.encoding)?,
            query: cli::lookup_query(&cli::read_input(file.as_deref())?, file.as_deref())?,
            pretty,
        }),
        Command::Bulk { file, out } => Ready::Read(Read::Bulk {
            format: Format::new(&out.format, &out.encoding)?,
            lines: cli::query_lines(&cli::read_input(file.as_deref())?),
        }),
        Command::Tickets { institution, month, date, out, pretty } => Ready::Read(Read::Tickets {
            format: Format::new(&out.format, &out.encoding)?,
            query: Client::tickets_query(institution.as_deref(), &month, date.as_deref()),
            pretty,
        }),
        Command::Status { node } => Ready::Operator(node.node, Operator::Status),
        Command::Usage { node, export } => Ready::Operator(node.node, Operator::Usage { export }),
        Command::Delta { node, files } => Ready::Operator(node.node, Operator::Delta { batches: cli::read_batches(&files)? }),
        Command::Swap { node, snapshot_dir } => Ready::Operator(node.node, Operator::Swap { dir: cli::absolute(&snapshot_dir)? }),
    };
    // Close politely on every path, so the servers do not wait for an idle timeout.
    match ready {
        Ready::Read(read) => {
            let tier = Tier::connect(&cli.conn.tier()?).await?;
            let result = execute_read(&tier, read).await;
            tier.close().await;
            result
        }
        Ready::Operator(node, op) => {
            let client = Client::connect(&cli.conn.node(node.as_deref())?).await?;
            let result = execute_operator(&client, op).await;
            client.close().await;
            result
        }
    }
}

async fn execute_read(tier: &Tier, read: Read) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match read {
        Read::Lookup { query, format, pretty } => {
            let answer = tier.lookup(&query).await?;
            stdout.write_all(&format.render(&answer, pretty))?;
        }
        Read::Bulk { lines, format } => {
            // Answered whole by one node (a retry on another asks it all
            // again), so the answers are written once they are all in.
            let (answers, summary) = tier.bulk(&lines).await?;
            match format {
                Format::Json => {
                    for answer in &answers {
                        stdout.write_all(&format.render(answer, false))?;
                    }
                }
                Format::Xml { .. } => stdout.write_all(&format.render(&cli::bulk_document(&answers, &summary), false))?,
            }
            eprintln!("elig bulk: {} (generation {})", cli::bulk_counts(summary.items, summary.normal, summary.errors), summary.generation);
        }
        Read::Tickets { query, format, pretty } => {
            let answer = tier.tickets(&query).await?;
            stdout.write_all(&format.render(&answer, pretty))?;
        }
    }
    stdout.flush()?;
    Ok(())
}

async fn execute_operator(client: &Client, op: Operator) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match op {
        Operator::Status => {
            let status = client.status().await?;
            writeln!(stdout, "{}", serde_json::to_string_pretty(&status)?)?;
        }
        Operator::Usage { export } => {
            let report = client.usage().await?;
            match export {
                Some(path) => {
                    std::fs::write(&path, report.to_csv()).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("elig usage: wrote {} rows to {}", report.rows.len(), path.display());
                }
                None => writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?,
            }
        }
        Operator::Delta { batches } => cli::send_deltas(client, &batches, &mut stdout).await?,
        Operator::Swap { dir } => {
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

    /// Every flag and argument says what it is (its help text names its
    /// default or that it has none; README lists them).
    #[test]
    fn every_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                    out.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "elig", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
        super::Cli::command().debug_assert();
    }
}
