//! Running the load: one thread and current-thread runtime per
//! connection, `concurrency` workers on each, a shared phase (warm-up,
//! measurement, stop) and one tally per worker, merged at the end.
//!
//! Each connection's quinn drivers and workers share a thread, so no
//! request waits for a wake-up from another thread on the client side.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, VarInt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::exchange;
use super::mix::Sampler;
use super::report::Report;
use super::tally::QuicStats;
use super::tally::Tally;
use super::{BenchError, BenchOptions, Mode, Stop};
use elig_client::ClientOptions;

/// When workers measure and when they stop.
#[derive(Debug)]
struct Phase {
    warmup: Duration,
    /// End of the warm-up: set once every connection is up.
    measure_from: OnceLock<Instant>,
    stop: Stop,
    /// Measured requests started so far (request-count mode).
    issued: AtomicU64,
    /// Set when a connection failed or was lost: every worker stops.
    abort: AtomicBool,
}

impl Phase {
    fn measure_from(&self) -> Instant {
        *self.measure_from.get_or_init(|| Instant::now() + self.warmup)
    }

    /// Whether the next request is measured, or `None` when the bench is over.
    fn next(&self) -> Option<bool> {
        if self.abort.load(Ordering::Relaxed) {
            return None;
        }
        // The start first: `now` is then never before it without a warm-up.
        let from = self.measure_from();
        let now = Instant::now();
        if now < from {
            return Some(false);
        }
        match self.stop {
            Stop::After(d) => (now < from + d).then_some(true),
            Stop::Requests(n) => (self.issued.fetch_add(1, Ordering::Relaxed) < n).then_some(true),
        }
    }
}

/// Connect and run the load with keys already drawn.
pub async fn run(opts: &BenchOptions, client: &ClientOptions, sampler: Arc<Sampler>) -> Result<Report, BenchError> {
    let phase = Arc::new(Phase {
        warmup: opts.warmup,
        measure_from: OnceLock::new(),
        stop: opts.stop,
        issued: AtomicU64::new(0),
        abort: AtomicBool::new(false),
    });
    // Every connection is up (or failed) before the clock starts.
    let ready = Arc::new(Barrier::new(opts.connections));
    let mut threads = Vec::with_capacity(opts.connections);
    for index in 0..opts.connections {
        let job = ConnectionJob {
            index,
            options: client.clone(),
            opts: opts.clone(),
            sampler: sampler.clone(),
            phase: phase.clone(),
            ready: ready.clone(),
        };
        let thread = std::thread::Builder::new().name(format!("elig-bench-{index}")).spawn(move || job.run());
        // A thread that cannot start leaves the others waiting at the barrier; the process is out of resources then anyway.
        threads.push(thread.map_err(|e| BenchError::Internal(format!("starting a bench thread: {e}")))?);
    }
    // CPU from the end of the warm-up: read once the first connection set it.
    let meter = {
        let (phase, server) = (phase.clone(), opts.server.clone());
        tokio::spawn(async move {
            while phase.measure_from.get().is_none() && !phase.abort.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep_until(phase.measure_from().into()).await;
            super::cpu::Meter::start(server.as_ref())
        })
    };
    let results = tokio::task::spawn_blocking(move || threads.into_iter().map(|t| t.join()).collect::<Vec<_>>())
        .await
        .map_err(|e| BenchError::Internal(format!("waiting for the bench threads: {e}")))?;
    let mut total = Tally::new(opts.mode == Mode::Bulk)?;
    for result in results {
        let tally = result.map_err(|_| BenchError::Internal("a bench thread panicked".into()))??;
        total.merge(tally)?;
    }
    let mut report = Report::new(opts, &sampler, &total, phase.measure_from(), client.server);
    let meter = meter.await.map_err(|e| BenchError::Internal(format!("reading the CPU time: {e}")))?;
    report.cpu = meter.stop(report.requests, report.items);
    Ok(report)
}

/// A connection as `Client::connect` makes it (same TLS and transport
/// settings), on a socket with the server's default buffers (the kernel
/// caps them at `net.core.rmem_max` / `wmem_max`): the answers of a bulk
/// inquiry arrive faster than a default-sized buffer is drained, and every
/// datagram the kernel drops costs a retransmission and a smaller window.
async fn connect(opts: &ClientOptions) -> Result<(Endpoint, Connection), BenchError> {
    Ok(elig_client::connection::connect_endpoint(opts, Some(elig_server::config::DEFAULT_UDP_BUFFER_BYTES)).await?)
}

/// One connection and its workers, on one thread.
struct ConnectionJob {
    index: usize,
    options: ClientOptions,
    opts: BenchOptions,
    sampler: Arc<Sampler>,
    phase: Arc<Phase>,
    ready: Arc<Barrier>,
}

impl ConnectionJob {
    fn run(self) -> Result<Tally, BenchError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let rt = match rt {
            Ok(rt) => rt,
            Err(e) => {
                self.phase.abort.store(true, Ordering::Relaxed);
                self.ready.wait();
                return Err(BenchError::Internal(format!("starting a bench runtime: {e}")));
            }
        };
        rt.block_on(self.serve())
    }

    async fn serve(self) -> Result<Tally, BenchError> {
        let connected = connect(&self.options).await;
        if connected.is_err() {
            self.phase.abort.store(true, Ordering::Relaxed);
        }
        // Blocks this thread's runtime briefly: nothing else runs on it yet.
        self.ready.wait();
        let (endpoint, conn) = connected?;
        let o = &self.opts;
        let mut tasks = tokio::task::JoinSet::new();
        for slot in 0..o.concurrency {
            let seed = o.seed ^ ((self.index * o.concurrency + slot) as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let worker = Worker {
                conn: conn.clone(),
                sampler: self.sampler.clone(),
                phase: self.phase.clone(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                mode: o.mode,
                bulk_items: o.bulk_items,
                timeout: o.timeout,
            };
            tasks.spawn(worker.run());
        }
        let mut total = Tally::new(o.mode == Mode::Bulk)?;
        while let Some(done) = tasks.join_next().await {
            let tally = done.map_err(|e| BenchError::Internal(format!("a bench task failed: {e}")))??;
            total.merge(tally)?;
        }
        total.quic = QuicStats::of(&conn.stats());
        conn.close(VarInt::from_u32(0), b"bench done");
        endpoint.wait_idle().await;
        Ok(total)
    }
}

/// One request slot: asks, waits, records, until the phase ends.
struct Worker {
    conn: Connection,
    sampler: Arc<Sampler>,
    phase: Arc<Phase>,
    rng: ChaCha8Rng,
    mode: Mode,
    bulk_items: usize,
    timeout: Duration,
}

impl Worker {
    async fn run(mut self) -> Result<Tally, BenchError> {
        let mut tally = Tally::new(self.mode == Mode::Bulk)?;
        let mut scratch = Tally::new(false)?;
        let mut kinds = Vec::new();
        let mut frames = Vec::new();
        while let Some(measured) = self.phase.next() {
            let into = if measured { &mut tally } else { &mut scratch };
            let lost = match self.mode {
                Mode::Single => {
                    let (kind, doc) = self.sampler.pick(&mut self.rng);
                    exchange::single(&self.conn, kind, doc, self.timeout, into).await
                }
                Mode::Bulk => {
                    kinds.clear();
                    frames.clear();
                    exchange::bulk_frames(&self.sampler, &mut self.rng, self.bulk_items, &mut kinds, &mut frames);
                    exchange::bulk(&self.conn, &kinds, &frames, self.timeout, into).await
                }
            };
            if lost {
                self.phase.abort.store(true, Ordering::Relaxed);
                break;
            }
        }
        // Failures during the warm-up are not measured, but shown.
        tally.warmup_failures = scratch.failures();
        if tally.first_failure.is_none() {
            tally.first_failure = scratch.first_failure.take();
        }
        Ok(tally)
    }
}
