//! `elig-loader`: generate, compile, verify and inspect snapshots, and answer
//! queries against one offline. A thin shell over the `elig_loader` and
//! `elig_engine` libraries.
//!
//! Exit codes: 0 success, 1 failure (the message says why), 2 bad usage.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use elig_engine::answer::Status;
use elig_engine::lookup::{Clock, View};
use elig_engine::snapshot::{read_manifest, Snapshot};
use elig_loader::compile::{compile, CompileOptions};
use elig_loader::export::Encoding;
use elig_loader::fold::{fold, FoldOptions};
use elig_loader::gen::{generate, GenOptions};

// mimalloc: answers allocate many small strings, and after a day of deltas
// glibc's fragmented heap made every allocation slower (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "elig-loader", version, about = "Compile nightly eligibility exports into memory-mapped snapshots")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic export with national proportions.
    Gen {
        /// Persons to generate (with their certificates, qualifications, tickets, ...).
        #[arg(long, default_value_t = 100_000)]
        persons: u64,
        /// Seed of the generator: the same seed gives the same export.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Directory to write the CSV files to, created if needed (required).
        #[arg(long)]
        out: PathBuf,
        /// Export date YYYYMMDD (default: today in Japan).
        #[arg(long)]
        today: Option<u32>,
        /// Fraction of persons with injected data defects (shared keys, duplicate identities).
        #[arg(long, default_value_t = 0.0)]
        defect_rate: f64,
    },
    /// Validate an export and compile it into a new snapshot directory; or,
    /// with --base and --deltas, fold a delta log into a new snapshot.
    Compile {
        /// The export directory of CSV files (required unless --base and --deltas fold a delta log).
        #[arg(long, required_unless_present = "deltas", conflicts_with_all = ["base", "deltas"])]
        input: Option<PathBuf>,
        /// The snapshot the delta log applies to (with --deltas; default: none).
        #[arg(long, requires = "deltas")]
        base: Option<PathBuf>,
        /// A delta log to fold into --base (default: none).
        #[arg(long, requires = "base")]
        deltas: Option<PathBuf>,
        /// The new snapshot directory; must not exist (required).
        #[arg(long)]
        out: PathBuf,
        /// Character encoding of the CSV files.
        #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
        encoding: Encoding,
        /// Fail (publishing nothing) when rejected rows exceed this fraction of all rows.
        #[arg(long, default_value_t = 0.001)]
        max_reject_ratio: f64,
        /// Days a lost qualification is kept (default 1826 for a compile;
        /// a fold keeps the base snapshot's).
        #[arg(long)]
        retain_lost_days: Option<u32>,
        /// Snapshot generation (default: creation time YYYYMMDDHHmmss).
        #[arg(long)]
        generation: Option<u64>,
        /// Compile date for retention, YYYYMMDD (default: today in Japan).
        #[arg(long)]
        today: Option<u32>,
        /// Rejected rows file (default: <out>.rejects.csv).
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Threads that work, at least 1 (default: the cores available);
        /// the snapshot, rejects and anomalies are the same for any count.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Check every checksum and archive of a snapshot.
    Verify {
        /// The snapshot directory.
        snapshot: PathBuf,
    },
    /// Print a snapshot's manifest and counts.
    Inspect {
        /// The snapshot directory.
        snapshot: PathBuf,
    },
    /// Upload a snapshot to the snapshot store (a NATS JetStream object store
    /// bucket), verified first, manifest last; the same snapshot again is a no-op.
    Publish {
        /// The snapshot directory.
        snapshot: PathBuf,
        /// NATS server URLs, comma-separated (required).
        #[arg(long)]
        nats: String,
        /// The object store bucket.
        #[arg(long, default_value = elig_loader::store::BUCKET)]
        bucket: String,
        /// Replicas of the bucket when this creates it (3 on a three-server cluster).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Download a snapshot from the snapshot store into DIR/<generation>, verified.
    Fetch {
        /// NATS server URLs, comma-separated (required).
        #[arg(long)]
        nats: String,
        /// The object store bucket.
        #[arg(long, default_value = elig_loader::store::BUCKET)]
        bucket: String,
        /// The generation to fetch (default: the newest in the bucket).
        #[arg(long)]
        generation: Option<u64>,
        /// The directory to download into (required).
        #[arg(long)]
        into: PathBuf,
    },
    /// Answer a query (or JSON Lines of queries) from standard input offline.
    Lookup {
        /// The snapshot directory to answer from (required).
        #[arg(long)]
        snapshot: PathBuf,
        /// Read queries from this file (default: standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Process time YYYYMMDDHHmmss (default: now in Japan).
        #[arg(long)]
        now: Option<u64>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // The reader of our output went away (`... | head`): nothing to report.
        if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
            return;
        }
        eprintln!("error: {}", elig_loader::cli::report(&e));
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Gen { persons, seed, out, today, defect_rate } => {
            let today = today.unwrap_or_else(|| elig_engine::ids::japan_now().0);
            let started = std::time::Instant::now();
            let summary = generate(&GenOptions { persons, seed, today, defect_rate }, &out)
                .with_context(|| format!("generating into {}", out.display()))?;
            for (file, rows) in &summary.rows {
                println!("{file:36} {rows:>12} rows");
            }
            println!("{} persons in {:.1?}", summary.persons, started.elapsed());
        }
        Command::Compile {
            input,
            base,
            deltas,
            out,
            encoding,
            max_reject_ratio,
            retain_lost_days,
            generation,
            today,
            rejects,
            threads,
        } => {
            let threads = threads.map_or_else(elig_loader::compile::default_threads, usize::from);
            if let (Some(base), Some(deltas)) = (base, deltas) {
                let s = fold(&FoldOptions { base, deltas, out, generation, today, retain_lost_days, threads })?;
                println!("snapshot   {} (generation {})", s.out.display(), s.manifest.generation);
                println!("batches    {} applied, delta sequence {}", s.rows_read, s.manifest.delta_seq);
                println!("anomalies  {}", s.anomalies.len());
                print_files(&s.manifest);
                println!("time       {:.1?}", s.elapsed);
                return Ok(());
            }
            let Some(input) = input else { bail!("--input (an export directory) or --base with --deltas is required") };
            if !(0.0..=1.0).contains(&max_reject_ratio) {
                bail!("--max-reject-ratio {max_reject_ratio}: must be between 0 and 1");
            }
            let opts = CompileOptions {
                encoding,
                max_reject_ratio,
                retain_lost_days: retain_lost_days.unwrap_or(CompileOptions::DEFAULT_RETAIN_LOST_DAYS),
                generation,
                today,
                rejects,
                progress: true,
                threads,
                ..CompileOptions::new(input, out)
            };
            let s = compile(&opts)?;
            println!("snapshot   {} (generation {})", s.out.display(), s.manifest.generation);
            println!("rows read  {}", s.rows_read);
            println!("rejected   {} (see {})", s.rejected, s.rejects_file.display());
            for (reason, n) in s.reject_reasons.iter().take(20) {
                println!("  {n:>10}  {reason}");
            }
            println!("dropped    {} lost qualifications past retention", s.dropped_by_retention);
            println!("anomalies  {} (see {}/anomalies.csv)", s.anomalies.len(), s.out.display());
            print_files(&s.manifest);
            println!("time       {:.1?}", s.elapsed);
        }
        Command::Verify { snapshot } => {
            let started = std::time::Instant::now();
            let snap = Snapshot::load(&snapshot)?;
            println!(
                "ok: {} generation {}, {} persons, {} bytes verified in {:.1?}",
                snapshot.display(),
                snap.generation(),
                snap.persons(),
                snap.mapped_bytes(),
                started.elapsed()
            );
        }
        Command::Inspect { snapshot } => {
            let m = read_manifest(&snapshot)?;
            println!("format version  {}", m.format_version);
            println!("generation      {}", m.generation);
            println!("created         {}", m.created);
            println!("delta sequence  {}", m.delta_seq);
            println!("persons         {}", m.persons);
            println!("retain lost     {} days", m.retain_lost_days);
            for (k, v) in &m.counts {
                println!("  {k:22} {v:>12}");
            }
            println!("sources:");
            for s in &m.sources {
                println!("  {:36} {:>12} bytes {:>10} rows {:>8} rejected  xxh3 {}", s.file, s.bytes, s.rows, s.rejected, s.checksum);
            }
            print_files(&m);
        }
        Command::Publish { snapshot, nats, bucket, replicas } => {
            let started = std::time::Instant::now();
            let p = runtime()?.block_on(async {
                let store = elig_loader::store::open(&nats, &bucket, Some(replicas)).await?;
                elig_loader::store::publish(&store, &snapshot).await
            })?;
            if p.already {
                println!("generation {} is already in bucket {bucket}: the same snapshot, nothing sent", p.generation);
            } else {
                println!(
                    "published generation {} to bucket {bucket}: {} files, {} bytes in {:.1?}",
                    p.generation,
                    p.files,
                    p.bytes,
                    started.elapsed()
                );
            }
        }
        Command::Fetch { nats, bucket, generation, into } => {
            let started = std::time::Instant::now();
            std::fs::create_dir_all(&into).with_context(|| format!("creating {}", into.display()))?;
            let dir = runtime()?.block_on(async {
                let store = elig_loader::store::open(&nats, &bucket, None).await?;
                elig_loader::store::download(&store, generation, &into).await
            })?;
            println!("fetched and verified {} in {:.1?}", dir.display(), started.elapsed());
        }
        Command::Lookup { snapshot, file, now } => {
            let snap = Snapshot::load(&snapshot)?;
            let clock = now.map(Clock::at).unwrap_or_else(Clock::japan_now);
            let input = match file {
                Some(f) => std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
                None => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v)?;
                    v
                }
            };
            // A UTF-8 byte-order mark (some Windows editors write one) is not part of the query.
            let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&input);
            lookup(&View::new(&snap), input, clock)?;
        }
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn print_files(m: &elig_engine::manifest::Manifest) {
    let shard_bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
    println!("files:");
    println!("  {:36} {:>14} bytes {:>12} records", format!("{} person shards", m.shards.len()), shard_bytes, m.persons);
    for (_, e) in &m.indexes {
        println!("  {:36} {:>14} bytes {:>12} keys", e.file, e.bytes, e.count);
    }
    let total: u64 = shard_bytes + m.indexes.iter().map(|(_, e)| e.bytes).sum::<u64>();
    println!("  {:36} {:>14} bytes", "total", total);
}

/// One JSON document in, one answer out (indented); otherwise JSON Lines in,
/// one answer line per query line (blank lines skipped), and counts on
/// standard error. Answers are rendered straight from the snapshot.
fn lookup(view: &View, input: &[u8], clock: Clock) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut answer = Vec::new();
    if serde_json::from_slice::<serde_json::Value>(input).is_ok() {
        view.render_document(input, clock, &mut answer);
        // Indented as serde_json indents: the rendered bytes re-read, not rebuilt.
        let mut pretty = serde_json::Serializer::pretty(&mut out);
        serde_transcode::transcode(&mut serde_json::Deserializer::from_slice(&answer), &mut pretty)?;
        writeln!(out)?;
        return Ok(());
    }
    let (mut normal, mut errors) = (0u64, 0u64);
    for line in input.lines() {
        let line = line.context("reading query lines")?;
        if line.trim().is_empty() {
            continue;
        }
        answer.clear();
        match view.render_document(line.as_bytes(), clock, &mut answer).status {
            Status::Error => errors += 1,
            Status::Normal => normal += 1,
        }
        answer.push(b'\n');
        out.write_all(&answer)?;
    }
    out.flush()?;
    let n = normal + errors;
    eprintln!(
        "{n} {}: {normal} normal, {errors} {}",
        if n == 1 { "query" } else { "queries" },
        if errors == 1 { "error" } else { "errors" }
    );
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
