//! The client of `eligd`: one QUIC connection with a client certificate,
//! many requests on it concurrently, and the `elig` command line with its
//! `XmlMsg` rendering. It depends on the wire protocol (`elig-wire`) and
//! nothing of the server, the loader or the engine: the central system's
//! engineers build on this crate alone.
//!
//! - [`connection`]: [`Client`], its options and errors, bulk and ticket streams;
//! - [`failover`]: [`Tier`](failover::Tier), several nodes, requests spread over them and retried on another;
//! - [`frames`]: the wire's frame reader on quinn streams;
//! - [`tls`]: PEM certificates and keys, the client's rustls configuration;
//! - [`udp`]: socket buffers, the largest datagram, MTU discovery;
//! - [`cli`]: what the `elig` command line needs (settings, input, output);
//!   [`xml`]: the `XmlMsg` rendering and its reader.
#![forbid(unsafe_code)]

pub mod cli;
pub mod connection;
pub mod failover;
pub mod frames;
pub mod tls;
pub mod udp;
pub mod xml;

pub use connection::{BulkResults, Client, ClientError, ClientOptions, TicketResults};
pub use elig_wire as wire;
pub use failover::{Tier, TierOptions};
