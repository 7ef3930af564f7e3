//! The one key drawer of the criterion benches and the load generator:
//! keys drawn from a snapshot's records or an export's CSV files
//! ([`draw`]), rendered once into query documents ([`KeyPool`]), present
//! keys and absent keys of the same shape.
//!
//! Present keys are a uniform sample (reservoir sampling, seeded) of the
//! records, whatever their state: lost qualifications, revoked and expired
//! certificates are asked as often as the data holds them, so the answers
//! carry every validity code the data gives. Absent keys have the shape of
//! real ones (a real insurer and symbol with another number, a real payer
//! with another recipient number, ...) and are checked against the data
//! (the snapshot's indexes, or hashes of every key of the export).

mod draw;
mod kind;
mod pool;
mod sample;

pub use draw::KeyError;
pub use kind::{index_key, KeyKind};
pub use pool::{KeyPlan, KeyPool, KeySource, Requester, FALLBACK_INSTITUTION};
pub use sample::{sample_keys, FamilyKeys, Keys, CLINIC};
