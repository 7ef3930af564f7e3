//! One request stream: the QUIC driver of the request machine. It reads
//! what the machine asks for, sends what it wrote, runs the operator jobs
//! it hands out (the blocking ones on tokio's blocking pool), and decides
//! only about I/O: when to write, when to yield, how long to wait.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use elig_client::frames::fill;
use elig_wire::codes;
use elig_wire::reader::FrameReader;
use quinn::{RecvStream, SendStream, VarInt};

use super::shared::{OnWorker, Recorder, Shared};
use crate::core::{operator, Ending, Input, Job, Machine, Refusal, Report, Request, Role, Step};
use crate::ops::metrics::{self, Change};

/// How long a finished response waits for the peer's acknowledgement once
/// a shutdown has begun.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(2);

/// Bulk answers are written in batches of up to this much: one write (a
/// connection lock and a driver wake-up) per answer was 18% of a bulk.
const BULK_WRITE_BATCH: usize = 64 << 10;

/// The batch after the first answer, which is written alone (the caller's
/// time to first item); each write doubles it up to [`BULK_WRITE_BATCH`].
const BULK_FIRST_BATCH: usize = 4 << 10;

/// Items a bulk inquiry answers at most before it lets other tasks run:
/// with frames already buffered and room to write, its loop never waits,
/// and on the default single worker thread it would hold up every other
/// request (and the connection driver that sends its answers).
const BULK_YIELD_EVERY: u64 = 64;

/// The peer went away: nothing more can be sent.
struct Gone;

impl From<quinn::WriteError> for Gone {
    fn from(_: quinn::WriteError) -> Gone {
        Gone
    }
}

/// Serve one request stream.
pub(super) async fn request(shared: Arc<Shared>, role: Role, peer: SocketAddr, worker: usize, mut send: SendStream, mut recv: RecvStream) {
    let started = Instant::now();
    shared.requests_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let clock = shared.clock();
    let mut machine = Machine::new(&shared.engine, &role, &shared.limits, clock).not_ready(shared.not_ready());
    let mut recorder = Recorder { shared: &shared, role: &role, peer, now: clock.now };
    let mut job_ran = false;
    let io = Io { shared: &shared, peer, worker, send: &mut send, recv: &mut recv, job_ran: &mut job_ran };
    match drive(&mut machine, &mut recorder, io).await {
        Ok(Ending::Answered) => {}
        Ok(Ending::Refused(r)) => {
            metrics::protocol_error(r.code);
            tracing::debug!(%peer, code = r.code, message = %r.message, "request refused");
            // Refused before its job (role, payload): counted as the job's refusals are.
            match machine.label().request {
                Some(Request::Delta) if !job_ran => refused_change(true, &r, peer),
                Some(Request::Swap) if !job_ran => refused_change(false, &r, peer),
                _ => {}
            }
            // Whatever else the client sends on this stream is not read.
            let _ = recv.stop(VarInt::from_u32(0));
        }
        Err(Gone) => machine.gone(),
    }
    // The end of the stream right after the last frame (clients read on to
    // it), so it can leave in the same datagram.
    let _ = send.finish();
    metrics::request(machine.label(), started.elapsed().as_secs_f64());
    // Let the peer receive everything before the task (and a shutdown) ends.
    // During a shutdown a peer that never acknowledges gets a short grace.
    let shutdown_grace = async {
        shared.stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_ACK_WAIT).await;
    };
    tokio::select! {
        _ = tokio::time::timeout(shared.limits.idle_timeout(), send.stopped()) => {}
        _ = shutdown_grace => {}
    }
}

struct Io<'a> {
    shared: &'a Arc<Shared>,
    peer: SocketAddr,
    /// The worker serving the stream.
    worker: usize,
    send: &'a mut SendStream,
    recv: &'a mut RecvStream,
    job_ran: &'a mut bool,
}

/// Run the machine to the end of the request.
async fn drive(machine: &mut Machine<'_>, recorder: &mut Recorder<'_>, io: Io<'_>) -> Result<Ending, Gone> {
    let Io { shared, peer, worker, send, recv, job_ran } = io;
    let mut reader = FrameReader::new();
    // An answer is about 1.1-1.2 KB: start above it, so it is not regrown.
    let mut out = Vec::with_capacity(2048);
    // Items answered since this task last let others run.
    let mut items = 0u64;
    // What the output may hold before it is sent while the next frame is
    // already buffered: nothing at first, so the first answer leaves at once.
    let mut batch = 0;
    let mut step = Step::Read;
    loop {
        step = match step {
            Step::Read => {
                let in_bulk = machine.skipping().is_some();
                if in_bulk {
                    if items >= BULK_YIELD_EVERY {
                        tokio::task::yield_now().await;
                        items = 0;
                    }
                    items += 1;
                }
                // Answers stream as computed: what is held is sent unless
                // the next frame is already here and the batch has room.
                if !out.is_empty() && (!reader.has_frame() || out.len() >= batch) {
                    // Handed over whole (no copy into quinn's buffer); the
                    // next batch gets a buffer of its own.
                    let next = if in_bulk { Vec::with_capacity(BULK_WRITE_BATCH + (BULK_WRITE_BATCH >> 2)) } else { Vec::new() };
                    send.write_chunk(bytes::Bytes::from(std::mem::replace(&mut out, next))).await?;
                    if in_bulk {
                        batch = (batch * 2).clamp(BULK_FIRST_BATCH, BULK_WRITE_BATCH);
                        // One thread: the driver sends this only once the
                        // task waits, so let it run now.
                        tokio::task::yield_now().await;
                        items = 0;
                    }
                }
                let input = next_input(machine, &mut reader, recv, shared.limits.frame_timeout()).await?;
                machine.input(input, reader.payload(), &mut out, recorder)
            }
            Step::Job(job) => {
                *job_ran = true;
                let result = run_job(shared, job, peer, worker).await;
                machine.job_done(result, &mut out)
            }
            Step::Wait(seq) => {
                wait_for_seq(&shared.engine, seq, shared.limits.min_seq_wait()).await;
                machine.waited(&mut out, recorder)
            }
            Step::Finish(ending) => {
                if !out.is_empty() {
                    send.write_chunk(bytes::Bytes::from(out)).await?;
                }
                return Ok(ending);
            }
        }
    }
}

/// Wait until the engine shows delta batch `seq`, at most `bound`: woken
/// by each batch or swap the engine publishes, not polled.
async fn wait_for_seq(engine: &elig_engine::engine::Engine, seq: u64, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let advanced = engine.listen_advanced();
        if engine.pin().view().delta_seq >= seq || tokio::time::timeout_at(deadline, advanced).await.is_err() {
            return;
        }
    }
}

/// The next input as the machine reads it, within the frame timeout.
async fn next_input(machine: &Machine<'_>, reader: &mut FrameReader, recv: &mut RecvStream, timeout: Duration) -> Result<Input, Gone> {
    let read = async {
        loop {
            if let Some(input) = machine.decode(reader) {
                return Ok(input);
            }
            fill(reader, recv).await.map_err(|_| Gone)?;
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Ok(Input::Unreadable(Refusal::new(codes::TIMEOUT, format!("no frame within {timeout:?}")))),
    }
}

/// Run an operator job; a delta batch or a swap off the async workers (they
/// fsync, verify and pre-fault), then the engine gauges are updated whatever
/// came of it.
async fn run_job(shared: &Arc<Shared>, job: Job, peer: SocketAddr, worker: usize) -> Result<Report, Refusal> {
    if !job.blocks() {
        return operator::run(&shared.engine, job, &OnWorker { shared, worker });
    }
    let is_delta = matches!(job, Job::Delta(_));
    let is_check = matches!(job, Job::CheckDelta(_));
    let owned = shared.clone();
    let result = match tokio::task::spawn_blocking(move || operator::run(&owned.engine, job, &OnWorker { shared: &owned, worker })).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "an operator request failed inside the server");
            Err(Refusal::new(codes::INTERNAL, format!("the server failed while serving the request: {e}")))
        }
    };
    metrics::engine(&shared.engine.pin());
    match (&result, is_delta) {
        (Ok(Report::Delta(ack)), _) => {
            metrics::delta_batch(if ack.duplicate { Change::Duplicate } else { Change::Done }, ack.rows);
            tracing::info!(%peer, seq = ack.seq, duplicate = ack.duplicate, rows = ack.rows, generation = ack.generation, "delta batch acknowledged");
        }
        (Ok(Report::Swap(r)), _) => {
            metrics::swap(Change::Done);
            tracing::info!(
                %peer, generation = r.generation, previous = r.previous_generation, snapshot = %r.snapshot_dir,
                replayed = r.replayed, total_ms = r.total_ms, "swapped in a new snapshot"
            );
        }
        (Err(r), _) if is_check => tracing::info!(%peer, code = r.code, message = %r.message, "delta batch dry run: refused"),
        (Err(r), is_delta) => refused_change(is_delta, r, peer),
        (Ok(_), _) => {}
    }
    result
}

/// A delta batch or a swap refused: counted and logged.
fn refused_change(is_delta: bool, r: &Refusal, peer: SocketAddr) {
    if is_delta {
        metrics::delta_batch(Change::Refused, 0);
        tracing::info!(%peer, code = r.code, message = %r.message, "delta batch refused");
    } else {
        metrics::swap(Change::Refused);
        tracing::warn!(%peer, code = r.code, message = %r.message, "swap refused; the live snapshot keeps serving");
    }
}
