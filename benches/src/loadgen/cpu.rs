//! CPU used while the bench measures: the bench's own process and, with
//! `--server-pid`, the server's, both from `/proc/<pid>/stat` (user and
//! system time of every thread), so a figure comes with what it cost on
//! each side (issue 14: `elig-bench` must not be what limits it).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

/// `/proc` counts CPU time in USER_HZ ticks, which the Linux ABI fixes at 100.
const TICKS_PER_SEC: f64 = 100.0;

/// A process whose CPU time is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    stat: PathBuf,
}

impl Process {
    pub fn this() -> Process {
        Process { stat: PathBuf::from("/proc/self/stat") }
    }

    /// Process `pid`, if `/proc` shows it.
    pub fn of(pid: u32) -> Result<Process, String> {
        let p = Process { stat: PathBuf::from(format!("/proc/{pid}/stat")) };
        p.cpu_secs().map(|_| p)
    }

    /// User plus system CPU seconds so far.
    pub fn cpu_secs(&self) -> Result<f64, String> {
        let text = std::fs::read_to_string(&self.stat).map_err(|e| format!("{}: {e}", self.stat.display()))?;
        cpu_ticks(&text).map(|t| t as f64 / TICKS_PER_SEC).ok_or_else(|| format!("{}: not a stat line", self.stat.display()))
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the
/// process name in parentheses may hold spaces and parentheses itself.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// CPU readings at the start of the measured phase.
#[derive(Debug)]
pub struct Meter {
    at: Instant,
    bench: Option<f64>,
    server: Option<(Process, f64)>,
}

impl Meter {
    pub fn start(server: Option<&Process>) -> Meter {
        Meter {
            at: Instant::now(),
            bench: Process::this().cpu_secs().ok(),
            server: server.and_then(|p| p.cpu_secs().ok().map(|s| (p.clone(), s))),
        }
    }

    /// What was used since the start, for `requests` requests of `items` answers.
    pub fn stop(&self, requests: u64, items: u64) -> CpuReport {
        let wall = self.at.elapsed().as_secs_f64();
        let used = |before: f64, now: Result<f64, String>| now.ok().map(|n| (n - before).max(0.0));
        let bench = self.bench.and_then(|b| used(b, Process::this().cpu_secs()));
        let server = self.server.as_ref().and_then(|(p, s)| used(*s, p.cpu_secs()));
        let cores = |c: Option<f64>| c.filter(|_| wall > 0.0).map(|c| c / wall);
        let per = |c: Option<f64>, n: u64| c.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
        CpuReport {
            wall_secs: wall,
            bench_cores: cores(bench),
            bench_us_per_request: per(bench, requests),
            server_cores: cores(server),
            server_us_per_request: per(server, requests),
            server_us_per_item: per(server, items),
        }
    }
}

/// CPU over the measured phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuReport {
    pub wall_secs: f64,
    pub bench_cores: Option<f64>,
    pub bench_us_per_request: Option<f64>,
    /// With `--server-pid`.
    pub server_cores: Option<f64>,
    pub server_us_per_request: Option<f64>,
    /// Per answer document (a bulk item, a lookup).
    pub server_us_per_item: Option<f64>,
}

impl CpuReport {
    /// The report's `cpu` line.
    pub fn text(&self) -> String {
        let f = |v: Option<f64>, unit: &str| v.map_or_else(|| "?".to_string(), |v| format!("{v:.2}{unit}"));
        let mut s = format!("bench {} ({} a request)", f(self.bench_cores, " cores"), f(self.bench_us_per_request, " µs"));
        if self.server_cores.is_some() {
            s.push_str(&format!(
                "; server {} ({} a request, {} an item)",
                f(self.server_cores, " cores"),
                f(self.server_us_per_request, " µs"),
                f(self.server_us_per_item, " µs")
            ));
        } else {
            s.push_str("; server: give --server-pid");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_line_is_read_past_a_name_with_parentheses() {
        let line = "4242 (eligd (worker) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 1234 567 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_ticks(line), Some(1234 + 567));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(cpu_ticks("no parentheses"), None);
    }

    #[test]
    fn work_done_shows_as_cpu_and_a_missing_process_is_named() {
        let meter = Meter::start(Some(&Process::this()));
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(300);
        while Instant::now() < until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let r = meter.stop(10, 20);
        let bench = r.bench_cores.expect("this process's CPU");
        assert!(bench > 0.0, "{r:?}");
        let per_request = r.server_us_per_request.expect("the server here is this process");
        assert!((r.server_us_per_item.unwrap() * 2.0 - per_request).abs() < 1e-6, "{r:?}");
        assert!(r.text().starts_with("bench ") && r.text().contains("; server "), "{}", r.text());
        let err = Process::of(u32::MAX).unwrap_err();
        assert!(err.starts_with(&format!("/proc/{}/stat: ", u32::MAX)), "{err}");
        assert!(Meter::start(None).stop(1, 1).text().ends_with("server: give --server-pid"));
    }
}
