//! Coalesced reads: the reads of many concurrent reconciliations, one Fetch per broker.
//!
//! Reconciliation reads each partition's log a fetch at a time. A broker answers the requests
//! of one connection in order, and tansu holds a Fetch that finds nothing for its whole
//! `max_wait_ms`, so one-partition Fetches on a broker's Control connection cost a round trip
//! (or the wait) each, however many are sent at once. [`Reads`] instead collects what the
//! concurrent reconciliations of a cluster want to read, and a [`ReadDriver`] sends it as one
//! Fetch per broker: while one Fetch is in flight, the reads for the next one queue up.
//!
//! A partition late in a request can come back empty although it has data: the broker's
//! byte budget went to the partitions before it (Kafka fills partitions in request order, and
//! only the first gets a batch larger than the limits, KIP-74; tansu gives the whole budget
//! to the first partition with data). So an answer says whether the read was first in its
//! request, and a reader whose read made no progress, but whose high watermark (or last stable
//! offset) says there is more, asks again to go first. First in a request, a read gets what a
//! one-partition Fetch would get.
//!
//! Memory: a driver queues at most `capacity` reads, has one response in flight per broker
//! (at most [`MAX_BYTES`], or one larger batch), and copies each partition's records out of a
//! response shared by several partitions, so that a reader holds its own records only: at most
//! [`PARTITION_MAX_BYTES`] from Kafka, or one larger batch (tansu ignores
//! `partition_max_bytes` and can give one partition all of [`MAX_BYTES`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::wire::fetch::{fetch, FetchParams, FetchedPartition, PartitionFetch, READ_COMMITTED};
use crate::wire::{Cluster, Purpose, WireError};

/// `max_wait_ms` of reconciliation reads: tansu answers a Fetch with `max_wait_ms` 0 with
/// nothing at all, so it must be positive (`docs/DESIGN.md` §6).
const MAX_WAIT_MS: i32 = 100;
/// `max_bytes` of one coalesced Fetch.
pub const MAX_BYTES: i32 = 4 << 20;
/// `partition_max_bytes` of each read.
pub const PARTITION_MAX_BYTES: i32 = 256 << 10;

/// One partition's read, waiting for the next Fetch to its broker.
struct Read {
    broker: i32,
    request: PartitionFetch,
    /// Asks to be first in the request (an earlier read came back short).
    first: bool,
    reply: oneshot::Sender<Result<Answer, WireError>>,
}

/// What a read got.
#[derive(Debug)]
pub struct Answer {
    /// The partition's part of the response; `None` when the broker left it out.
    pub fetched: Option<FetchedPartition>,
    /// The read was first in its request: it got what a one-partition Fetch would get.
    pub first: bool,
}

impl Answer {
    /// True when an answer that brought nothing new may have been cut short by the byte budget
    /// of partitions ahead of it: it was not first, and there is more below the high watermark
    /// (read_committed: the last stable offset) than `fetch_offset`, or records that did not
    /// make a whole batch.
    pub fn maybe_cut_short(&self, fetch_offset: i64, isolation_level: i8) -> bool {
        let Some(f) = self.fetched.as_ref().filter(|_| !self.first) else {
            return false;
        };
        let end = match isolation_level {
            READ_COMMITTED if f.last_stable_offset >= 0 => f.last_stable_offset,
            _ => f.high_watermark,
        };
        !f.records.is_empty() || end > fetch_offset
    }
}

/// Sends reads of one cluster, at one isolation level, to its [`ReadDriver`]. Clones share
/// the driver, which stops once every clone is dropped.
#[derive(Clone)]
pub struct Reads {
    cluster: Arc<Cluster>,
    isolation_level: i8,
    tx: mpsc::Sender<Read>,
}

/// Sends the reads of [`Reads`] as one Fetch per broker at a time.
pub struct ReadDriver {
    cluster: Arc<Cluster>,
    params: FetchParams,
    rx: mpsc::Receiver<Read>,
}

/// Reads of `cluster` at `isolation_level`, at most `capacity` queued, and their driver
/// (run it with [`ReadDriver::run`] while the reads are used).
pub fn reads(cluster: Arc<Cluster>, isolation_level: i8, capacity: usize) -> (Reads, ReadDriver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let params = FetchParams {
        max_wait_ms: MAX_WAIT_MS,
        min_bytes: 1,
        max_bytes: MAX_BYTES,
        isolation_level,
    };
    let reads = Reads {
        cluster: cluster.clone(),
        isolation_level,
        tx,
    };
    (reads, ReadDriver { cluster, params, rx })
}

impl Reads {
    /// The cluster read from.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// 0 (read_uncommitted) or 1 (read_committed).
    pub fn isolation_level(&self) -> i8 {
        self.isolation_level
    }

    /// Reads `request` from `broker` in the next Fetch to it; `first` puts it first.
    pub async fn read(&self, broker: i32, request: PartitionFetch, first: bool) -> Result<Answer, WireError> {
        let (reply, answer) = oneshot::channel();
        let read = Read {
            broker,
            request,
            first,
            reply,
        };
        let stopped = || WireError::ConnectionLost {
            cluster: self.cluster.name().to_string(),
            addr: format!("broker id {broker}"),
            reason: "reconciliation reads stopped".to_string(),
        };
        self.tx.send(read).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl ReadDriver {
    /// Sends queued reads, one Fetch per broker per round, until every [`Reads`] is dropped.
    pub async fn run(mut self) {
        let mut queued: Vec<Read> = Vec::new();
        loop {
            if queued.is_empty() {
                match self.rx.recv().await {
                    Some(read) => queued.push(read),
                    None => return,
                }
            }
            while let Ok(read) = self.rx.try_recv() {
                queued.push(read);
            }
            // Reads asking to go first go first; otherwise in arrival order (a stable sort).
            queued.sort_by_key(|r| !r.first);
            let mut by_broker: BTreeMap<i32, Vec<Read>> = BTreeMap::new();
            let mut in_round = HashSet::new();
            let mut later = Vec::new();
            for read in queued.drain(..) {
                // A partition appears once per request; a second read of it waits a round.
                match in_round.insert((read.broker, read.request.topic.clone(), read.request.partition)) {
                    true => by_broker.entry(read.broker).or_default().push(read),
                    false => later.push(read),
                }
            }
            queued = later;
            let mut round = JoinSet::new();
            for (broker, reads) in by_broker {
                round.spawn(answer(self.cluster.clone(), broker, self.params, reads));
            }
            while round.join_next().await.is_some() {}
        }
    }
}

/// Sends one Fetch for `reads` to `broker` and answers each read.
async fn answer(cluster: Arc<Cluster>, broker: i32, params: FetchParams, reads: Vec<Read>) {
    let requests: Vec<PartitionFetch> = reads.iter().map(|r| r.request.clone()).collect();
    let result = match cluster.broker(broker, Purpose::Control).await {
        Ok(conn) => fetch(&conn, params, &requests).await,
        Err(e) => Err(e),
    };
    let mut fetched = match result {
        Ok(fetched) => fetched,
        Err(e) => {
            for read in reads {
                let _ = read.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    let shared = fetched.len() > 1;
    for (i, read) in reads.into_iter().enumerate() {
        let at = fetched
            .iter()
            .position(|f| f.partition == read.request.partition && f.topic == read.request.topic);
        let fetched = at.map(|at| {
            let mut f = fetched.swap_remove(at);
            if shared {
                // Let the response frame go now, not when the last reader is done with its part.
                f.records = Bytes::copy_from_slice(&f.records);
            }
            f
        });
        let _ = read.reply.send(Ok(Answer { fetched, first: i == 0 }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fake_cluster, log};
    use super::*;

    fn partition(records: &[u8], high_watermark: i64, last_stable_offset: i64) -> FetchedPartition {
        FetchedPartition {
            topic: "t".into(),
            partition: 0,
            error_code: 0,
            high_watermark,
            last_stable_offset,
            log_start_offset: 0,
            aborted: None,
            records: Bytes::copy_from_slice(records),
            preferred_read_replica: -1,
            diverging_epoch: None,
            current_leader: None,
            leader_endpoint: None,
        }
    }

    #[test]
    fn only_reads_behind_others_with_more_to_read_may_be_cut_short() {
        let answer = |fetched, first| Answer { fetched, first };
        let cut = |a: Answer, isolation| a.maybe_cut_short(5, isolation);
        assert!(
            cut(answer(Some(partition(b"", 9, 9)), false), 0),
            "more below the high watermark"
        );
        assert!(cut(answer(Some(partition(b"part", 9, 9)), false), 0), "a partial batch");
        assert!(
            !cut(answer(Some(partition(b"", 9, 9)), true), 0),
            "first: a one-partition answer"
        );
        assert!(
            !cut(answer(Some(partition(b"", 5, 5)), false), 0),
            "at the high watermark"
        );
        assert!(!cut(answer(None, false), 0), "left out of the answer");
        assert!(
            !cut(answer(Some(partition(b"", 9, 5)), false), READ_COMMITTED),
            "at the LSO"
        );
        assert!(
            cut(answer(Some(partition(b"", 9, 5)), false), 0),
            "read_uncommitted ignores the LSO"
        );
        assert!(
            cut(answer(Some(partition(b"", 9, -1)), false), READ_COMMITTED),
            "no LSO: the HW"
        );
    }

    #[tokio::test]
    async fn concurrent_reads_go_out_as_one_fetch() {
        const PARTITIONS: i32 = 40;
        let (fake, cluster) = fake_cluster(PARTITIONS, |p| log(1 + i64::from(p % 3), 100)).await;
        let leader = cluster.metadata().leader("t", 0).expect("leader");
        let (reads, driver) = reads(cluster, 0, 64);
        let mut set = JoinSet::new();
        for p in 0..PARTITIONS {
            let reads = reads.clone();
            let request = PartitionFetch {
                topic: "t".into(),
                topic_id: uuid::Uuid::nil(),
                partition: p,
                fetch_offset: 0,
                partition_max_bytes: PARTITION_MAX_BYTES,
            };
            set.spawn(async move { (p, reads.read(leader, request, false).await) });
        }
        // Let every read queue up before the driver sends anything.
        while reads.tx.capacity() > 64 - PARTITIONS as usize {
            tokio::task::yield_now().await;
        }
        drop(reads);
        let driver = tokio::spawn(driver.run());
        let mut firsts = 0;
        while let Some(r) = set.join_next().await {
            let (p, answer) = r.expect("read task");
            let answer = answer.expect("answer");
            firsts += usize::from(answer.first);
            let fetched = answer.fetched.expect("the partition is answered");
            assert_eq!((fetched.partition, fetched.high_watermark), (p, 1 + i64::from(p % 3)));
            assert!(!fetched.records.is_empty(), "partition {p} got its batches");
        }
        driver.await.expect("the driver stops once every Reads is dropped");
        assert_eq!(firsts, 1);
        let fetches = fake.fetches();
        assert_eq!(fetches.len(), 1, "{fetches:?}");
        assert_eq!(fetches[0].1.partitions, PARTITIONS as usize);
    }
}
