//! The load generator capacity planners run against `eligd` (binary
//! `elig-bench`).
//!
//! Keys come from a snapshot or an export ([`crate::keys`], the drawer the
//! criterion benches use too); a mix of key kinds is
//! asked by `concurrency` requests in flight on each of `connections`
//! connections, for a duration or a request count, as single lookups (and
//! delegated-ticket fetches) or as bulk inquiries. Every request's latency
//! goes into an HDR histogram (microseconds); every answer is counted by
//! key kind and outcome (validity code, error code, refusal), so a planner
//! sees what the load consisted of ([`report`]).
//!
//! The bench and the server often share a machine, so the load generator
//! keeps its own CPU and latency small ([`load`]): each connection runs on
//! its own thread and current-thread runtime, and the exchanges
//! ([`exchange`]) speak the `elig/1` frames directly and read only the
//! status fields of each answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_client::{ClientError, ClientOptions};
use elig_server::core::role::{Role, RoleError};

use crate::keys::{KeyError, KeyPlan, KeyPool};

pub mod cpu;
mod exchange;
mod load;
mod mix;
mod report;
mod tally;

pub use crate::keys::{KeyKind, KeySource, Requester};
pub use load::run as load;
pub use mix::{Mix, Sampler};
pub use report::{Latency, Report};
pub use tally::QuicStats;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A bad option value.
    #[error("{option} '{value}': {reason}")]
    Option { option: &'static str, value: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("the client certificate")]
    Role(#[source] RoleError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Internal(String),
}

impl BenchError {
    fn option(option: &'static str, value: &str, reason: impl Into<String>) -> BenchError {
        BenchError::Option { option, value: value.to_string(), reason: reason.into() }
    }

    /// The exit code of `elig-bench`: 2 for arguments, settings and input, 1 for
    /// connection and transport failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Client(ClientError::Tls(_)) => 2,
            BenchError::Client(_) | BenchError::Internal(_) => 1,
            _ => 2,
        }
    }
}

/// Single requests (lookups and delegated-ticket fetches) or bulk inquiries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Single,
    Bulk,
}

/// The `elig-bench` options as given.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Draw keys from this compiled snapshot directory, read-only (this or --export is required).
    #[arg(long, conflicts_with = "export", required_unless_present = "export")]
    pub snapshot: Option<PathBuf>,
    /// Draw keys from this export directory of CSV files instead (default: none, --snapshot).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Weights of the key kinds serial, processing, card, ticket, delegated
    /// [default: serial=40,processing=10,card=40,ticket=10; bulk: card=90,ticket=10].
    #[arg(long)]
    pub mix: Option<String>,
    /// Percent of keys the data does not hold.
    #[arg(long, default_value = "10")]
    pub absent: String,
    /// Keys drawn per kind (as many absent keys are made).
    #[arg(long, default_value_t = 50_000)]
    pub pool: usize,
    /// Requests in flight on each connection.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Connections, each with its own UDP socket.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// How long to measure, e.g. 30s, 2m [default: 10s].
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<String>,
    /// Measure this many requests instead of a duration (default: none, --duration).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Load without measuring first, e.g. 5s.
    #[arg(long, default_value = "0s")]
    pub warmup: String,
    /// single: one lookup per request; bulk: bulk inquiries of --bulk-items items.
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    pub mode: Mode,
    /// Items per bulk inquiry.
    #[arg(long, default_value_t = 10_000)]
    pub bulk_items: usize,
    /// Ask as this institution (central certificate; default: an institution drawn from the data; an institution certificate asks as itself).
    #[arg(long)]
    pub institution: Option<String>,
    /// QualificationConfirmationDate of every query, YYYYMMDD [default: the server's today].
    #[arg(long)]
    pub date: Option<String>,
    /// Give up on a request after this long.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Seed of the key draw and of the sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The server's process id, on this machine: its CPU over the measured phase is reported beside the bench's (default: none, the bench's CPU only).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// When the measured phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    After(Duration),
    Requests(u64),
}

/// Validated bench options.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub source: KeySource,
    pub mix: Mix,
    /// Share of absent keys, 0..=1.
    pub absent: f64,
    pub pool: usize,
    pub concurrency: usize,
    pub connections: usize,
    pub stop: Stop,
    pub warmup: Duration,
    pub mode: Mode,
    pub bulk_items: usize,
    pub institution: Option<String>,
    pub date: Option<u32>,
    /// The date whose month makes a ticket current (`date`, or today in Japan).
    pub today: u32,
    pub timeout: Duration,
    pub seed: u64,
    /// `--server-pid`, checked.
    pub server: Option<cpu::Process>,
}

impl BenchArgs {
    /// Check every option; `today` is the default current date (`YYYYMMDD`).
    pub fn validate(self, today: u32) -> Result<BenchOptions, BenchError> {
        let source = match (self.snapshot, self.export) {
            (Some(s), None) => KeySource::Snapshot(s),
            (None, Some(e)) => KeySource::Export(e),
            _ => return Err(BenchError::Usage("give exactly one of --snapshot DIR and --export DIR".into())),
        };
        let mix = match &self.mix {
            Some(m) => Mix::parse(m)?,
            None => Mix::default_for(self.mode),
        };
        let absent = self.absent.trim().trim_end_matches('%');
        let absent = match absent.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => p / 100.0,
            _ => return Err(BenchError::option("--absent", &self.absent, "must be a percentage between 0 and 100")),
        };
        let count = |option: &'static str, v: usize, max: usize| {
            if v == 0 || v > max {
                return Err(BenchError::option(option, &v.to_string(), format!("must be between 1 and {max}")));
            }
            Ok(v)
        };
        let stop = match (self.duration, self.requests) {
            (_, Some(0)) => return Err(BenchError::option("--requests", "0", "must be at least 1")),
            (None, Some(n)) => Stop::Requests(n),
            (d, _) => Stop::After(duration("--duration", d.as_deref().unwrap_or("10s"), Duration::from_millis(1))?),
        };
        let institution = self
            .institution
            .map(|i| elig_engine::ids::institution_code(&i).map_err(|e| BenchError::option("--institution", &i, e.reason.to_string())))
            .transpose()?;
        let date = self
            .date
            .map(|d| elig_engine::ids::date("--date", &d).map_err(|e| BenchError::option("--date", &d, e.reason.to_string())))
            .transpose()?;
        Ok(BenchOptions {
            source,
            mix,
            absent,
            pool: count("--pool", self.pool, 10_000_000)?,
            concurrency: count("--concurrency", self.concurrency, 100_000)?,
            connections: count("--connections", self.connections, 1_000)?,
            stop,
            warmup: duration("--warmup", &self.warmup, Duration::ZERO)?,
            mode: self.mode,
            bulk_items: count("--bulk-items", self.bulk_items, 1_000_000)?,
            institution,
            date,
            today: date.unwrap_or(today),
            timeout: duration("--timeout", &self.timeout, Duration::from_millis(1))?,
            seed: self.seed,
            server: self
                .server_pid
                .map(|pid| cpu::Process::of(pid).map_err(|e| BenchError::Usage(format!("--server-pid {pid}: {e}"))))
                .transpose()?,
        })
    }
}

/// A duration like `30s`, `500ms`, `2m`, `1h` or a number of seconds; at
/// least `min`, at most a day.
pub fn duration(option: &'static str, text: &str, min: Duration) -> Result<Duration, BenchError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(BenchError::option(option, text, "expected a duration like 30s, 500ms, 2m or 1h")),
    };
    let secs = number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|s| s.is_finite())
        .ok_or_else(|| BenchError::option(option, text, "expected a duration like 30s, 500ms, 2m or 1h"))?;
    let d = Duration::from_secs_f64(secs.min(86_400.0 * 2.0));
    if d < min || d > Duration::from_secs(86_400) {
        return Err(BenchError::option(option, text, format!("must be between {min:?} and 24h")));
    }
    Ok(d)
}

/// The requester the certificate allows.
pub fn requester(role: &Role, institution: Option<&str>) -> Result<Requester, BenchError> {
    match role {
        Role::Operator => Err(BenchError::Usage(
            "an operator certificate may not query eligibility; bench with a central or institution certificate (--cert, --key)".into(),
        )),
        Role::Institution(code) => match institution {
            Some(i) if i != code => Err(BenchError::option(
                "--institution",
                i,
                format!("this is the certificate of institution {code}, which may query only as itself"),
            )),
            _ => Ok(Requester::Institution(code.clone())),
        },
        Role::Central => Ok(institution.map_or(Requester::Central, |i| Requester::CentralAs(i.to_string()))),
    }
}

/// The role the server will see in `client`'s certificate.
pub fn role_of(client: &ClientOptions) -> Result<Role, BenchError> {
    let leaf = client.identity.as_ref().and_then(|i| i.chain.first()).ok_or(BenchError::Role(RoleError::NoCertificate))?;
    Role::from_certificate(leaf).map_err(BenchError::Role)
}

/// Draw the keys (reads the whole snapshot or export once).
pub async fn sample(opts: &BenchOptions, requester: Requester) -> Result<Sampler, BenchError> {
    let plan = KeyPlan { source: opts.source.clone(), requester, pool: opts.pool, today: opts.today, date: opts.date, seed: opts.seed };
    let pool = tokio::task::spawn_blocking(move || KeyPool::build(&plan))
        .await
        .map_err(|e| BenchError::Internal(format!("drawing keys: {e}")))??;
    Sampler::new(pool, &opts.mix, opts.absent, opts.mode)
}

/// Run the whole bench: the requester from the certificate, the keys, the load.
pub async fn run(opts: &BenchOptions, client: &ClientOptions) -> Result<Report, BenchError> {
    let requester = requester(&role_of(client)?, opts.institution.as_deref())?;
    let started = Instant::now();
    let sampler = sample(opts, requester.clone()).await?;
    let sampling = started.elapsed();
    let mut report = load(opts, client, Arc::new(sampler)).await?;
    report.requester = requester.to_string();
    report.sampling_secs = sampling.as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn validate(args: &[&str]) -> Result<BenchOptions, BenchError> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).expect("clap accepts the arguments");
        cli.args.validate(20261122)
    }

    #[test]
    fn options_validate_and_errors_name_the_value() {
        let o = validate(&["--snapshot", "s", "--duration", "1.5m", "--absent", "5%", "--concurrency", "64"]).unwrap();
        assert_eq!(o.stop, Stop::After(Duration::from_secs(90)));
        assert_eq!((o.absent, o.concurrency, o.mix), (0.05, 64, Mix::SINGLE));
        assert_eq!(o.today, 20261122);
        let o = validate(&["--export", "e", "--requests", "300", "--mode", "bulk", "--date", "20260401"]).unwrap();
        assert_eq!((o.stop, o.mix, o.today), (Stop::Requests(300), Mix::BULK, 20260401));
        let err = |args: &[&str]| validate(args).unwrap_err().to_string();
        assert_eq!(err(&["--snapshot", "s", "--duration", "3x"]), "--duration '3x': expected a duration like 30s, 500ms, 2m or 1h");
        assert_eq!(err(&["--snapshot", "s", "--warmup", "2d"]), "--warmup '2d': expected a duration like 30s, 500ms, 2m or 1h");
        assert_eq!(err(&["--snapshot", "s", "--absent", "120"]), "--absent '120': must be a percentage between 0 and 100");
        assert_eq!(err(&["--snapshot", "s", "--concurrency", "0"]), "--concurrency '0': must be between 1 and 100000");
        assert!(err(&["--snapshot", "s", "--server-pid", "4294967295"]).contains("--server-pid 4294967295: /proc/4294967295/stat: "));
        let own = std::process::id().to_string();
        assert!(validate(&["--snapshot", "s", "--server-pid", &own]).unwrap().server.is_some());
        assert_eq!(err(&["--snapshot", "s", "--mix", "card=1,tickets=2"]).split(':').next(), Some("--mix 'card=1,tickets=2'"));
        assert!(err(&["--snapshot", "s", "--institution", "3410712363"]).starts_with("--institution '3410712363': "));
        assert!(err(&["--snapshot", "s", "--date", "20261131"]).starts_with("--date '20261131': "));
        assert_eq!(duration("--x", "250ms", Duration::ZERO).unwrap(), Duration::from_millis(250));
        assert_eq!(duration("--x", "0", Duration::ZERO).unwrap(), Duration::ZERO);
        assert!(duration("--x", "25h", Duration::ZERO).is_err());
    }

    #[test]
    fn the_certificate_decides_the_requester() {
        let own = Role::Institution("3410712362".into());
        assert_eq!(requester(&own, None).unwrap(), Requester::Institution("3410712362".into()));
        let e = requester(&own, Some("1310000011")).unwrap_err().to_string();
        assert!(e.starts_with("--institution '1310000011': this is the certificate of institution 3410712362"), "{e}");
        assert_eq!(requester(&Role::Central, None).unwrap(), Requester::Central);
        assert_eq!(requester(&Role::Central, Some("1310000011")).unwrap(), Requester::CentralAs("1310000011".into()));
        assert!(requester(&Role::Operator, None).unwrap_err().to_string().contains("operator certificate may not query"));
    }
}
