//! Answer documents are wire types ([`elig_wire::answer`]): the engine fills
//! them, the server sends them, clients read them without the engine.

pub use elig_wire::answer::*;
