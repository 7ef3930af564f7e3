//! QUIC: the endpoint, TLS and the roles of client certificates, limits
//! and admission of connection attempts, and the stream task that drives
//! the request machine of [`crate::core`].
//!
//! - [`server`]: endpoint, accept loop, connections; [`stream`]: one
//!   request stream (the frame reader on quinn streams is `elig_client::frames`).
//! - [`admission`]: which connection attempts get a handshake (Initial
//!   floods); [`initial_filter`]: the socket that drops the Initials it ignores.
//! - [`tls`]: rustls configurations; [`udp`]: socket buffers, MTU.
//! - [`workers`]: one endpoint per core, packets steered by connection ID.

pub mod admission;
pub mod initial_filter;
pub mod server;
mod shared;
mod stream;
pub mod tls;
pub mod udp;
pub mod workers;

pub use server::{Server, ServerError};
