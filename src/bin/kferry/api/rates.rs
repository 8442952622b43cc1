//! Each route's throughput over the last sampling interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kferry::Running;

/// How often the forwarded counters are sampled.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Records and bytes per second of one route over `interval`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    pub records_per_sec: f64,
    pub bytes_per_sec: f64,
    pub interval_ms: u64,
}

/// When a route was last sampled, its (records, bytes) totals then, and the rate between
/// its last two samples.
type Sample = (Instant, (u64, u64), Option<Rate>);

/// The last sample of each route.
#[derive(Default)]
pub struct Rates {
    routes: Mutex<HashMap<String, Sample>>,
}

impl Rates {
    /// The rate of `route` over the last interval (None before two samples).
    pub fn get(&self, route: &str) -> Option<Rate> {
        self.lock().get(route).and_then(|(_, _, rate)| *rate)
    }

    /// Takes a sample of every route's forwarded totals at `now`; forgets removed routes.
    pub fn handle_sample(&self, now: Instant, totals: Vec<(String, (u64, u64))>) {
        let mut routes = self.lock();
        let mut next = HashMap::with_capacity(totals.len());
        for (name, (records, bytes)) in totals {
            let rate = routes.remove(&name).and_then(|(at, (r0, b0), _)| {
                let secs = now.duration_since(at).as_secs_f64();
                (secs > 0.0).then(|| Rate {
                    records_per_sec: records.saturating_sub(r0) as f64 / secs,
                    bytes_per_sec: bytes.saturating_sub(b0) as f64 / secs,
                    interval_ms: (secs * 1000.0) as u64,
                })
            });
            next.insert(name, (now, (records, bytes), rate));
        }
        *routes = next;
    }

    /// Samples `running` every [`INTERVAL`] until the future is dropped.
    pub async fn run(&self, running: &Running) {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            let totals = running
                .routes()
                .iter()
                .map(|r| (r.name().to_string(), r.forwarded()))
                .collect();
            self.handle_sample(Instant::now(), totals);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sample>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_the_difference_over_the_interval() {
        let rates = Rates::default();
        let t0 = Instant::now();
        rates.handle_sample(t0, vec![("r".into(), (100, 1000))]);
        assert_eq!(rates.get("r"), None, "one sample is no rate");
        rates.handle_sample(t0 + Duration::from_secs(2), vec![("r".into(), (300, 5000))]);
        let rate = rates.get("r").unwrap();
        assert_eq!(
            (rate.records_per_sec, rate.bytes_per_sec, rate.interval_ms),
            (100.0, 2000.0, 2000)
        );
        rates.handle_sample(t0 + Duration::from_secs(4), vec![]);
        assert_eq!(rates.get("r"), None, "a removed route is forgotten");
    }
}
