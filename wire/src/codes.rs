//! Every error code of the protocol, in one place: the codes of `Error`
//! frames (the request refused as a whole) and the `ProcessingResultCode`
//! of refused queries inside answers. `server/README.md` lists them.

// ---- frames and requests (`Error` frames) ---------------------------------

/// A frame could not be read (truncated, empty stream).
pub const MALFORMED_FRAME: &str = "EF01";
/// A frame is larger than the limit.
pub const FRAME_TOO_LARGE: &str = "EF02";
/// A frame kind this version does not know.
pub const UNKNOWN_KIND: &str = "EF03";
/// A known frame where it does not belong.
pub const UNEXPECTED_FRAME: &str = "EF04";
/// A request payload that does not parse (bulk header, ...).
pub const BAD_PAYLOAD: &str = "EF05";
/// The certificate's role does not allow this request.
pub const PERMISSION: &str = "EP01";
/// A bulk inquiry over the item limit.
pub const BULK_LIMIT: &str = "EL01";
/// A bulk inquiry whose items do not match its declared count.
pub const BULK_COUNT: &str = "EL02";
/// No frame arrived within the idle time.
pub const TIMEOUT: &str = "EL03";
/// A query kind a bulk inquiry does not take.
pub const NOT_IN_BULK: &str = "EB01";
/// A delta batch refused: a line does not parse, validate or apply
/// (the message names the line); nothing of it was applied.
pub const DELTA_INVALID: &str = "ED01";
/// A delta batch refused: its sequence is not the next one (the message
/// names the expected sequence); nothing was applied.
pub const DELTA_GAP: &str = "ED02";
/// A delta batch not acknowledged: it could not be made durable (delta
/// log write failed, or the server runs without a delta log).
pub const DELTA_NOT_DURABLE: &str = "ED03";
/// A delta batch refused: a different batch was applied under its seq
/// (the message names the seq and both digests); nothing was applied.
pub const DELTA_CONFLICT: &str = "ED04";
/// A swap refused: the snapshot cannot be read or does not verify
/// (missing, corrupt, checksum mismatch); the live snapshot keeps serving.
pub const SWAP_INVALID: &str = "ES01";
/// A swap refused: the snapshot has another format version.
pub const SWAP_VERSION: &str = "ES02";
/// A swap refused: its generation is not newer than the live one.
pub const SWAP_NOT_NEWER: &str = "ES03";
/// A swap refused: the live deltas do not carry over onto the snapshot
/// (it lacks folded batches, or a newer batch no longer applies).
pub const SWAP_DELTAS: &str = "ES04";
/// The node is not ready to answer lookups (joining: downloading its
/// snapshot or replaying the stream); retryable, on another node.
pub const NOT_READY: &str = "EN01";
/// The query's `MinimumDeltaSequence` is newer than this node's seq and
/// the feed did not reach it within the bounded wait; retryable (the
/// message names the node's seq). Never an answer from before that seq.
pub const BEHIND: &str = "EN02";
/// The server failed while serving the request (a bug); the request had
/// no effect unless the message says otherwise.
pub const INTERNAL: &str = "EI01";

// ---- refused queries (`ProcessingResultCode` of an answer) -----------------

/// The query document does not parse.
pub const MALFORMED: &str = "EQ01";
/// A field the query format does not have.
pub const UNKNOWN_FIELD: &str = "EQ02";
/// A required field is missing.
pub const MISSING_FIELD: &str = "EQ03";
/// A field's value is invalid (the message names it and why).
pub const INVALID_VALUE: &str = "EQ04";
/// Not exactly one lookup key in the query.
pub const KEY_KIND: &str = "EQ05";
/// The card's certificate is revoked.
pub const CERT_REVOKED: &str = "EC01";
/// The card's certificate is expired or not yet valid.
pub const CERT_NOT_VALID: &str = "EC02";
/// The card's certificate is registered to several persons.
pub const CERT_SEVERAL_PERSONS: &str = "EC03";

/// Application codes a server closes a connection with.
pub mod close {
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// The client certificate carries no usable role.
    pub const NO_ROLE: u32 = 1;
}

#[cfg(test)]
mod tests {
    /// Every code once: two meanings under one code would be a silent bug
    /// for every client that matches on it.
    #[test]
    fn codes_are_distinct() {
        use super::*;
        let all = [
            MALFORMED_FRAME,
            FRAME_TOO_LARGE,
            UNKNOWN_KIND,
            UNEXPECTED_FRAME,
            BAD_PAYLOAD,
            PERMISSION,
            BULK_LIMIT,
            BULK_COUNT,
            TIMEOUT,
            NOT_IN_BULK,
            DELTA_INVALID,
            DELTA_GAP,
            DELTA_NOT_DURABLE,
            DELTA_CONFLICT,
            SWAP_INVALID,
            SWAP_VERSION,
            SWAP_NOT_NEWER,
            SWAP_DELTAS,
            INTERNAL,
            MALFORMED,
            UNKNOWN_FIELD,
            MISSING_FIELD,
            INVALID_VALUE,
            KEY_KIND,
            CERT_REVOKED,
            CERT_NOT_VALID,
            CERT_SEVERAL_PERSONS,
        ];
        let set: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len());
    }
}
