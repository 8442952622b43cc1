//! The offset map of one partition: which target offset each replicated source offset got.
//!
//! Sans-I/O. The sink feeds it every acknowledged batch (the ProduceResponse names the
//! target base offset) and every move of the acknowledged position; translation is a binary
//! search. It stays small because consecutive batches shift by the same delta and merge into
//! one [`Segment`]: a partition replicated without gaps is one segment for ever. The delta
//! changes only where the source has offsets the target does not (transaction markers,
//! aborted records, compacted gaps, a restart that found batches already on the target).
//!
//! # What a translation means
//!
//! A consumer-group offset is the offset of the *next record to read*. Translating source
//! offset `o` gives the target offset of the first replicated record whose source offset is
//! `>= o`, so a consumer resuming there on the target reads exactly the records it had not
//! read on the source. Three cases are exact:
//! - `o` is a replicated record: its own target offset;
//! - `o` lies in a gap known to hold no replicated record (a control batch, aborted or
//!   compacted records): the target offset of the next replicated record;
//! - `o` is the acknowledged position: the target's next offset.
//!
//! Where the map lacks knowledge (an acknowledgement without a target offset, or mappings
//! dropped to bound the size) the answer is a lower bound: at least once, never a skip.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Segments kept per partition by default; the oldest go first.
pub const DEFAULT_MAX_SEGMENTS: usize = 1000;

/// Source offsets `[source_start, source_end)` are target offsets `target_start..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub source_start: i64,
    pub source_end: i64,
    pub target_start: i64,
    /// True when the source offsets between the previous segment's end (or the map's
    /// origin) and `source_start` are known to hold no replicated record.
    pub gap_known: bool,
}

impl Segment {
    pub fn target_end(&self) -> i64 {
        self.target_start + (self.source_end - self.source_start)
    }

    fn delta(&self) -> i64 {
        self.target_start - self.source_start
    }
}

/// The answer for one source offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Translation {
    /// The target offset of the first replicated record at or after the source offset.
    Exact { target: i64 },
    /// A lower bound: a consumer resuming here misses nothing but may read some records
    /// twice (the map lacks the exact position).
    AtLeastOnce { target: i64 },
    /// The source offset is past what has been replicated: do not commit it yet.
    HeldBack { replicated_to: i64 },
    /// The source offset is older than the map: before kferry replicated this partition, or
    /// older than the mappings kept. `target` is where the map starts. With
    /// `nothing_before`, this route replicated nothing below `first_source` (the target
    /// partition was empty when it started), so `target` is exactly the next record a consumer
    /// can read there; otherwise records below may be on the target at unknown offsets, and
    /// the offset is not translated.
    BeforeMap {
        first_source: i64,
        target: i64,
        nothing_before: bool,
    },
    /// Nothing is known for this partition.
    Unknown,
}

impl Translation {
    /// The target offset to commit, if the offset may be committed at all.
    pub fn target(&self) -> Option<i64> {
        match *self {
            Translation::Exact { target } | Translation::AtLeastOnce { target } => Some(target),
            Translation::BeforeMap {
                target, nothing_before, ..
            } => nothing_before.then_some(target),
            Translation::HeldBack { .. } | Translation::Unknown => None,
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(
            self,
            Translation::Exact { .. }
                | Translation::BeforeMap {
                    nothing_before: true,
                    ..
                }
        )
    }
}

/// See [`PartitionMap::fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    origin: i64,
    covered_source: i64,
    covered_target: Option<i64>,
    tail_known: bool,
    segments: usize,
    last: Option<Segment>,
}

/// The offset map of one source partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMap {
    /// The first source offset the map knows about.
    origin: i64,
    segments: VecDeque<Segment>,
    /// Every source offset below this has been replicated (or skipped as not to be
    /// replicated) and acknowledged.
    covered_source: i64,
    /// The target's next offset at `covered_source`, when known.
    covered_target: Option<i64>,
    /// True when `[last segment end, covered_source)` holds no replicated record.
    tail_known: bool,
    /// True when nothing below `origin` was replicated to the target (see
    /// [`PartitionMap::with_nothing_before`]).
    #[serde(default)]
    nothing_before_origin: bool,
    /// The target's next offset at `origin`, when known: a lower bound for every source offset
    /// from the origin on.
    #[serde(default)]
    origin_target: Option<i64>,
    #[serde(skip, default = "default_max")]
    max_segments: usize,
}

fn default_max() -> usize {
    DEFAULT_MAX_SEGMENTS
}

impl PartitionMap {
    /// A map for a partition whose replication starts at `source` (target next offset
    /// `target`, when known).
    pub fn starting_at(source: i64, target: Option<i64>) -> PartitionMap {
        PartitionMap {
            origin: source,
            segments: VecDeque::new(),
            covered_source: source,
            covered_target: target,
            tail_known: true,
            nothing_before_origin: false,
            origin_target: target,
            max_segments: DEFAULT_MAX_SEGMENTS,
        }
    }

    /// The map a partition's sink starts with when replication resumes at `source_next`
    /// (target next offset `target_next`): the `persisted` one reconciled with that position
    /// ([`PartitionMap::resume`]), or a new one, which knows nothing was replicated before it
    /// when the target partition is empty.
    pub fn for_start(persisted: Option<PartitionMap>, source_next: i64, target_next: Option<i64>) -> PartitionMap {
        match persisted {
            Some(mut map) => {
                map.resume(source_next, target_next);
                map
            }
            None if target_next == Some(0) => PartitionMap::starting_at(source_next, target_next).with_nothing_before(),
            None => PartitionMap::starting_at(source_next, target_next),
        }
    }

    /// Says that nothing below the map's origin was replicated to the target: the route
    /// starts on an empty target partition. Offsets below the origin then translate to the
    /// map's first target offset; without it they are not translated (they may be on the
    /// target at offsets the map no longer knows).
    pub fn with_nothing_before(mut self) -> PartitionMap {
        self.nothing_before_origin = self.segments.is_empty() && self.covered_source == self.origin;
        self
    }

    /// Keeps at most `max` segments (at least 1).
    pub fn with_max_segments(mut self, max: usize) -> PartitionMap {
        self.max_segments = max.max(1);
        self.trim();
        self
    }

    pub fn origin(&self) -> i64 {
        self.origin
    }

    /// Every source offset below this is replicated and acknowledged.
    pub fn covered_source(&self) -> i64 {
        self.covered_source
    }

    pub fn covered_target(&self) -> Option<i64> {
        self.covered_target
    }

    pub fn segments(&self) -> impl ExactSizeIterator<Item = &Segment> {
        self.segments.iter()
    }

    /// A cheap summary that changes whenever the map does through [`PartitionMap::record`],
    /// [`PartitionMap::skip_to`], [`PartitionMap::forget_until`] and
    /// [`PartitionMap::resume`] (each moves the covered position or the last segment), so
    /// that a writer can tell which maps changed without keeping copies.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            origin: self.origin,
            covered_source: self.covered_source,
            covered_target: self.covered_target,
            tail_known: self.tail_known,
            segments: self.segments.len(),
            last: self.segments.back().copied(),
        }
    }

    /// Records an acknowledged batch: `runs` are its records' source offsets as
    /// `(first offset, record count)` runs of consecutive offsets, in order, and the target
    /// gave its first record `target_base` (`None` when the broker did not say, as after a
    /// duplicate that idempotence absorbed). Then the acknowledged position is
    /// `source_next`.
    ///
    /// Batches must come in acknowledgement order, which is source order.
    pub fn record(&mut self, runs: &[(i64, i64)], target_base: Option<i64>, source_next: i64) {
        let Some(mut target) = target_base else {
            self.forget_until(source_next);
            return;
        };
        for &(start, count) in runs {
            if count <= 0 || start < self.covered_source {
                continue;
            }
            self.push(start, count, target);
            target = target.saturating_add(count);
        }
        self.advance(source_next, Some(target));
    }

    /// The acknowledged position moved to `source_next` without a batch (control or empty
    /// batches, aborted records): the offsets passed hold no replicated record.
    pub fn skip_to(&mut self, source_next: i64) {
        let target = self.covered_target;
        self.advance(source_next, target);
    }

    /// The acknowledged position moved to `source_next` over records whose target offsets
    /// are unknown: offsets up to there translate only at least once.
    pub fn forget_until(&mut self, source_next: i64) {
        if source_next > self.covered_source {
            self.covered_source = source_next;
            self.covered_target = None;
            self.tail_known = false;
        }
    }

    fn push(&mut self, start: i64, count: i64, target: i64) {
        // The offsets skipped since the last record hold nothing replicated, and the target
        // continued where expected: nobody else's records lie between.
        let gap_known = self.tail_known && self.covered_target == Some(target);
        match self.segments.back_mut() {
            Some(last) if gap_known && last.source_end == start && last.target_end() == target => {
                last.source_end = start.saturating_add(count);
            }
            _ => {
                self.segments.push_back(Segment {
                    source_start: start,
                    source_end: start.saturating_add(count),
                    target_start: target,
                    gap_known,
                });
                self.trim();
            }
        }
        self.covered_source = start.saturating_add(count);
        self.covered_target = Some(target.saturating_add(count));
        self.tail_known = true;
    }

    fn advance(&mut self, source_next: i64, target_next: Option<i64>) {
        if source_next >= self.covered_source {
            self.covered_source = source_next;
            self.covered_target = target_next;
        }
    }

    fn trim(&mut self) {
        while self.segments.len() > self.max_segments {
            if let Some(dropped) = self.segments.pop_front() {
                self.nothing_before_origin = false;
                self.origin = dropped.source_end;
                self.origin_target = Some(dropped.target_end());
                if let Some(next) = self.segments.front_mut() {
                    if !next.gap_known {
                        self.origin = next.source_start;
                        self.origin_target = Some(next.target_start);
                    }
                }
            }
        }
    }

    /// Reconciles a persisted map with the position replication resumes from after a restart:
    /// source offset `source_next`, the target's next offset `target_next` (what restart
    /// reconciliation found).
    ///
    /// - At the map's own position: nothing changes.
    /// - Past it (batches reached the target after the map was written): the offsets between
    ///   translate at least once; records from `source_next` on are exact again.
    /// - Before it (the map knew more than the target kept): mappings at or after
    ///   `source_next`, and any pointing at or past `target_next`, are dropped, since those
    ///   records are replicated again and get new target offsets.
    /// - Before the map's origin: the map starts over there.
    pub fn resume(&mut self, source_next: i64, target_next: Option<i64>) {
        if source_next < self.origin {
            *self = PartitionMap::starting_at(source_next, target_next).with_max_segments(self.max_segments);
            return;
        }
        let expected = self.translate(source_next);
        self.truncate_source(source_next);
        let cut_target = target_next.is_some_and(|t| self.truncate_target(t));
        self.covered_source = source_next;
        self.covered_target = target_next;
        self.tail_known = !cut_target && target_next.is_some_and(|t| expected == Translation::Exact { target: t });
    }

    /// Drops the mappings of source offsets at or after `source`.
    fn truncate_source(&mut self, source: i64) {
        while self.segments.back().is_some_and(|s| s.source_start >= source) {
            self.segments.pop_back();
        }
        if let Some(last) = self.segments.back_mut() {
            last.source_end = last.source_end.min(source);
        }
    }

    /// Drops the mappings to target offsets at or after `target`; true if any was dropped.
    fn truncate_target(&mut self, target: i64) -> bool {
        let mut cut = false;
        while self.segments.back().is_some_and(|s| s.target_start >= target) {
            self.segments.pop_back();
            cut = true;
        }
        if let Some(last) = self.segments.back_mut() {
            if last.target_end() > target {
                last.source_end = last.source_start + (target - last.target_start);
                cut = true;
            }
        }
        cut
    }

    /// Translates a committed source offset (the next record to read) to the target.
    pub fn translate(&self, source: i64) -> Translation {
        if source > self.covered_source {
            return Translation::HeldBack {
                replicated_to: self.covered_source,
            };
        }
        // First segment whose end lies past `source`.
        let i = self.segments.partition_point(|s| s.source_end <= source);
        let Some(seg) = self.segments.get(i) else {
            return self.translate_tail(source);
        };
        if source >= seg.source_start {
            return Translation::Exact {
                target: source + seg.delta(),
            };
        }
        // In the gap before `seg`.
        if i == 0 {
            return match (source >= self.origin, seg.gap_known, self.origin_target) {
                (true, true, _) => Translation::Exact {
                    target: seg.target_start,
                },
                // Replicated at unknown offsets after the map's origin: no earlier than there.
                (true, false, Some(target)) => Translation::AtLeastOnce { target },
                _ => Translation::BeforeMap {
                    first_source: self.origin,
                    target: seg.target_start,
                    nothing_before: self.nothing_before_origin && source < self.origin && seg.gap_known,
                },
            };
        }
        match seg.gap_known {
            true => Translation::Exact {
                target: seg.target_start,
            },
            false => Translation::AtLeastOnce {
                target: self.segments[i - 1].target_end(),
            },
        }
    }

    /// `source` lies at or after the last segment's end and at or before the acknowledged
    /// position.
    fn translate_tail(&self, source: i64) -> Translation {
        let known_target = self.covered_target.filter(|_| self.tail_known);
        match (self.segments.back(), known_target) {
            (Some(last), _) if source == last.source_end => Translation::Exact {
                target: last.target_end(),
            },
            (Some(_), Some(target)) => Translation::Exact { target },
            (Some(last), None) => Translation::AtLeastOnce {
                target: last.target_end(),
            },
            (None, Some(target)) if source < self.origin => Translation::BeforeMap {
                first_source: self.origin,
                target,
                nothing_before: self.nothing_before_origin,
            },
            (None, Some(target)) => Translation::Exact { target },
            (None, None) => match self.origin_target {
                Some(target) if source >= self.origin => Translation::AtLeastOnce { target },
                _ => Translation::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(target: i64) -> Translation {
        Translation::Exact { target }
    }

    #[test]
    fn contiguous_batches_merge_into_one_segment() {
        let mut m = PartitionMap::starting_at(100, Some(0));
        m.record(&[(100, 10)], Some(0), 110);
        m.record(&[(110, 5)], Some(10), 115);
        assert_eq!(m.segments().len(), 1);
        assert_eq!(m.translate(100), exact(0));
        assert_eq!(m.translate(107), exact(7));
        assert_eq!(m.translate(115), exact(15), "the acknowledged position");
        assert_eq!(m.translate(116), Translation::HeldBack { replicated_to: 115 });
    }

    #[test]
    fn a_control_marker_shifts_the_delta_and_its_offset_maps_to_the_next_record() {
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.record(&[(0, 3)], Some(0), 3);
        m.skip_to(4); // commit marker at offset 3
        m.record(&[(4, 2)], Some(3), 6);
        assert_eq!(m.segments().len(), 2);
        assert_eq!(m.translate(3), exact(3), "marker: the next record");
        assert_eq!(m.translate(4), exact(3));
        assert_eq!(m.translate(5), exact(4));
        assert_eq!(m.translate(6), exact(5));
    }

    #[test]
    fn a_marker_at_the_end_is_covered_exactly() {
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.record(&[(0, 3)], Some(0), 3);
        m.skip_to(4);
        assert_eq!(m.translate(4), exact(3));
        assert_eq!(m.translate(3), exact(3));
        assert_eq!(m.translate(5), Translation::HeldBack { replicated_to: 4 });
    }

    #[test]
    fn compacted_runs_inside_one_batch_are_exact_per_record() {
        let mut m = PartitionMap::starting_at(10, Some(50));
        // Records 10, 11, 15, 16 survived compaction; re-encoded as one 4-record batch.
        m.record(&[(10, 2), (15, 2)], Some(50), 17);
        assert_eq!(m.translate(11), exact(51));
        assert_eq!(m.translate(12), exact(52), "compacted away: next record");
        assert_eq!(m.translate(14), exact(52));
        assert_eq!(m.translate(16), exact(53));
        assert_eq!(m.translate(17), exact(54));
    }

    #[test]
    fn an_unknown_target_offset_gives_at_least_once_until_known_again() {
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.record(&[(0, 10)], Some(0), 10);
        m.record(&[(10, 10)], None, 20); // duplicate ack: target offsets unknown
        m.record(&[(20, 10)], Some(20), 30);
        assert_eq!(m.translate(5), exact(5));
        assert_eq!(m.translate(15), Translation::AtLeastOnce { target: 10 });
        assert_eq!(m.translate(20), exact(20));
        assert_eq!(m.translate(30), exact(30));
    }

    #[test]
    fn offsets_before_the_map_say_so() {
        let mut m = PartitionMap::starting_at(100, Some(7));
        m.record(&[(100, 1)], Some(7), 101);
        let before = m.translate(40);
        assert_eq!(
            before,
            Translation::BeforeMap {
                first_source: 100,
                target: 7,
                nothing_before: false
            }
        );
        assert_eq!(
            before.target(),
            None,
            "records below may be on the target: not translated"
        );
        let mut fresh = PartitionMap::starting_at(100, Some(0)).with_nothing_before();
        fresh.record(&[(100, 1)], Some(0), 101);
        let before = fresh.translate(40);
        assert_eq!((before.target(), before.is_exact()), (Some(0), true));
        let empty = PartitionMap::starting_at(100, Some(7));
        assert_eq!(empty.translate(100), exact(7));
        assert_eq!(empty.translate(101), Translation::HeldBack { replicated_to: 100 });
    }

    #[test]
    fn resumed_past_the_map_offsets_in_between_are_at_least_once_from_the_origin() {
        // Killed before the first map write: the persisted map is empty at 0, and restart
        // reconciliation found the target already holding 5250 records.
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.resume(5250, Some(5250));
        assert_eq!(m.translate(100), Translation::AtLeastOnce { target: 0 });
        m.record(&[(5250, 10)], Some(5250), 5260);
        assert_eq!(m.translate(0), Translation::AtLeastOnce { target: 0 });
        assert_eq!(m.translate(5000), Translation::AtLeastOnce { target: 0 });
        assert_eq!(m.translate(5255), exact(5255));
    }

    #[test]
    fn a_start_on_an_empty_target_translates_older_offsets_to_its_first_record() {
        let fresh = PartitionMap::for_start(None, 100, Some(0));
        assert_eq!(fresh.translate(40).target(), Some(0));
        let unknown = PartitionMap::for_start(None, 100, Some(7));
        assert_eq!(unknown.translate(40).target(), None, "the target already held records");
        let mut persisted = PartitionMap::starting_at(0, Some(0));
        persisted.record(&[(0, 100)], Some(0), 100);
        let resumed = PartitionMap::for_start(Some(persisted), 100, Some(100));
        assert_eq!(resumed.translate(40), exact(40));
    }

    #[test]
    fn trimming_keeps_the_newest_segments_and_moves_the_origin() {
        let mut m = PartitionMap::starting_at(0, Some(0)).with_max_segments(2);
        for i in 0..5 {
            // Each batch of 2 records followed by a marker: a new segment each time.
            m.record(&[(i * 3, 2)], Some(i * 2), i * 3 + 2);
            m.skip_to(i * 3 + 3);
        }
        assert_eq!(m.segments().len(), 2);
        assert_eq!(m.translate(10), exact(7));
        assert!(matches!(m.translate(1), Translation::BeforeMap { .. }));
        assert_eq!(m.translate(9), exact(6));
    }

    #[test]
    fn the_fingerprint_changes_with_every_step() {
        let mut m = PartitionMap::starting_at(0, Some(0));
        let mut seen = vec![m.fingerprint()];
        m.record(&[(0, 3)], Some(0), 3);
        seen.push(m.fingerprint());
        m.record(&[(3, 3)], Some(3), 6); // merges into the same segment
        seen.push(m.fingerprint());
        m.skip_to(7);
        seen.push(m.fingerprint());
        m.forget_until(9);
        seen.push(m.fingerprint());
        m.resume(8, Some(6));
        seen.push(m.fingerprint());
        for (i, a) in seen.iter().enumerate() {
            assert!(seen[i + 1..].iter().all(|b| b != a), "step {i} repeats a fingerprint");
        }
        let before = m.fingerprint();
        m.skip_to(8);
        assert_eq!(m.fingerprint(), before, "no change, same fingerprint");
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.record(&[(0, 3)], Some(0), 3);
        m.skip_to(4);
        let back: PartitionMap = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.translate(3), exact(3));
    }

    /// Ten records, a marker at 10, five records: two segments, covered up to 16.
    fn sample() -> PartitionMap {
        let mut m = PartitionMap::starting_at(0, Some(0));
        m.record(&[(0, 10)], Some(0), 10);
        m.skip_to(11);
        m.record(&[(11, 5)], Some(10), 16);
        m
    }

    #[test]
    fn resuming_at_the_maps_own_position_changes_nothing() {
        let mut m = sample();
        m.resume(16, Some(15));
        assert_eq!(m, sample());
        m.record(&[(16, 4)], Some(15), 20);
        assert_eq!(m.segments().len(), 2, "the next batch still merges");
        assert_eq!(m.translate(18), exact(17));
    }

    #[test]
    fn resuming_past_the_map_makes_the_offsets_between_at_least_once() {
        let mut m = sample();
        // 16..20 reached the target (at 15..19) after the map was written.
        m.resume(20, Some(19));
        assert_eq!(m.translate(13), exact(12), "older records stay exact");
        assert_eq!(m.translate(17), Translation::AtLeastOnce { target: 15 });
        m.record(&[(20, 5)], Some(19), 25);
        assert_eq!(m.translate(20), exact(19));
        assert_eq!(m.translate(24), exact(23));
        assert_eq!(m.translate(18), Translation::AtLeastOnce { target: 15 });
    }

    #[test]
    fn resuming_before_the_map_truncates_and_replays_to_the_same_answers() {
        let mut m = sample();
        // The target kept everything, reconciliation resumed inside the second segment.
        m.resume(13, Some(12));
        assert_eq!(m.covered_source(), 13);
        assert_eq!(m.translate(14), Translation::HeldBack { replicated_to: 13 });
        m.record(&[(13, 3)], Some(12), 16);
        for o in 0..=16 {
            assert_eq!(m.translate(o), sample().translate(o), "offset {o}");
        }
    }

    #[test]
    fn resuming_where_the_target_lost_records_drops_their_mappings() {
        let mut m = sample();
        // The map says 0..10 -> 0..10, 11..16 -> 10..15, but the target ends at 7 and
        // replication restarts from source offset 7.
        m.resume(7, Some(7));
        assert_eq!(m.translate(5), exact(5));
        assert_eq!(m.translate(7), exact(7));
        m.record(&[(7, 3)], Some(7), 10);
        m.skip_to(11);
        m.record(&[(11, 5)], Some(10), 16);
        for o in 0..=16 {
            assert_eq!(m.translate(o), sample().translate(o), "offset {o}");
        }
        // Source resumes at 13, but the target only holds 0..7: mappings to 7.. are dropped
        // and the records between translate at least once.
        let mut lost = sample();
        lost.resume(13, Some(7));
        assert_eq!(lost.translate(6), exact(6));
        assert_eq!(lost.translate(9), Translation::AtLeastOnce { target: 7 });
        assert!(lost.segments().all(|s| s.target_end() <= 7));
    }

    #[test]
    fn resuming_before_the_origin_starts_over() {
        let mut m = PartitionMap::starting_at(100, Some(50));
        m.record(&[(100, 10)], Some(50), 110);
        m.resume(40, Some(0));
        assert_eq!(m, PartitionMap::starting_at(40, Some(0)));
    }

    proptest::proptest! {
        /// Against a model: a list of (source offset, target offset) for every replicated
        /// record, with markers between; every translation of a covered offset is the
        /// target offset of the first replicated record at or after it.
        #[test]
        fn matches_a_per_record_model(steps in proptest::collection::vec((1i64..5, 0i64..3), 1..40)) {
            let mut m = PartitionMap::starting_at(0, Some(0));
            let mut model: Vec<(i64, i64)> = Vec::new();
            let (mut source, mut target) = (0i64, 0i64);
            for (records, skipped) in steps {
                m.record(&[(source, records)], Some(target), source + records);
                for k in 0..records {
                    model.push((source + k, target + k));
                }
                source += records;
                target += records;
                if skipped > 0 {
                    source += skipped;
                    m.skip_to(source);
                }
            }
            for o in 0..=source {
                let expected = model.iter().find(|(s, _)| *s >= o).map_or(target, |(_, t)| *t);
                proptest::prop_assert_eq!(m.translate(o), Translation::Exact { target: expected }, "offset {}", o);
            }
            proptest::prop_assert_eq!(m.translate(source + 1), Translation::HeldBack { replicated_to: source });
        }

        /// A map reloaded after a restart and resumed at an earlier position that the
        /// target agrees with (restart reconciliation resends from there) ends, once the same
        /// batches are acknowledged again, with the same answers as the map that never
        /// stopped.
        #[test]
        fn resuming_earlier_and_replaying_gives_the_same_answers(
            steps in proptest::collection::vec((1i64..5, 0i64..3), 1..30),
            at in 0usize..30,
        ) {
            // (source start, records, target start, skipped after) of every batch.
            let mut batches = Vec::new();
            let (mut source, mut target) = (0i64, 0i64);
            for (records, skipped) in steps {
                batches.push((source, records, target, skipped));
                source += records + skipped;
                target += records;
            }
            let apply = |m: &mut PartitionMap, b: &[(i64, i64, i64, i64)]| {
                for &(s, n, t, skip) in b {
                    m.record(&[(s, n)], Some(t), s + n);
                    if skip > 0 {
                        m.skip_to(s + n + skip);
                    }
                }
            };
            let mut whole = PartitionMap::starting_at(0, Some(0));
            apply(&mut whole, &batches);
            let at = at.min(batches.len());
            let (resume_source, resume_target) = batches.get(at).map_or((source, target), |b| (b.0, b.2));
            let mut resumed = whole.clone();
            resumed.resume(resume_source, Some(resume_target));
            apply(&mut resumed, &batches[at..]);
            for o in 0..=source + 1 {
                proptest::prop_assert_eq!(resumed.translate(o), whole.translate(o), "offset {}", o);
            }
        }
    }
}
