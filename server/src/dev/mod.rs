//! Development tools: the PKI of `eligd certs` and the `eligd demo`.

pub mod certs;
pub mod demo;
