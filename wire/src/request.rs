//! Payloads a client sends (besides query documents and delta batches,
//! which travel as the bytes the caller wrote), and the `Error` frame's.

use serde::{Deserialize, Serialize};

/// Payload of an `Error` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// Payload of a `BulkBegin` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBegin {
    /// Number of `BulkItem` frames that follow.
    pub items: u64,
}

/// Payload of a `Swap` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// The compiled snapshot directory, an absolute path on the server.
    pub snapshot_dir: String,
}

/// A UTF-8 byte order mark some editors write at the start of a query file:
/// the query parser and the client drop it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";
