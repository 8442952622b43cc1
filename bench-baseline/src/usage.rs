//! The one-line JSON report printed at exit: what was moved and what it cost.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use serde::Serialize;

/// The report. CPU and memory are the whole process's (every librdkafka thread included),
/// from `getrusage(RUSAGE_SELF)`, so start-up and the final flush are counted too.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Records forwarded to the target (handed to the producer).
    pub records: u64,
    /// Sum of the key and value lengths of those records.
    pub bytes: u64,
    pub wall_s: f64,
    pub user_cpu_s: f64,
    pub sys_cpu_s: f64,
    pub max_rss_kib: i64,
    /// Records the producer finally failed to deliver; non-zero makes the exit status 1.
    pub delivery_errors: u64,
}

impl Report {
    /// Fills in the resource figures of this process so far.
    pub fn new(records: u64, bytes: u64, wall: Duration, delivery_errors: u64) -> nix::Result<Report> {
        let usage = getrusage(UsageWho::RUSAGE_SELF)?;
        Ok(Report {
            records,
            bytes,
            wall_s: round_ms(wall.as_secs_f64()),
            user_cpu_s: round_ms(seconds(usage.user_time())),
            sys_cpu_s: round_ms(seconds(usage.system_time())),
            // Linux reports ru_maxrss in KiB.
            max_rss_kib: usage.max_rss(),
            delivery_errors,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

fn seconds(t: TimeVal) -> f64 {
    t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_one_json_line_with_every_field() {
        let r = Report::new(3, 30, Duration::from_millis(1500), 0).unwrap();
        let json = r.to_json();
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "records",
            "bytes",
            "wall_s",
            "user_cpu_s",
            "sys_cpu_s",
            "max_rss_kib",
            "delivery_errors",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(v["wall_s"], 1.5);
        assert!(r.max_rss_kib > 0);
    }
}
