//! The live engine: one [`Generation`] behind an `ArcSwap`. A request loads
//! it once and answers everything (a whole bulk inquiry included) from that
//! generation, so a concurrent swap never mixes two generations in one answer.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::lookup::View;
use crate::snapshot::{Snapshot, SnapshotError};

/// A snapshot plus the deltas applied on top of it.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Snapshot,
}

impl Generation {
    pub fn view(&self) -> View<'_> {
        View::new(&self.snapshot)
    }

    pub fn id(&self) -> u64 {
        self.snapshot.generation()
    }
}

#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Generation>,
}

impl Engine {
    /// Open, verify and pre-fault a snapshot directory.
    pub fn open(dir: &Path) -> Result<Engine, SnapshotError> {
        let snapshot = Snapshot::load(dir)?;
        snapshot.prefault();
        Ok(Engine::from_snapshot(snapshot))
    }

    pub fn from_snapshot(snapshot: Snapshot) -> Engine {
        Engine { current: ArcSwap::from_pointee(Generation { snapshot }) }
    }

    /// The live generation; hold the `Arc` for the whole request.
    pub fn pin(&self) -> Arc<Generation> {
        self.current.load_full()
    }
}
