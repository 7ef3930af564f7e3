//! `eligd`: the lookup server. A thin shell over `elig_server`.
//!
//! Exit codes: 0 success, 1 failure while running, 2 invalid arguments or
//! configuration.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use elig_client::cli::{CliError, ConnArgs};
use elig_client::Client;
use elig_engine::engine::{Engine, EngineOptions};
use elig_server::config::{Config, RawConfig, DEFAULT_WORKER_THREADS};
use elig_server::dev::certs::DevPki;
use elig_server::dev::demo;
use elig_server::ops::jetstream::{self, StreamNames};
use elig_server::ops::{publish, snapshots, state};
use elig_server::quic::server::Server;
use tokio_util::sync::CancellationToken;

// mimalloc: answers allocate many small strings, and after a day of deltas
// glibc's fragmented heap made every allocation slower (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "eligd", version, about = "Eligibility lookup server (QUIC, TLS 1.3, client certificates)")]
struct Cli {
    /// Log as JSON lines instead of text (the level comes from RUST_LOG, default info).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a snapshot (configuration file plus overrides).
    Serve(Box<ServeArgs>),
    /// Create a development CA and server, central, institution and operator certificates.
    Certs {
        /// Directory to write ca.pem/.key, server.*, central.*, institution.*, operator.*.
        #[arg(long)]
        out: PathBuf,
        /// Institution code carried by institution.pem.
        #[arg(long, default_value = "3410712362")]
        institution: String,
        /// DNS name of the server certificate (127.0.0.1 and ::1 are always included).
        #[arg(long = "server-name", default_value = "localhost")]
        server_names: Vec<String>,
    },
    /// Generate and compile a synthetic data set, create certificates, and serve it on 127.0.0.1 (the default).
    Demo(DemoArgs),
    /// Operator: publish delta batches (JSON Lines files) to the NATS JetStream delta stream that every
    /// node follows, in order, one acknowledgement line each; stops at a refused one. Needs no eligd running.
    Publish(Box<PublishArgs>),
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
    #[arg(long, default_value = jetstream::DEFAULT_STREAM)]
    stream: String,
    /// The subject prefix: batch N goes to `<prefix>.N`.
    #[arg(long, default_value = jetstream::DEFAULT_PREFIX)]
    subject_prefix: String,
    /// Replicas of the stream if it has to be created (a three-server cluster: 3).
    #[arg(long, default_value_t = jetstream::DEFAULT_REPLICAS)]
    replicas: usize,
    /// Replace the batch of the same seq in the stream (after every node refused it), instead of appending.
    #[arg(long)]
    replace: bool,
    /// A node (host:port) that dry-runs each batch against its state at the stream's last batch before it is
    /// published, with the operator certificate of --ca/--cert/--key or ELIG_* (default: no dry run; the rows are checked).
    #[arg(long)]
    node: Option<String>,
    /// After each publish, wait until this many nodes (the stream's durable consumers) applied it (default 0: do not wait).
    #[arg(long, default_value_t = 0)]
    wait: usize,
    /// How long --wait waits for the nodes, in seconds.
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    #[command(flatten)]
    conn: ConnArgs,
}

/// A batch `eligd publish` did not put in the stream (exit code 3, as a refused request).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PublishRefused(String);

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (default: none; the flags below override its keys).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Every setting of the file, as a flag that overrides it (`elig_server::config`).
    #[command(flatten)]
    settings: RawConfig,
}

#[derive(Args)]
struct DemoArgs {
    /// Persons in the synthetic data set.
    #[arg(long, default_value_t = 100_000)]
    persons: u64,
    /// Seed of the synthetic data set (the same seed gives the same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep everything in this directory (default: a temporary one, removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// UDP address of the QUIC endpoint (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:4433")]
    listen: SocketAddr,
    /// Address of the Prometheus endpoint (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    metrics: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_json);
    let result = match cli.command {
        Some(Command::Certs { out, institution, server_names }) => certs(&out, &institution, &server_names),
        Some(Command::Serve(args)) => {
            // The configuration says how many threads the runtime gets.
            serve_config(*args).and_then(|config| runtime(config.worker_threads).and_then(|rt| rt.block_on(serve(config))))
        }
        Some(Command::Demo(args)) => runtime(DEFAULT_WORKER_THREADS).and_then(|rt| rt.block_on(run_demo(args))),
        Some(Command::Publish(args)) => runtime(2).and_then(|rt| rt.block_on(run_publish(*args))),
        None => runtime(DEFAULT_WORKER_THREADS).and_then(|rt| {
            rt.block_on(run_demo(DemoArgs {
                persons: 100_000,
                seed: 1,
                dir: None,
                listen: "127.0.0.1:4433".parse().expect("constant address"),
                metrics: "127.0.0.1:0".parse().expect("constant address"),
            }))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eligd: {}", elig_loader::cli::report(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// 2 for arguments, settings and input, 3 for a refused batch, else 1.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<PublishRefused>().is_some() {
        return 3;
    }
    let settings = e.downcast_ref::<elig_server::config::ConfigError>().is_some() || e.downcast_ref::<CliError>().is_some();
    if settings {
        2
    } else {
        1
    }
}

/// `eligd publish`: each batch checked as rows, then published in seq order.
async fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    let batches = elig_client::cli::read_batches(&args.files)?;
    let names = StreamNames { servers: args.nats, stream: args.stream, subject_prefix: args.subject_prefix };
    let js = jetstream::connect(&names).await?;
    let mut stream = jetstream::ensure_stream(&js, &names, args.replicas).await?;
    let node = match &args.node {
        Some(addr) => Some(Client::connect(&args.conn.node(Some(addr))?).await?),
        None => None,
    };
    let mut publisher = jetstream::Publisher::new(&mut stream, &names).await?;
    let mut stdout = std::io::stdout().lock();
    for (file, text) in batches {
        let refused = |e: &dyn std::fmt::Display| anyhow::Error::new(PublishRefused(format!("{}: {e}", file.display())));
        let checked = match &node {
            Some(n) if !args.replace => Some(publish::dry_run(n, &mut stream, &names, &text).await.map_err(|e| refused(&e))?),
            _ => None,
        };
        let published = if args.replace {
            jetstream::replace(&js, &mut stream, &names, &text).await
        } else {
            publisher.publish(&js, &mut stream, &names, &text).await
        }
        .map_err(|e| refused(&e))?;
        let applied = match args.wait {
            0 => None,
            n => Some(
                publish::wait_applied(
                    &mut stream,
                    published.seq,
                    published.stream_sequence,
                    n,
                    std::time::Duration::from_secs(args.wait_secs),
                )
                .await
                .map_err(|e| refused(&e))?,
            ),
        };
        let line =
            serde_json::json!({"file": file.display().to_string(), "published": published, "checked": checked, "applied_on": applied});
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colour only for a person at a terminal, never in a file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime(worker_threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(worker_threads);
        b
    };
    builder.enable_all().build().context("starting the tokio runtime")
}

fn certs(out: &std::path::Path, institution: &str, names: &[String]) -> anyhow::Result<()> {
    let role = elig_server::core::role::Role::from_uri(&format!("urn:elig:role:institution:{institution}")).map_err(|e| {
        elig_server::config::ConfigError::Invalid { key: "--institution", value: institution.into(), reason: e.to_string() }
    })?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let pki = DevPki::generate(role.institution().unwrap_or(institution), &names)?;
    for f in pki.write(out)? {
        println!("{}", f.display());
    }
    Ok(())
}

fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    Ok(file.overridden_by(args.settings).validate()?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let options = EngineOptions { lock_memory: config.lock_memory, residency: config.residency, memory_limit: config.memory_limit };
    // A new node with an empty directory: the newest snapshot from the store
    // first (it becomes the live snapshot record that opening reads).
    if let Some(feed) = &config.feed {
        let stop = CancellationToken::new();
        stop_on_signals(stop.clone());
        snapshots::join(feed, &config.snapshot_dir, &config.delta_log, &stop).await;
        if stop.is_cancelled() {
            return Ok(());
        }
    }
    let engine = open_engine(config.snapshot_dir.clone(), config.delta_log.clone(), options).await?;
    let server = Server::start(&config, engine).await?;
    if let Some(m) = server.metrics_addr() {
        tracing::info!(%m, "metrics on http://{m}/metrics");
    }
    stop_on_signals(server.stop_token());
    server.run().await;
    Ok(())
}

/// Open the snapshot (or the one last swapped in) and replay the delta log,
/// off the async runtime: it verifies and pre-faults the whole snapshot.
async fn open_engine(snapshot: PathBuf, delta_log: PathBuf, options: EngineOptions) -> anyhow::Result<Arc<Engine>> {
    let opened = tokio::task::spawn_blocking(move || {
        let o = state::open_engine(&snapshot, &delta_log, options)?;
        state::log_opened(&o, &delta_log);
        Ok::<_, state::StartError>(o)
    })
    .await
    .context("opening the snapshot")??;
    Ok(Arc::new(opened.engine))
}

fn stop_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    // A port in use is found now, not after a minute of generating data.
    // (Probed, then freed for the server: another process could take it in
    // between, and the server would then say so.)
    if args.listen.port() != 0 {
        std::net::UdpSocket::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    }
    if args.metrics.port() != 0 {
        std::net::TcpListener::bind(args.metrics).with_context(|| format!("cannot serve metrics on {}", args.metrics))?;
    }
    let (dir, _tmp) = match args.dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            (d, None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("elig-demo-").tempdir().context("creating a temporary directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let today = elig_engine::ids::japan_now().0;
    eprintln!("eligd demo: generating {} persons and compiling a snapshot in {} ...", args.persons, dir.display());
    let snapshot_dir = dir.join("snapshot");
    let snapshot = if snapshot_dir.join("manifest.json").is_file() {
        eprintln!("eligd demo: reusing the snapshot in {}", snapshot_dir.display());
        snapshot_dir
    } else {
        let (persons, seed, d) = (args.persons, args.seed, dir.clone());
        tokio::task::spawn_blocking(move || demo::synthetic_snapshot(&d, persons, seed, today)).await??
    };
    let engine = open_engine(snapshot.clone(), dir.join(elig_server::config::DEFAULT_DELTA_LOG), EngineOptions::default()).await?;
    let examples = demo::examples(&engine.pin(), today);
    let samples = {
        let (d, gen, inst) = (dir.clone(), engine.pin(), examples.institution.clone());
        tokio::task::spawn_blocking(move || demo::samples(&d, &gen, today, &inst)).await??
    };
    let prepared = demo::prepare(&dir, snapshot, &examples.institution, args.listen, Some(args.metrics))?;
    let server = Server::start(&prepared.config, engine).await?;
    let elig = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("elig")))
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "cargo run -q -p elig-server --bin elig --".to_string());
    // The instructions are for a person; a closed standard output must not stop the server.
    let text = demo::instructions(&prepared, &examples, &samples, server.local_addr(), server.metrics_addr(), args.persons, &elig);
    let mut out = std::io::stdout();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    stop_on_signals(server.stop_token());
    server.run().await;
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
