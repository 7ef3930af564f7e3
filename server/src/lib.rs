//! `eligd`: the lookup engine served over QUIC (quinn + rustls, TLS 1.3,
//! client certificates). The client library and `elig` are `elig-client`.
//!
//! - [`core`]: the request machine (no quinn or tokio): request kinds,
//!   frame-order rules, refusals, operator jobs, roles, typed outcomes.
//! - [`quic`]: endpoint, streams, TLS, limits and admission, driving core.
//! - [`ops`]: audit, usage, metrics, state across restarts, the delta feed.
//! - [`config`]: the TOML configuration with command-line overrides.
//! - [`dev`]: the development PKI and `eligd demo`.
#![forbid(unsafe_code)]

pub mod config;
pub mod core;
pub mod dev;
pub mod ops;
pub mod quic;
