//! `elig-bench`: the load generator (`elig_benches::loadgen`), a thin shell.
//! Draws keys from a snapshot or an export, runs the load against `eligd`
//! and prints the report (text, or JSON with `--json`).
//!
//! Exit codes: 0 success, 1 connection or transport failure or failed
//! requests, 2 invalid arguments, settings or input.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use elig_benches::loadgen::{self, BenchArgs, BenchError};
use elig_client::cli::{CliError, ConnArgs};

#[derive(Parser)]
#[command(
    name = "elig-bench",
    version,
    about = "Load generator: keys from a snapshot or export, a mix of key kinds, concurrency; prints throughput and latency percentiles"
)]
struct Cli {
    /// Where to connect, as `elig`.
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each connection runs on its own thread; the key drawing and the
    // report on a small multi-thread runtime.
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("elig-bench: {}", elig_loader::cli::report(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 2 for arguments, settings and input, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(b) = e.downcast_ref::<BenchError>() {
        return b.exit_code();
    }
    if e.downcast_ref::<CliError>().is_some() {
        2
    } else {
        1
    }
}

/// Draw the keys, run the load, print the report (an error if requests failed).
async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.bench.json;
    let opts = cli.bench.validate(elig_engine::ids::japan_now().0)?;
    let client = cli.conn.options()?;
    // The certificate's role first: no key drawing for a bench that cannot run.
    loadgen::requester(&loadgen::role_of(&client)?, opts.institution.as_deref())?;
    eprintln!("elig-bench: drawing keys from the {}, then loading {} ...", opts.source, client.server);
    let report = loadgen::run(&opts, &client).await?;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_says_what_it_is_and_its_default() {
        let missing = elig_loader::cli::undocumented(&super::Cli::command());
        assert!(missing.is_empty(), "without help text or default:\n{}", missing.join("\n"));
        super::Cli::command().debug_assert();
    }
}
