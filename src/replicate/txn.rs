//! Read-committed filtering of one partition's batches, without decoding records.
//!
//! Kafka's read_committed consumers (`CompletedFetch` in the Java client) drop the batches of
//! aborted transactions using the Fetch response's `aborted_transactions` list. Some brokers
//! (tansu 0.6 among them) never fill that list. So kferry decides a transaction's fate from
//! its **control marker**, which every broker writes:
//!
//! - a transactional batch is *held* until the COMMIT or ABORT marker of its producer id
//!   arrives, then forwarded or dropped;
//! - batches behind a held one wait too (head-of-line), so the target receives the committed
//!   records in exactly the source's order;
//! - when the broker does list aborted transactions, batches it lists are dropped at once,
//!   as the Java consumer does (the marker still closes them).
//!
//! Control batches and empty batches (left by the log cleaner) are never forwarded. The
//! position the route may commit never passes the first held batch
//! ([`TxnFilter::first_held_offset`]): after a restart, an undecided transaction is read again.
//!
//! The cost of holding: a transaction's batches stay in memory until its marker is fetched,
//! and a long transaction delays the records behind it (read_committed consumers wait for it
//! too, at the last stable offset). [`TxnFilter::held_bytes`] lets the caller cap it.
//!
//! References: Kafka `CompletedFetch.java` (abortedProducerIds, consumeAbortedTransactionsUpTo),
//! `ControlRecordType.java`, KIP-98.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use crate::batch::{control_type, BatchError, ControlType, RecordBatch};
use crate::wire::fetch::AbortedTxn;

/// What became of a batch that left the filter.
#[derive(Debug)]
pub enum Released {
    /// Committed (or non-transactional) data: forward it.
    Forward(RecordBatch),
    /// A control batch (COMMIT/ABORT marker): never forwarded.
    Control { last_offset: i64, bytes: usize },
    /// A batch with no records (compacted away).
    Empty { last_offset: i64, bytes: usize },
    /// A batch of an aborted transaction.
    Aborted {
        last_offset: i64,
        bytes: usize,
        records: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Forward,
    Control,
    Empty,
    Aborted,
    Undecided,
}

struct Entry {
    batch: RecordBatch,
    fate: Fate,
}

/// The read-committed filter of one partition. Feed batches in log order.
#[derive(Default)]
pub struct TxnFilter {
    queue: VecDeque<Entry>,
    undecided: HashMap<i64, usize>,
    held_bytes: usize,
    /// Aborted transactions listed by the broker, by first offset: (first offset, producer id).
    listed: BinaryHeap<Reverse<(i64, i64)>>,
    /// What `listed` holds, to drop the ones each fetch lists again in O(1).
    listed_keys: HashSet<(i64, i64)>,
    /// Producers whose listed aborted transaction has started and not yet ended.
    aborted_pids: HashSet<i64>,
}

impl TxnFilter {
    /// Records the broker's `aborted_transactions` for the batches that follow.
    pub fn handle_aborted_list(&mut self, list: &[AbortedTxn]) {
        for a in list {
            let key = (a.first_offset, a.producer_id);
            if self.listed_keys.insert(key) {
                self.listed.push(Reverse(key));
            }
        }
    }

    /// Takes the next batch of the partition, in log order.
    pub fn handle_batch(&mut self, batch: RecordBatch) -> Result<(), BatchError> {
        let pid = batch.producer_id();
        let fate = if batch.attributes().is_control() {
            let marker = control_type(&batch)?;
            // As the Java consumer does for every batch with a producer id: a listed abort that
            // starts before this marker is consumed first, so that its own ABORT marker ends it.
            // Otherwise a fetch starting at the marker (which the broker answers by listing the
            // transaction again) would leave it listed, to abort the producer's next transaction.
            self.consume_listed_up_to(batch.last_offset());
            self.decide(pid, marker);
            if marker == ControlType::Abort {
                self.aborted_pids.remove(&pid);
            }
            Fate::Control
        } else if batch.record_count() == 0 {
            Fate::Empty
        } else if batch.attributes().is_transactional() {
            self.consume_listed_up_to(batch.last_offset());
            if self.aborted_pids.contains(&pid) {
                Fate::Aborted
            } else {
                *self.undecided.entry(pid).or_default() += 1;
                Fate::Undecided
            }
        } else {
            Fate::Forward
        };
        if fate == Fate::Undecided || !self.queue.is_empty() {
            self.held_bytes += batch.len();
        }
        self.queue.push_back(Entry { batch, fate });
        Ok(())
    }

    /// Moves listed aborted transactions that start at or before `offset` into the active set.
    fn consume_listed_up_to(&mut self, offset: i64) {
        while let Some(Reverse((first, pid))) = self.listed.peek().copied() {
            if first > offset {
                break;
            }
            self.listed.pop();
            self.listed_keys.remove(&(first, pid));
            self.aborted_pids.insert(pid);
        }
    }

    /// Settles every held batch of `pid` with the marker's verdict.
    fn decide(&mut self, pid: i64, marker: ControlType) {
        if self.undecided.remove(&pid).is_none() {
            return;
        }
        let verdict = match marker {
            ControlType::Commit => Fate::Forward,
            ControlType::Abort => Fate::Aborted,
        };
        for e in self.queue.iter_mut() {
            if e.fate == Fate::Undecided && e.batch.producer_id() == pid {
                e.fate = verdict;
            }
        }
        self.recount_held();
    }

    /// Releases the decided batches at the head of the queue, in order.
    pub fn poll_released(&mut self) -> Option<Released> {
        let front = self.queue.front()?;
        if front.fate == Fate::Undecided {
            return None;
        }
        let Entry { batch, fate } = self.queue.pop_front().expect("front exists");
        if self.undecided.is_empty() {
            self.held_bytes = 0;
        }
        let (last_offset, bytes) = (batch.last_offset(), batch.len());
        Some(match fate {
            Fate::Forward => Released::Forward(batch),
            Fate::Control => Released::Control { last_offset, bytes },
            Fate::Empty => Released::Empty { last_offset, bytes },
            Fate::Aborted => Released::Aborted {
                last_offset,
                bytes,
                records: batch.record_count(),
            },
            Fate::Undecided => unreachable!("checked above"),
        })
    }

    fn recount_held(&mut self) {
        let first_undecided = self.queue.iter().position(|e| e.fate == Fate::Undecided);
        self.held_bytes = match first_undecided {
            Some(i) => self.queue.iter().skip(i).map(|e| e.batch.len()).sum(),
            None => 0,
        };
    }

    /// The base offset of the first batch still waiting for its transaction's marker.
    pub fn first_held_offset(&self) -> Option<i64> {
        self.queue.front().map(|e| e.batch.base_offset())
    }

    /// Bytes held behind (and including) undecided transactional batches.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Producer ids with an undecided transaction.
    pub fn open_transactions(&self) -> usize {
        self.undecided.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    fn data(base: i64, pid: i64, txn: bool, records: usize) -> RecordBatch {
        let mut b = BatchBuilder::new()
            .base_offset(base)
            .producer(pid, 0, 0)
            .transactional(txn);
        for i in 0..records {
            b = b.value(format!("v{i}").into_bytes());
        }
        b.build()
    }

    fn marker(base: i64, pid: i64, kind: ControlType) -> RecordBatch {
        BatchBuilder::new()
            .base_offset(base)
            .producer(pid, 0, -1)
            .control_marker(kind, 0)
            .build()
    }

    fn drain(f: &mut TxnFilter) -> Vec<String> {
        std::iter::from_fn(|| f.poll_released())
            .map(|r| match r {
                Released::Forward(b) => format!("F{}", b.base_offset()),
                Released::Control { last_offset, .. } => format!("C{last_offset}"),
                Released::Empty { last_offset, .. } => format!("E{last_offset}"),
                Released::Aborted { last_offset, .. } => format!("A{last_offset}"),
            })
            .collect()
    }

    #[test]
    fn committed_and_aborted_transactions_by_marker_keep_order() {
        let mut f = TxnFilter::default();
        f.handle_batch(data(0, 1, true, 2)).unwrap(); // txn of pid 1: 0..=1
        f.handle_batch(data(2, 2, true, 1)).unwrap(); // txn of pid 2: 2
        f.handle_batch(data(3, 9, false, 1)).unwrap(); // plain: behind the open txns
        assert!(drain(&mut f).is_empty(), "nothing passes an undecided transaction");
        assert_eq!(f.first_held_offset(), Some(0));
        assert!(f.held_bytes() > 0);
        f.handle_batch(marker(4, 2, ControlType::Abort)).unwrap();
        assert!(drain(&mut f).is_empty(), "pid 1 still undecided at the head");
        f.handle_batch(marker(5, 1, ControlType::Commit)).unwrap();
        assert_eq!(drain(&mut f), ["F0", "A2", "F3", "C4", "C5"]);
        assert_eq!(f.first_held_offset(), None);
        assert_eq!(f.held_bytes(), 0);
        assert_eq!(f.open_transactions(), 0);
    }

    #[test]
    fn broker_listed_aborts_are_dropped_at_once() {
        let mut f = TxnFilter::default();
        f.handle_aborted_list(&[AbortedTxn {
            producer_id: 7,
            first_offset: 10,
        }]);
        f.handle_batch(data(10, 7, true, 3)).unwrap();
        f.handle_batch(data(13, 8, false, 1)).unwrap();
        assert_eq!(drain(&mut f), ["A12", "F13"]);
        f.handle_batch(marker(14, 7, ControlType::Abort)).unwrap();
        f.handle_batch(data(15, 7, true, 1)).unwrap(); // a new transaction of pid 7
        assert_eq!(drain(&mut f), ["C14"], "the abort marker closed the listed transaction");
        f.handle_batch(marker(16, 7, ControlType::Commit)).unwrap();
        assert_eq!(drain(&mut f), ["F15", "C16"]);
    }

    #[test]
    fn a_transaction_listed_again_at_its_abort_marker_does_not_abort_the_next_one() {
        let mut f = TxnFilter::default();
        let listed = [AbortedTxn {
            producer_id: 7,
            first_offset: 10,
        }];
        f.handle_aborted_list(&listed);
        f.handle_batch(data(10, 7, true, 3)).unwrap();
        assert_eq!(drain(&mut f), ["A12"]);
        // The next fetch starts at the marker; the broker lists the transaction again (its last
        // offset, the marker's, is not below the fetch offset).
        f.handle_aborted_list(&listed);
        f.handle_batch(marker(13, 7, ControlType::Abort)).unwrap();
        f.handle_batch(data(14, 7, true, 1)).unwrap();
        f.handle_batch(marker(15, 7, ControlType::Commit)).unwrap();
        assert_eq!(drain(&mut f), ["C13", "F14", "C15"], "the next transaction commits");
    }

    #[test]
    fn aborted_lists_repeated_by_every_fetch_are_kept_once() {
        let mut f = TxnFilter::default();
        let list: Vec<AbortedTxn> = (0..1000)
            .map(|i| AbortedTxn {
                producer_id: i,
                first_offset: 1_000 + i,
            })
            .collect();
        for _ in 0..3 {
            f.handle_aborted_list(&list);
        }
        assert_eq!(f.listed.len(), 1000);
        f.handle_batch(data(1_000, 0, true, 1)).unwrap();
        assert_eq!(drain(&mut f), ["A1000"]);
        assert_eq!((f.listed.len(), f.listed_keys.len()), (999, 999));
    }

    #[test]
    fn empty_batches_are_dropped_and_plain_data_flows() {
        let mut f = TxnFilter::default();
        f.handle_batch(data(0, -1, false, 1)).unwrap();
        f.handle_batch(
            BatchBuilder::new()
                .base_offset(1)
                .last_offset_delta(4)
                .record_count(0)
                .build(),
        )
        .unwrap();
        f.handle_batch(data(6, -1, false, 2)).unwrap();
        assert_eq!(drain(&mut f), ["F0", "E5", "F6"]);
        assert_eq!(f.held_bytes(), 0);
    }

    #[test]
    fn a_marker_without_held_batches_is_just_dropped() {
        let mut f = TxnFilter::default();
        f.handle_batch(marker(0, 3, ControlType::Commit)).unwrap();
        assert_eq!(drain(&mut f), ["C0"]);
    }
}
