//! The loader: the synthetic export generator, export validation and the
//! snapshot compiler.
#![forbid(unsafe_code)]

pub mod cli;
pub mod compile;
pub mod error;
pub mod export;
pub mod fold;
pub mod gen;
pub mod index_builder;
pub mod progress;
pub mod publish;
pub mod stage;
pub mod store;
pub mod writer;
