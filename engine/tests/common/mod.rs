//! Shared by the engine's integration tests: the checked-in golden
//! snapshot of this build's format, held in memory.

use std::path::Path;

use elig_engine::engine::Engine;
use elig_engine::envelope::FORMAT_VERSION;
use elig_engine::snapshot::Snapshot;
use elig_engine::source::MemoryFiles;

/// An engine over `loader/tests/golden/vN` (60 generated persons), read into memory.
pub fn engine() -> Engine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../loader/tests/golden/v{FORMAT_VERSION}"));
    let files: MemoryFiles = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| {
            let path = f.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    Engine::from_snapshot(Snapshot::from_memory(Path::new("golden"), &files).unwrap())
}
