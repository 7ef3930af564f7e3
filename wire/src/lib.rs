//! The `elig/1` wire protocol, as plain code over bytes (no tokio, no
//! quinn): what the server, the client library and the load generator
//! share.
//!
//! - [`frame`]: the frame layout, frame kinds, encoding and decoding;
//! - [`reader`]: the one incremental frame reader (bytes in, frames out);
//! - [`request`]: payloads a client sends; [`report`]: payloads a server
//!   reports with (bulk summary, delta ack, swap result, status, usage);
//! - [`answer`]: the answer documents (the engine fills them);
//! - [`codes`]: every error code;
//! - [`message`]: the one-line error report every binary prints.
#![forbid(unsafe_code)]

pub mod answer;
pub mod codes;
pub mod frame;
pub mod message;
pub mod reader;
pub mod report;
pub mod request;

pub use frame::{Frame, FrameError, Kind, ALPN, HEADER_LEN};
