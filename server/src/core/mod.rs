//! The core of the server, with no quinn or tokio types: one request
//! machine per stream ([`Machine`]: request kind → reply frames, bulk
//! items, operator jobs; every frame-order rule and every refusal), the
//! answer to one query as the caller's role may ask it, the operator's
//! jobs, roles, and what a request came to ([`Outcome`], [`Label`]).
//!
//! The QUIC stream task (`crate::quic`) and [`local::serve`] (bytes in
//! memory, for tests) drive the same machine.

pub mod local;
pub mod machine;
pub mod operator;
pub mod outcome;
mod query;
pub mod role;

pub use machine::{Ending, Input, Machine, Step};
pub use operator::{Facts, Job, Report};
pub use outcome::{Asked, Label, Outcome, Record, Refusal, Request, Verdict};
pub use role::{Role, RoleError};
