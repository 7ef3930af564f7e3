//! Whether a snapshot is held in memory, and whether a new one fits.
//!
//! Resident (the default), a snapshot is pre-faulted and, with
//! `lock_memory`, locked: every lookup is answered from memory. That only
//! works while it fits, so a snapshot that does not is refused before it
//! serves: at start with an error, at a swap while the live generation
//! keeps serving. On demand, nothing is pre-faulted or locked: pages come
//! in as lookups touch them and the kernel evicts cold ones, so a snapshot
//! larger than memory serves, a cold record at the cost of a disk read.

/// How a snapshot is held; a wire type, since `status` reports it.
pub use elig_wire::report::Residency;

/// What a resident snapshot must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryLimit {
    /// The kernel's `MemAvailable` (page cache it can reclaim included, the
    /// live snapshot's locked pages not) less [`RESERVE`], when the swap is
    /// asked for. Unknown off Linux: no check.
    #[default]
    Available,
    /// At most this many bytes of snapshots at once: during a swap the live
    /// snapshot and the new one are both mapped.
    Bytes(u64),
}

/// Left for everything but the snapshot: overlay, connections, the delta log.
pub const RESERVE: u64 = 512 << 20;

/// A resident snapshot that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a resident snapshot of {need} bytes does not fit: {available} bytes available ({what}); set residency = \"on_demand\" to serve it from disk, or free memory"
)]
pub struct DoesNotFit {
    pub need: u64,
    pub available: u64,
    pub what: &'static str,
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Whether a new snapshot of `new_bytes` may become resident while
/// `live_bytes` of the live one are still mapped.
pub fn check(residency: Residency, limit: MemoryLimit, new_bytes: u64, live_bytes: u64) -> Result<(), DoesNotFit> {
    if residency == Residency::OnDemand {
        return Ok(());
    }
    match limit {
        MemoryLimit::Bytes(n) => {
            let need = new_bytes + live_bytes;
            if need > n {
                return Err(DoesNotFit { need, available: n, what: "memory_limit_bytes, the live snapshot included" });
            }
        }
        MemoryLimit::Available => {
            if let Some(avail) = mem_available() {
                let available = avail.saturating_sub(RESERVE);
                if new_bytes > available {
                    return Err(DoesNotFit { need: new_bytes, available, what: "MemAvailable less 512 MiB kept for the rest" });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_counts_the_live_snapshot_and_on_demand_always_fits() {
        assert!(check(Residency::Resident, MemoryLimit::Bytes(100), 60, 40).is_ok());
        let e = check(Residency::Resident, MemoryLimit::Bytes(100), 60, 41).unwrap_err();
        assert_eq!((e.need, e.available), (101, 100));
        assert!(e.to_string().contains("on_demand"), "{e}");
        assert!(check(Residency::OnDemand, MemoryLimit::Bytes(1), 60, 41).is_ok());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn available_memory_is_read_and_bounds_a_resident_snapshot() {
        let avail = mem_available().expect("/proc/meminfo has MemAvailable");
        assert!(avail > 0);
        assert!(check(Residency::Resident, MemoryLimit::Available, 1 << 20, 0).is_ok());
        assert!(check(Residency::Resident, MemoryLimit::Available, avail * 2, 0).is_err());
    }
}
