//! The loader: the synthetic export generator, export validation and the
//! snapshot compiler.
#![forbid(unsafe_code)]

pub mod gen;
