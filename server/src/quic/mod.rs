//! QUIC: the endpoint, TLS and the roles of client certificates, limits
//! and admission of connection attempts, and the stream task that drives
//! the request machine of [`crate::core`].
//!
//! - [`server`]: endpoint, accept loop, connections; [`stream`]: one
//!   request stream; [`frames`]: the wire's frame reader on quinn streams.
//! - [`admission`]: which connection attempts get a handshake (Initial
//!   floods); [`initial_filter`]: the socket that drops the Initials it ignores.
//! - [`tls`]: rustls configurations; [`udp`]: socket buffers, MTU.

pub mod admission;
pub mod frames;
pub mod initial_filter;
pub mod server;
mod stream;
pub mod tls;
pub mod udp;

pub use server::{Server, ServerError};
