//! A route's byte-rate limit (`byte.rate.limit`): how many fetched bytes per second the
//! route's fetchers may take from the source, shared by all of them.
//!
//! A token bucket that may go into debt: a fetch's size is only known once it returns, so
//! each fetcher waits until the bucket is not in debt, fetches, then pays for what it got.
//! Over any long interval the route moves at most `rate` bytes per second plus one burst
//! (one second's worth, and at least one fetch). The arithmetic ([`Bucket`]) is sans-I/O
//! and takes the time as an argument.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bucket's arithmetic.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `rate` bytes per second; at most `burst` bytes saved up while idle. Starts full.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Bucket {
        let burst = burst.max(rate).max(1) as f64;
        Bucket {
            rate: rate.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// How long to wait before the next fetch (zero when the bucket is not in debt).
    pub fn delay(&mut self, now: Instant) -> Duration {
        self.refill(now);
        match self.tokens >= 0.0 {
            true => Duration::ZERO,
            false => Duration::from_secs_f64(-self.tokens / self.rate),
        }
    }

    /// Pays for `bytes` fetched.
    pub fn take(&mut self, bytes: usize, now: Instant) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }
}

/// The limit shared by a route's fetchers.
#[derive(Debug)]
pub struct RateLimit {
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    /// `bytes_per_second`, with a burst of one second's worth or `max_fetch` bytes, whichever
    /// is larger.
    pub fn new(bytes_per_second: u64, max_fetch: u64) -> RateLimit {
        RateLimit {
            bucket: Mutex::new(Bucket::new(bytes_per_second, max_fetch, Instant::now())),
        }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the route may fetch again.
    pub async fn ready(&self) {
        loop {
            let delay = self.bucket().delay(Instant::now());
            if delay.is_zero() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Pays for `bytes` fetched.
    pub fn took(&self, bytes: usize) {
        self.bucket().take(bytes, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 1000, t0);
        assert_eq!(b.delay(t0), Duration::ZERO, "starts with one burst");
        b.take(3000, t0);
        assert_eq!(b.delay(t0), Duration::from_secs(2), "2000 bytes of debt at 1000/s");
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(b.delay(t1), Duration::from_millis(500));
        assert_eq!(b.delay(t0 + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn idle_time_saves_at_most_one_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, 4000, t0);
        b.take(4000, t0);
        let later = t0 + Duration::from_secs(60);
        b.take(4000, later);
        assert_eq!(b.delay(later), Duration::ZERO, "a minute idle saves 4000, not 60000");
        b.take(1000, later);
        assert_eq!(b.delay(later), Duration::from_secs(1));
    }

    #[test]
    fn long_run_throughput_is_the_rate_plus_one_burst() {
        // Fetchers that always get 700 bytes, as often as the bucket allows, for 100 s.
        let t0 = Instant::now();
        let mut b = Bucket::new(10_000, 10_000, t0);
        let mut now = t0;
        let mut moved = 0u64;
        while now < t0 + Duration::from_secs(100) {
            now += b.delay(now);
            b.take(700, now);
            moved += 700;
        }
        // The rate for 100 s, one burst, and the fetch that went into debt (plus one more
        // for the rounding of waits to nanoseconds).
        let bound = 10_000 * 100 + 10_000 + 2 * 700;
        assert!(moved <= bound && moved > bound - 3_000, "moved {moved}, bound {bound}");
    }
}
