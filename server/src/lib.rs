//! `eligd` and `elig`: the lookup engine served over QUIC (quinn + rustls,
//! TLS 1.3, client certificates), with the client library and CLI.
//!
//! - [`protocol`]: the frame codec (plain code over bytes).
//! - [`handler`]: the sans-IO request handler (generation, role, request).
//! - [`admission`]: which connection attempts get a handshake (Initial floods);
//!   [`initial_filter`]: the socket that drops the Initials it ignores.
//! - [`roles`], [`certs`], [`tls`]: roles from certificates, the dev PKI,
//!   rustls configurations.
//! - [`config`]: TOML configuration with command-line overrides.
//! - [`server`], [`stream`]: the quinn glue; [`client`]: the client library;
//!   [`cli`]: settings and output of the `elig` command line.
//! - [`usage`], [`audit`], [`metrics`]: operations.
//! - [`state`]: the delta log and the live snapshot record across restarts.
//! - [`demo`]: `eligd demo`; [`xml`]: the `XmlMsg` rendering.
#![forbid(unsafe_code)]

pub mod admission;
pub mod audit;
pub mod bench;
pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod feed;
pub mod handler;
pub mod initial_filter;
pub mod jetstream;
pub mod metrics;
pub mod protocol;
pub mod roles;
pub mod server;
pub mod state;
pub mod stream;
pub mod tls;
pub mod udp;
pub mod usage;
pub mod xml;
