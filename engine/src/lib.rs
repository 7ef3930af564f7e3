//! The lookup engine of the eligibility verification tier.
//!
//! A snapshot is a directory of rkyv archives ([`envelope`], [`model`],
//! [`index`], [`manifest`]) mapped with memmap2 ([`mapped`], the one module
//! with `unsafe`) or held in memory ([`source`]); [`lookup`] answers [`query`] documents with the real
//! system's validity codes as [`answer`] documents.

pub mod answer;
mod coded;
pub mod day;
pub mod delta;
pub mod delta_log;
pub mod digits;
pub mod engine;
pub mod entry;
pub mod envelope;
pub mod hints;
pub mod id;
pub mod ids;
pub mod index;
pub mod kana;
pub mod keys;
pub mod lookup;
pub mod manifest;
pub mod mapped;
pub mod model;
pub mod overlay;
pub mod query;
pub mod rare;
pub mod render;
pub mod reply;
pub mod residency;
pub mod rows;
pub mod snapshot;
pub mod source;
pub mod table;
pub mod values;
