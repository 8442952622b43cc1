//! What goes into the next Produce request: per-partition queues of batches, taken one batch
//! per partition per request. No I/O.
//!
//! Kafka accepts one batch per partition in a Produce request (v3+), and a partition's
//! batches must reach the broker in order. Sinks queue their batches to the multiplexer as
//! they get them, so the shared queue often holds several batches of one partition in a row
//! (a sink sends its whole window at once). Cutting requests at the first repeated partition
//! would then send one batch per request; instead every partition keeps its own FIFO here and
//! a request takes the head of each, in the order the partitions became ready, so that a
//! request carries a batch of every partition that has one (up to the request's limits).
//!
//! Bounded by construction: a sink has at most `max_in_flight` batches between sending and
//! acknowledgement, and every batch held here is one of them.
//!
//! References: franz-go `DESIGN.md` (a sink per broker owning a record buffer per partition).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A partition of a Produce request: topic name and partition index.
pub type PartitionKey = (Arc<str>, i32);

/// Batches waiting for a Produce request, one FIFO per partition.
#[derive(Debug)]
pub struct Gather<T> {
    queues: HashMap<PartitionKey, VecDeque<(usize, T)>>,
    /// Every partition with a non-empty queue, exactly once, in the order it became ready.
    ready: VecDeque<PartitionKey>,
}

impl<T> Default for Gather<T> {
    fn default() -> Self {
        Gather {
            queues: HashMap::new(),
            ready: VecDeque::new(),
        }
    }
}

impl<T> Gather<T> {
    /// Queues a batch of `bytes` for `key`, behind that partition's earlier ones.
    pub fn push(&mut self, key: PartitionKey, bytes: usize, item: T) {
        let queue = self.queues.entry(key.clone()).or_default();
        if queue.is_empty() {
            self.ready.push_back(key);
        }
        queue.push_back((bytes, item));
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// True when no batch is held (every held partition is in `ready`).
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// The next request's batches: the oldest batch of each ready partition, at most
    /// `max_partitions` of them, stopping once `max_bytes` is reached (the first batch is
    /// always taken, however large). Partitions left with batches go to the back of the
    /// line, so that no partition waits behind another's whole queue.
    pub fn take_request(&mut self, max_partitions: usize, max_bytes: usize) -> Vec<T> {
        let mut taken = Vec::new();
        let mut again = Vec::new();
        let mut bytes = 0usize;
        while taken.len() < max_partitions.max(1) {
            let Some(key) = self.ready.front() else { break };
            let queue = self.queues.get_mut(key).expect("a ready partition has a queue");
            let size = queue.front().expect("a ready queue is not empty").0;
            if !taken.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            let key = self.ready.pop_front().expect("front checked");
            let (_, item) = queue.pop_front().expect("front checked");
            bytes = bytes.saturating_add(size);
            taken.push(item);
            if queue.is_empty() {
                self.queues.remove(&key);
            } else {
                again.push(key);
            }
        }
        self.ready.extend(again);
        taken
    }

    /// Every batch held, partition by partition (each partition's in order).
    pub fn drain(&mut self) -> Vec<T> {
        self.ready.clear();
        self.queues
            .drain()
            .flat_map(|(_, q)| q.into_iter().map(|(_, t)| t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (Arc::from(topic), partition)
    }

    #[test]
    fn a_request_takes_one_batch_of_every_ready_partition() {
        let mut g = Gather::default();
        // Two sinks sent their whole windows in a row: p0 b0..b2, then p1 b0..b2.
        for b in 0..3 {
            g.push(key("t", 0), 10, (0, b));
        }
        for b in 0..3 {
            g.push(key("t", 1), 10, (1, b));
        }
        assert_eq!(g.take_request(64, 1 << 20), vec![(0, 0), (1, 0)]);
        assert_eq!(g.take_request(64, 1 << 20), vec![(0, 1), (1, 1)]);
        assert_eq!(g.take_request(64, 1 << 20), vec![(0, 2), (1, 2)]);
        assert!(g.is_empty());
        assert!(g.take_request(64, 1 << 20).is_empty());
    }

    #[test]
    fn same_partition_number_of_another_topic_is_another_partition() {
        let mut g = Gather::default();
        g.push(key("a", 0), 1, "a0");
        g.push(key("b", 0), 1, "b0");
        g.push(key("a", 0), 1, "a0'");
        assert_eq!(g.take_request(64, 100), vec!["a0", "b0"]);
        assert_eq!(g.take_request(64, 100), vec!["a0'"]);
    }

    #[test]
    fn limits_cut_the_request_and_the_rest_keeps_its_turn() {
        let mut g = Gather::default();
        for p in 0..4 {
            g.push(key("t", p), 100, p);
        }
        g.push(key("t", 0), 100, 10);
        assert_eq!(g.take_request(2, 1 << 20), vec![0, 1]);
        // Partitions 2 and 3 were waiting longer than partition 0's second batch.
        assert_eq!(g.take_request(64, 250), vec![2, 3]);
        assert_eq!(g.take_request(64, 250), vec![10]);
        assert_eq!(g.len(), 0);
    }

    #[test]
    fn an_oversized_first_batch_still_goes_alone() {
        let mut g = Gather::default();
        g.push(key("t", 0), 5000, 0);
        g.push(key("t", 1), 10, 1);
        assert_eq!(g.take_request(64, 1000), vec![0]);
        assert_eq!(g.take_request(64, 1000), vec![1]);
    }

    #[test]
    fn every_partition_stays_in_order_across_requests() {
        // A deterministic interleaving of 5 partitions with uneven sizes, requests cut while
        // batches keep arriving, then the rest drained by requests.
        let mut g = Gather::default();
        let mut last: HashMap<i32, usize> = HashMap::new();
        let mut got = 0;
        let mut check = |req: Vec<(i32, usize)>| {
            let mut seen = std::collections::HashSet::new();
            assert!(req.iter().all(|(p, _)| seen.insert(*p)), "a partition twice in {req:?}");
            for (p, i) in req {
                if let Some(prev) = last.insert(p, i) {
                    assert!(prev < i, "partition {p}: {i} after {prev}");
                }
                got += 1;
            }
        };
        for i in 0..200usize {
            let p = ((i * 7) % 5) as i32;
            g.push(key("t", p), 1 + i % 13, (p, i));
            if i % 9 == 0 {
                check(g.take_request(3, 20));
            }
        }
        while !g.is_empty() {
            check(g.take_request(3, 20));
        }
        assert_eq!(got, 200);
    }

    #[test]
    fn drain_returns_everything_held() {
        let mut g = Gather::default();
        for i in 0..10 {
            g.push(key("t", i % 3), 1, i);
        }
        g.take_request(2, 100);
        let mut rest = g.drain();
        rest.sort();
        assert_eq!(rest, vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(g.is_empty());
        assert!(g.take_request(64, 100).is_empty());
    }
}
