//! Fuzzes Kafka response decoding as kferry does it, and what kferry does next.
//!
//! * Fetch: `kferry::wire::fetch_response::FetchResponse::decode` at v4..=v17 (kferry's own
//!   checked decoder, which `wire::fetch` uses); then, per partition as
//!   `replicate::fetcher` does, the broker's aborted transactions into a fresh
//!   `TxnFilter`, `BlobIter` over the records, every v2 batch (and `control_type` for
//!   control batches) into the filter, legacy entries through `decode_legacy`, releasing
//!   after each entry.
//! * Produce: `kferry::wire::produce_response::ProduceResponse::decode` at v3..=v13, then
//!   the partition lookup of `replicate::sink`.
//! * Differential: the same bytes through `kafka-protocol`'s decoders. Whenever kferry
//!   decodes a body, kafka-protocol must decode it too (except for a tag kafka-protocol
//!   refuses in a version that does not define it, which kferry skips as unknown), and
//!   every field must agree. kafka-protocol may accept more than kferry: it ignores the
//!   size of known tagged fields, bytes after the last field and over-long varints.
//!
//! Input: byte 0 selects the response (bit 0: Fetch or Produce) and version (the other
//! bits, modulo the range); bytes 1-8 the fetch offset (big-endian i64); then the
//! response body (no size or header: kferry decodes the header separately).
//!
//! Checks: no panic; the two decoders agree; the filter releases batches exactly in the
//! order it took them, holds back exactly the ones it reports as held, and never counts
//! more held bytes than it holds.
//!
//! Known issue (kafka-protocol 0.18): `Array`/`CompactArray` decoding calls
//! `Vec::with_capacity(n)` with the length read off the wire, so a few bytes declaring a
//! huge array abort the process ("memory allocation of N bytes failed"); this is why
//! kferry decodes Fetch and Produce itself. Upstream: kafka-protocol-rs PRs #152, #161,
//! #200 (open). So that the oracle can run on any input, this target's allocator serves
//! allocations of 1 GiB and more with lazily backed `MAP_NORESERVE` mappings, which cost
//! nothing until touched. `KFERRY_FUZZ_STRICT_ALLOC=1` uses the plain system allocator
//! (and shows the abort on `known-issues/response_decode/*`).
#![no_main]

use std::collections::VecDeque;

use bytes::Bytes;
use kafka_protocol::messages as kp;
use kafka_protocol::protocol::Decodable;
use kferry::batch::{control_type, decode_legacy, BlobIter, FetchedEntry, RecordBatch};
use kferry::replicate::txn::{Released, TxnFilter};
use kferry::wire::decode::{LeaderIdAndEpoch, NodeEndpoint};
use kferry::wire::fetch::AbortedTxn;
use kferry::wire::fetch_response::{FetchResponse, FETCH_RESPONSE_MAX_VERSION, FETCH_RESPONSE_MIN_VERSION};
use kferry::wire::produce_response::{ProduceResponse, PRODUCE_RESPONSE_MAX_VERSION, PRODUCE_RESPONSE_MIN_VERSION};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: lazy_alloc::LazyHuge = lazy_alloc::LazyHuge;

fuzz_target!(|data: &[u8]| {
    lazy_alloc::init();
    let Some((ctl, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let fetch_offset = i64::from_be_bytes(ctl[1..9].try_into().unwrap());
    let body = Bytes::copy_from_slice(rest);
    if ctl[0] & 1 == 0 {
        let range = FETCH_RESPONSE_MAX_VERSION - FETCH_RESPONSE_MIN_VERSION + 1;
        let version = FETCH_RESPONSE_MIN_VERSION + i16::from(ctl[0] >> 1) % range;
        let ours = FetchResponse::decode(body.clone(), version);
        let theirs = kp::FetchResponse::decode(&mut body.clone(), version);
        if let Ok(ours) = &ours {
            match &theirs {
                Ok(theirs) => same_fetch(ours, theirs, version),
                Err(e) => assert!(
                    refused_tag(e),
                    "Fetch v{version}: kferry decoded what kafka-protocol refuses: {e}"
                ),
            }
        }
        let Ok(response) = ours else {
            return;
        };
        for topic in response.responses {
            for p in topic.partitions {
                partition(
                    fetch_offset,
                    p.aborted_transactions.as_deref(),
                    p.records.unwrap_or_default(),
                );
            }
        }
    } else {
        let range = PRODUCE_RESPONSE_MAX_VERSION - PRODUCE_RESPONSE_MIN_VERSION + 1;
        let version = PRODUCE_RESPONSE_MIN_VERSION + i16::from(ctl[0] >> 1) % range;
        let ours = ProduceResponse::decode(body.clone(), version);
        let theirs = kp::ProduceResponse::decode(&mut body.clone(), version);
        if let Ok(ours) = &ours {
            match &theirs {
                Ok(theirs) => same_produce(ours, theirs, version),
                Err(e) => assert!(
                    refused_tag(e),
                    "Produce v{version}: kferry decoded what kafka-protocol refuses: {e}"
                ),
            }
        }
        // sink::parse_outcome: the result for the partition produced to.
        if let Ok(response) = ours {
            let wanted = (fetch_offset & 0xffff) as i32;
            let found = response
                .responses
                .into_iter()
                .flat_map(|t| t.partition_responses)
                .find(|p| p.index == wanted);
            if let Some(p) = found {
                let _ = (p.error_code, p.base_offset, p.error_message);
            }
        }
    }
});

/// kafka-protocol refuses a known tag in a version that does not define it; kferry, like
/// any reader of a newer broker's response, skips it as unknown.
fn refused_tag(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("is not valid for version")
}

fn leader(ours: Option<LeaderIdAndEpoch>) -> (i32, i32) {
    ours.map_or((-1, -1), |l| (l.leader_id, l.leader_epoch))
}

fn endpoints(ours: &[NodeEndpoint]) -> Vec<(i32, &str, i32, Option<&str>)> {
    ours.iter()
        .map(|e| (e.node_id, e.host.as_str(), e.port, e.rack.as_deref()))
        .collect()
}

/// Field by field, with kafka-protocol's defaults for tagged fields kferry leaves `None`.
fn same_fetch(ours: &FetchResponse, theirs: &kp::FetchResponse, v: i16) {
    assert_eq!(
        (ours.throttle_time_ms, ours.error_code, ours.session_id),
        (theirs.throttle_time_ms, theirs.error_code, theirs.session_id),
        "Fetch v{v}: header fields"
    );
    assert_eq!(
        endpoints(&ours.node_endpoints),
        theirs
            .node_endpoints
            .iter()
            .map(|e| (
                e.node_id.0,
                e.host.as_str(),
                e.port,
                e.rack.as_ref().map(|r| r.as_str())
            ))
            .collect::<Vec<_>>(),
        "Fetch v{v}: node_endpoints"
    );
    assert_eq!(ours.responses.len(), theirs.responses.len(), "Fetch v{v}: topic count");
    for (t, k) in ours.responses.iter().zip(&theirs.responses) {
        if v >= 13 {
            assert_eq!(t.topic_id, k.topic_id, "Fetch v{v}: topic id");
        } else {
            assert_eq!(t.topic.as_str(), k.topic.0.as_str(), "Fetch v{v}: topic name");
        }
        assert_eq!(t.partitions.len(), k.partitions.len(), "Fetch v{v}: partition count");
        for (p, q) in t.partitions.iter().zip(&k.partitions) {
            let aborted = |list: &Option<Vec<kp::fetch_response::AbortedTransaction>>| {
                list.as_ref().map(|l| {
                    l.iter()
                        .map(|a| AbortedTxn {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect::<Vec<_>>()
                })
            };
            assert_eq!(
                (
                    p.partition_index,
                    p.error_code,
                    p.high_watermark,
                    p.last_stable_offset,
                    p.log_start_offset,
                    p.preferred_read_replica,
                    &p.aborted_transactions,
                    &p.records,
                ),
                (
                    q.partition_index,
                    q.error_code,
                    q.high_watermark,
                    q.last_stable_offset,
                    q.log_start_offset,
                    q.preferred_read_replica.0,
                    &aborted(&q.aborted_transactions),
                    &q.records,
                ),
                "Fetch v{v}: partition fields"
            );
            assert_eq!(
                (
                    p.diverging_epoch.map_or((-1, -1), |d| (d.epoch, d.end_offset)),
                    leader(p.current_leader),
                    p.snapshot_id.map_or((-1, -1), |s| (s.end_offset, s.epoch)),
                ),
                (
                    (q.diverging_epoch.epoch, q.diverging_epoch.end_offset),
                    (q.current_leader.leader_id.0, q.current_leader.leader_epoch),
                    (q.snapshot_id.end_offset, q.snapshot_id.epoch),
                ),
                "Fetch v{v}: tagged partition fields"
            );
        }
    }
}

fn same_produce(ours: &ProduceResponse, theirs: &kp::ProduceResponse, v: i16) {
    assert_eq!(
        ours.throttle_time_ms, theirs.throttle_time_ms,
        "Produce v{v}: throttle_time_ms"
    );
    assert_eq!(
        endpoints(&ours.node_endpoints),
        theirs
            .node_endpoints
            .iter()
            .map(|e| (
                e.node_id.0,
                e.host.as_str(),
                e.port,
                e.rack.as_ref().map(|r| r.as_str())
            ))
            .collect::<Vec<_>>(),
        "Produce v{v}: node_endpoints"
    );
    assert_eq!(
        ours.responses.len(),
        theirs.responses.len(),
        "Produce v{v}: topic count"
    );
    for (t, k) in ours.responses.iter().zip(&theirs.responses) {
        if v >= 13 {
            assert_eq!(t.topic_id, k.topic_id, "Produce v{v}: topic id");
        } else {
            assert_eq!(t.name.as_str(), k.name.0.as_str(), "Produce v{v}: topic name");
        }
        assert_eq!(
            t.partition_responses.len(),
            k.partition_responses.len(),
            "Produce v{v}: partition count"
        );
        for (p, q) in t.partition_responses.iter().zip(&k.partition_responses) {
            let errors: Vec<(i32, Option<&str>)> = p
                .record_errors
                .iter()
                .map(|e| (e.batch_index, e.batch_index_error_message.as_deref()))
                .collect();
            let kp_errors: Vec<(i32, Option<&str>)> = q
                .record_errors
                .iter()
                .map(|e| (e.batch_index, e.batch_index_error_message.as_ref().map(|m| m.as_str())))
                .collect();
            assert_eq!(
                (
                    p.index,
                    p.error_code,
                    p.base_offset,
                    p.log_append_time_ms,
                    p.log_start_offset,
                    errors,
                    p.error_message.as_deref(),
                    leader(p.current_leader),
                ),
                (
                    q.index,
                    q.error_code,
                    q.base_offset,
                    q.log_append_time_ms,
                    q.log_start_offset,
                    kp_errors,
                    q.error_message.as_ref().map(|m| m.as_str()),
                    (q.current_leader.leader_id.0, q.current_leader.leader_epoch),
                ),
                "Produce v{v}: partition fields"
            );
        }
    }
}

/// One partition's records, as `fetcher::split_batches` walks them.
fn partition(fetch_offset: i64, aborted: Option<&[AbortedTxn]>, records: Bytes) {
    let mut txn = TxnFilter::default();
    if let Some(list) = aborted {
        txn.handle_aborted_list(list);
    }
    // Batches the filter took and has not released: (base offset, last offset, bytes).
    let mut taken: VecDeque<(i64, i64, usize)> = VecDeque::new();
    for entry in BlobIter::new(records, fetch_offset) {
        let Ok(entry) = entry else {
            return;
        };
        match entry {
            FetchedEntry::Batch(b) | FetchedEntry::Straddling(b) => {
                if !feed(&mut txn, &mut taken, b) {
                    return;
                }
            }
            FetchedEntry::Legacy { bytes, .. } => {
                drain(&mut txn, &mut taken);
                if txn.first_held_offset().is_some() {
                    return; // kferry stops: a v0/v1 message behind an open transaction
                }
                let _ = decode_legacy(&bytes, 1 << 20);
            }
        }
        drain(&mut txn, &mut taken);
    }
}

/// Hands one batch to the filter; false when kferry would stop the partition.
fn feed(txn: &mut TxnFilter, taken: &mut VecDeque<(i64, i64, usize)>, b: RecordBatch) -> bool {
    if b.attributes().is_control() {
        let _ = control_type(&b);
    }
    let entry = (b.base_offset(), b.last_offset(), b.len());
    if txn.handle_batch(b).is_err() {
        return false;
    }
    taken.push_back(entry);
    true
}

/// Releases what the filter has decided and checks it against what it took.
fn drain(txn: &mut TxnFilter, taken: &mut VecDeque<(i64, i64, usize)>) {
    while let Some(released) = txn.poll_released() {
        let (_, last, len) = taken.pop_front().expect("released a batch it never took");
        let (last_offset, bytes) = match released {
            Released::Forward(b) => {
                assert!(!b.attributes().is_control(), "a control batch released for forwarding");
                (b.last_offset(), b.len())
            }
            Released::Control { last_offset, bytes }
            | Released::Empty { last_offset, bytes }
            | Released::Aborted { last_offset, bytes, .. } => (last_offset, bytes),
        };
        assert_eq!((last_offset, bytes), (last, len), "released out of order");
    }
    assert_eq!(
        txn.first_held_offset(),
        taken.front().map(|t| t.0),
        "first held offset is the first batch not released"
    );
    assert_eq!(
        txn.open_transactions() == 0,
        taken.is_empty(),
        "batches are held exactly while a transaction is open"
    );
    let queued: usize = taken.iter().map(|t| t.2).sum();
    assert!(
        txn.held_bytes() <= queued,
        "held {} bytes, {queued} queued",
        txn.held_bytes()
    );
}

/// See the module docs: huge allocations become lazily backed mappings.
mod lazy_alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Allocations at least this large are mapped, not malloc'ed.
    const HUGE: usize = 1 << 30;
    /// 0: not decided yet; 1: lazy mappings; 2: strict (system allocator only).
    static MODE: AtomicU8 = AtomicU8::new(0);

    /// Reads `KFERRY_FUZZ_STRICT_ALLOC` once (outside the allocator: reading the
    /// environment allocates).
    pub fn init() {
        if MODE.load(Ordering::Relaxed) == 0 {
            let strict = std::env::var_os("KFERRY_FUZZ_STRICT_ALLOC").is_some_and(|v| v == "1");
            MODE.store(if strict { 2 } else { 1 }, Ordering::Relaxed);
        }
    }

    fn lazy(layout: Layout) -> bool {
        layout.size() >= HUGE && layout.align() <= 4096 && MODE.load(Ordering::Relaxed) == 1
    }

    pub struct LazyHuge;

    unsafe impl GlobalAlloc for LazyHuge {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !lazy(layout) {
                return System.alloc(layout);
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if lazy(layout) {
                libc::munmap(ptr.cast(), layout.size());
            } else {
                System.dealloc(ptr, layout)
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            if !lazy(layout) && !lazy(new_layout) {
                return System.realloc(ptr, layout, new_size);
            }
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
