//! The memory cap: bytes of fetched data held in memory, per route and for the process.
//!
//! A fetcher reserves room *before* it sends a Fetch (at least one partition's worth,
//! `max.partition.fetch.bytes`, and up to `fetch.max.bytes` if free) and asks the broker for
//! no more than it reserved, so fetching pauses when the cap is reached instead of reading a
//! response it has no room for. When the response is in, each partition's chunk of batches
//! takes its share of the reservation along to the sink, and the rest is given back at once.
//! A chunk's share is released when the target acknowledges the chunk's last batch.
//!
//! Two caps apply: the route's `buffer.memory` and, when set, the process-wide
//! `buffer.memory` at the top of the config, shared by every route. A reservation holds
//! room in both. Room is counted in KiB ([`UNIT`]).
//!
//! One exception keeps replication moving: a single batch larger than the cap is fetched
//! anyway (Kafka returns the first batch whole however small `max_bytes` is, KIP-74), alone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget accounting unit: 1 KiB, so that a `u32` of permits covers any sensible cap.
pub const UNIT: usize = 1024;

/// A cap on buffered bytes.
#[derive(Debug, Clone)]
pub struct Cap {
    room: Arc<Semaphore>,
    units: usize,
}

impl Cap {
    pub fn new(bytes: u64) -> Cap {
        let units = (bytes as usize / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Cap {
            room: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// The cap in bytes.
    pub fn bytes(&self) -> usize {
        self.units * UNIT
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        (self.units - self.room.available_permits().min(self.units)) * UNIT
    }
}

/// The caps a route's fetchers reserve from: its own and, optionally, the process's.
#[derive(Debug, Clone)]
pub struct Budget {
    pub route: Cap,
    pub global: Option<Cap>,
}

/// Reserved room, released when dropped.
#[derive(Debug)]
pub struct Reservation {
    route: OwnedSemaphorePermit,
    global: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// Waits until at least `min` bytes are free in every cap, then takes up to `max` of
    /// what is free. `min` is clamped to the caps, so one oversize batch can still pass.
    pub async fn reserve(&self, min: usize, max: usize) -> Option<Reservation> {
        let smallest = self.global.iter().fold(self.route.units, |u, g| u.min(g.units));
        let min_units = min.div_ceil(UNIT).clamp(1, smallest);
        let max_units = max.div_ceil(UNIT).clamp(min_units, smallest);
        let mut route = self
            .route
            .room
            .clone()
            .acquire_many_owned(min_units as u32)
            .await
            .ok()?;
        let mut global = match &self.global {
            Some(g) => Some(g.room.clone().acquire_many_owned(min_units as u32).await.ok()?),
            None => None,
        };
        let extra = max_units - min_units;
        let free = |cap: &Cap| cap.room.available_permits();
        let take = self
            .global
            .iter()
            .fold(free(&self.route), |f, g| f.min(free(g)))
            .min(extra);
        if take > 0 {
            if let Ok(more) = self.route.room.clone().try_acquire_many_owned(take as u32) {
                match (&self.global, global.as_mut()) {
                    (Some(g), Some(held)) => {
                        if let Ok(more_global) = g.room.clone().try_acquire_many_owned(take as u32) {
                            route.merge(more);
                            held.merge(more_global);
                        }
                    }
                    _ => route.merge(more),
                }
            }
        }
        Some(Reservation { route, global })
    }

    /// Waits for `bytes` more (for a batch larger than what was reserved).
    pub async fn reserve_exact(&self, bytes: usize) -> Option<Reservation> {
        self.reserve(bytes, bytes).await
    }
}

impl Reservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.route.num_permits() * UNIT
    }

    /// Splits off `bytes` (rounded up to whole units), or `None` if fewer are reserved.
    pub fn split(&mut self, bytes: usize) -> Option<Reservation> {
        let units = bytes.div_ceil(UNIT).max(1);
        if units > self.route.num_permits() {
            return None;
        }
        let route = self.route.split(units)?;
        let global = match self.global.as_mut() {
            Some(g) => Some(g.split(units)?),
            None => None,
        };
        Some(Reservation { route, global })
    }

    /// Takes all of this reservation's room, leaving it empty.
    pub fn take_all(&mut self) -> Reservation {
        let units = self.route.num_permits();
        Reservation {
            route: self.route.split(units).expect("a permit splits into its own count"),
            global: self
                .global
                .as_mut()
                .map(|g| g.split(units).expect("both caps hold the same count")),
        }
    }

    /// Adds another reservation's room to this one.
    pub fn merge(&mut self, other: Reservation) {
        self.route.merge(other.route);
        if let (Some(mine), Some(theirs)) = (self.global.as_mut(), other.global) {
            mine.merge(theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(route: u64, global: Option<u64>) -> Budget {
        Budget {
            route: Cap::new(route),
            global: global.map(Cap::new),
        }
    }

    #[tokio::test]
    async fn a_reservation_takes_what_is_free_up_to_max_and_gives_it_back() {
        let b = budget(100 * 1024, None);
        let mut r = b.reserve(10 * 1024, 64 * 1024).await.unwrap();
        assert_eq!(r.bytes(), 64 * 1024);
        assert_eq!(b.route.used(), 64 * 1024);
        let chunk = r.split(1500).unwrap();
        assert_eq!(chunk.bytes(), 2 * 1024);
        assert!(r.split(63 * 1024).is_none(), "only 62 KiB left");
        drop(r);
        assert_eq!(b.route.used(), 2 * 1024, "the chunk still holds its share");
        drop(chunk);
        assert_eq!(b.route.used(), 0);
    }

    #[tokio::test]
    async fn the_global_cap_binds_across_routes() {
        let global = Cap::new(50 * 1024);
        let a = Budget {
            route: Cap::new(40 * 1024),
            global: Some(global.clone()),
        };
        let b = Budget {
            route: Cap::new(40 * 1024),
            global: Some(global.clone()),
        };
        let ra = a.reserve(1024, 40 * 1024).await.unwrap();
        assert_eq!(ra.bytes(), 40 * 1024);
        let rb = b.reserve(1024, 40 * 1024).await.unwrap();
        assert_eq!(rb.bytes(), 10 * 1024, "only what the process cap has left");
        assert_eq!(global.used(), 50 * 1024);
        // A third reservation waits until room is released.
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.reserve(8 * 1024, 8 * 1024).await.map(|r| r.bytes()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "fetching pauses at the cap");
        drop(ra);
        assert_eq!(waiting.await.unwrap(), Some(8 * 1024));
    }

    #[tokio::test]
    async fn a_minimum_above_the_cap_is_clamped_so_an_oversize_batch_passes() {
        let b = budget(16 * 1024, None);
        let r = b.reserve(1 << 20, 1 << 20).await.unwrap();
        assert_eq!(r.bytes(), 16 * 1024);
    }
}
