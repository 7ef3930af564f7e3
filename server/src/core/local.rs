//! The request machine driven from bytes in memory: a whole request
//! stream in, the reply frames out, operator jobs run in place. What the
//! QUIC stream task does, without a network; for tests and tools.

use elig_engine::engine::Engine;
use elig_engine::lookup::Clock;
use elig_wire::frame::{decode_all, Frame, CLIENT_MAX_FRAME};
use elig_wire::reader::FrameReader;
use elig_wire::report::Limits;

use super::machine::{Ending, Machine, Step};
use super::operator::{self, Facts};
use super::outcome::{Label, Outcome};
use super::role::Role;

/// What one request stream came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The reply frames, in order.
    pub frames: Vec<Frame>,
    /// Every answered query, in order.
    pub outcomes: Vec<Outcome>,
    pub ending: Ending,
    pub label: Label,
}

/// Serve the request stream `request` (encoded frames, then the client's
/// end of the stream) as `role` would be served on a connection.
pub fn serve(engine: &Engine, role: &Role, limits: &Limits, clock: Clock, request: &[u8], facts: &dyn Facts) -> Served {
    drive(Machine::new(engine, role, limits, clock), engine, limits, request, facts)
}

/// Drive `machine` (made on `engine` with `limits`) through `request`.
pub fn drive(mut machine: Machine<'_>, engine: &Engine, limits: &Limits, request: &[u8], facts: &dyn Facts) -> Served {
    let mut reader = FrameReader::new();
    let mut rest = request;
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    let mut step = Step::Read;
    let ending = loop {
        step = match step {
            Step::Read => {
                let input = loop {
                    if let Some(input) = machine.decode(&mut reader) {
                        break input;
                    }
                    reader.read_from(&mut rest, usize::MAX);
                };
                machine.input(input, reader.payload(), &mut out, &mut outcomes)
            }
            Step::Job(job) => machine.job_done(operator::run(engine, job, facts), &mut out),
            Step::Wait(seq) => {
                // Another thread may apply the batch meanwhile (a test's feed).
                engine.wait_for_seq(seq, std::time::Instant::now() + limits.min_seq_wait());
                machine.waited(&mut out, &mut outcomes)
            }
            Step::Finish(ending) => break ending,
        }
    };
    // The machine writes whole frames only.
    let frames = decode_all(&out, CLIENT_MAX_FRAME).unwrap_or_default();
    Served { frames, outcomes, ending, label: machine.label() }
}
