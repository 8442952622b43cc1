//! Receive buffers for Fetch responses, recycled.
//!
//! A Fetch response is read into a buffer of exactly its size, and the batches kferry
//! forwards are views into it until the target acknowledges them. A fresh allocation per
//! response costs more than it looks: the allocator hands multi-megabyte blocks back to the
//! kernel when they are freed and maps new ones for the next response, so the kernel's copy
//! into every fresh page takes a page fault (16 % of kferry's CPU in a profile of workload A,
//! see docs/benchmarks.md). Here the buffer goes back to its connection's pool when the last
//! view of it is dropped ([`Bytes::from_owner`]), and the next response is read into it.
//!
//! The pool keeps at most [`POOL_BYTES`] of idle buffers; the buffers in use are bounded by
//! the route's `buffer.memory`.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Idle buffer bytes a pool keeps.
pub const POOL_BYTES: usize = 32 * 1024 * 1024;

/// A connection's idle receive buffers.
#[derive(Default)]
pub struct RecvPool {
    idle: Mutex<Vec<Vec<u8>>>,
}

impl RecvPool {
    /// An empty buffer with room for `size` bytes: a recycled one if one is big enough, the
    /// most recently returned first (its pages are the likeliest still in the CPU's cache, so
    /// the kernel's copy into it and the copy out to the target socket both run faster).
    pub fn take(&self, size: usize) -> Vec<u8> {
        let recycled = {
            let mut idle = self.idle.lock().expect("pool lock");
            let fits = idle.iter().rposition(|b| b.capacity() >= size);
            fits.map(|i| idle.remove(i))
        };
        recycled.unwrap_or_else(|| Vec::with_capacity(capacity_for(size)))
    }

    /// Freezes a filled buffer into `Bytes` that return it to this pool when the last view
    /// of it is dropped.
    pub fn freeze(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Recycled {
            buf,
            pool: Arc::downgrade(self),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut idle = self.idle.lock().expect("pool lock");
        let held: usize = idle.iter().map(Vec::capacity).sum();
        if held + buf.capacity() <= POOL_BYTES {
            idle.push(buf);
        } else if let Some(smallest) = idle
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)
            .filter(|&i| idle[i].capacity() < buf.capacity())
        {
            // Keep the larger buffer: it fits more responses.
            let freed = idle[smallest].capacity();
            if held - freed + buf.capacity() <= POOL_BYTES {
                idle.remove(smallest);
                idle.push(buf); // the latest returned stays last (reused first)
            }
        }
    }

    /// Idle buffers and their total capacity (for tests and metrics).
    pub fn idle(&self) -> (usize, usize) {
        let idle = self.idle.lock().expect("pool lock");
        (idle.len(), idle.iter().map(Vec::capacity).sum())
    }
}

/// The capacity of a fresh buffer for a `size`-byte frame: rounded up to a sixteenth of the
/// next power of two (at most 12.5 % more), so that the next response, a few bytes larger
/// than this one as Fetch responses of one route usually are, fits in it when it comes back.
/// Exact capacities made almost every multi-megabyte response miss the pool.
fn capacity_for(size: usize) -> usize {
    if size < 4096 {
        return size;
    }
    let granule = size.next_power_of_two() / 16;
    size.div_ceil(granule) * granule
}

struct Recycled {
    buf: Vec<u8>,
    pool: std::sync::Weak<RecvPool>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_view_is_dropped() {
        let pool = Arc::new(RecvPool::default());
        let mut buf = pool.take(1000);
        let first = buf.as_ptr();
        buf.extend_from_slice(&[7u8; 1000]);
        let bytes = pool.freeze(buf);
        let view = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.idle().0, 0, "a view still holds it");
        assert_eq!(&view[..], &[7u8; 10]);
        drop(view);
        assert_eq!(pool.idle().0, 1);
        let again = pool.take(800);
        assert_eq!(again.as_ptr(), first, "the same memory is reused");
        assert!(again.is_empty());
    }

    #[test]
    fn a_slightly_larger_response_fits_a_returned_buffer() {
        let pool = Arc::new(RecvPool::default());
        let buf = pool.take(5_279_547);
        let first = buf.as_ptr();
        assert!(buf.capacity() <= 5_279_547 + 5_279_547 / 8);
        drop(pool.freeze(buf));
        let again = pool.take(5_286_308);
        assert_eq!(again.as_ptr(), first, "the returned buffer is reused");
        for size in [0, 1, 4095, 4096, 4097, 65_537, 1 << 20, (1 << 20) + 1, 100_000_000] {
            let c = capacity_for(size);
            assert!(c >= size && c <= size + size / 8, "{size} -> {c}");
        }
    }

    #[test]
    fn the_most_recently_returned_buffer_is_reused_first() {
        let pool = Arc::new(RecvPool::default());
        let (a, b, c) = (pool.take(1000), pool.take(1000), pool.take(10));
        let b_ptr = b.as_ptr();
        drop(pool.freeze(a));
        drop(pool.freeze(b));
        drop(pool.freeze(c));
        // c came back last but is too small; b is the latest that fits.
        let again = pool.take(500);
        assert_eq!(again.as_ptr(), b_ptr);
        assert_eq!(pool.idle().0, 2);
    }

    #[test]
    fn the_pool_keeps_at_most_its_byte_cap() {
        let pool = Arc::new(RecvPool::default());
        let views: Vec<Bytes> = (0..6).map(|_| pool.freeze(pool.take(POOL_BYTES / 4))).collect();
        drop(views);
        let (count, bytes) = pool.idle();
        assert_eq!(count, 4);
        assert!(bytes <= POOL_BYTES);
    }

    #[test]
    fn a_small_idle_buffer_is_not_used_for_a_large_frame() {
        let pool = Arc::new(RecvPool::default());
        drop(pool.freeze(pool.take(100)));
        let big = pool.take(10_000);
        assert!(big.capacity() >= 10_000);
        assert_eq!(pool.idle().0, 1, "the small one stays idle");
    }
}
