//! What a process spent: CPU time and peak memory from `getrusage`, and the report a
//! replication run prints for `kferry bench e2e` to read.

use nix::sys::resource::{getrusage, UsageWho};
use serde::{Deserialize, Serialize};

/// CPU seconds and peak resident memory of this process (all threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub user_cpu_s: f64,
    pub sys_cpu_s: f64,
    /// Peak resident set size over the process's life, in KiB.
    pub max_rss_kib: u64,
    /// Page faults served without I/O (first touch of fresh memory, mostly).
    #[serde(default)]
    pub minor_faults: u64,
    /// Times the process gave up the CPU waiting (for I/O, a lock, a wakeup).
    #[serde(default)]
    pub voluntary_switches: u64,
}

impl Usage {
    /// This process's usage so far.
    pub fn now() -> Usage {
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(r) => {
                let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
                Usage {
                    user_cpu_s: secs(r.user_time()),
                    sys_cpu_s: secs(r.system_time()),
                    max_rss_kib: r.max_rss().max(0) as u64,
                    minor_faults: r.minor_page_faults().max(0) as u64,
                    voluntary_switches: r.voluntary_context_switches().max(0) as u64,
                }
            }
            Err(_) => Usage::default(),
        }
    }

    /// CPU spent since `earlier` (peak RSS stays the process's peak).
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user_cpu_s: self.user_cpu_s - earlier.user_cpu_s,
            sys_cpu_s: self.sys_cpu_s - earlier.sys_cpu_s,
            max_rss_kib: self.max_rss_kib,
            minor_faults: self.minor_faults - earlier.minor_faults,
            voluntary_switches: self.voluntary_switches - earlier.voluntary_switches,
        }
    }

    /// User + system CPU seconds.
    pub fn cpu_s(&self) -> f64 {
        self.user_cpu_s + self.sys_cpu_s
    }
}

/// What one replication run (kferry or the baseline) reports as one JSON line at exit.
///
/// The baseline (`bench-baseline/`) prints the same field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// Records moved.
    pub records: u64,
    /// Key + value bytes of the records moved (the same for every replicator).
    #[serde(default)]
    pub bytes: u64,
    /// Record-batch bytes forwarded (kferry only).
    #[serde(default)]
    pub wire_bytes: u64,
    pub wall_s: f64,
    pub user_cpu_s: f64,
    pub sys_cpu_s: f64,
    pub max_rss_kib: u64,
    /// Heap bytes allocated during the run (kferry only, from its counting allocator).
    #[serde(default)]
    pub allocated_bytes: Option<u64>,
    #[serde(default)]
    pub minor_faults: u64,
    #[serde(default)]
    pub voluntary_switches: u64,
    /// Records the baseline's producer failed to deliver.
    #[serde(default)]
    pub delivery_errors: u64,
}

impl RunReport {
    pub fn cpu_s(&self) -> f64 {
        self.user_cpu_s + self.sys_cpu_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = Usage::now();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let spent = Usage::now().since(&before);
        assert!(spent.cpu_s() > 0.0, "{spent:?}");
        assert!(spent.max_rss_kib > 0);
    }

    #[test]
    fn the_baseline_report_parses() {
        let line = r#"{"records":10,"bytes":2000,"wall_s":1.5,"user_cpu_s":0.5,"sys_cpu_s":0.25,"max_rss_kib":9000,"delivery_errors":0}"#;
        let r: RunReport = serde_json::from_str(line).unwrap();
        assert_eq!(r.records, 10);
        assert_eq!(r.cpu_s(), 0.75);
        assert_eq!(r.allocated_bytes, None);
    }
}
