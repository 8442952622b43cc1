//! Group offset sync: commits the source cluster's consumer-group offsets, translated by the
//! route's offset maps, to the same groups on the target, so that a consumer moved to the
//! target resumes at exactly the next record (MirrorMaker 2's `sync.group.offsets.enabled`).
//!
//! Every `sync.group.offsets.interval.ms`, for each source group matching `groups` and not
//! `groups.exclude` (the route's own progress group is always excluded):
//!
//! 1. OffsetFetch at the source coordinator, for the route's partitions (listed: tansu 0.6
//!    answers an OffsetFetch without a topic list, "all topics", with no offsets);
//! 2. DescribeGroups at the target coordinator: a group with members, or rebalancing, is
//!    left alone (its consumers own its offsets);
//! 3. OffsetFetch at the target coordinator, then [`plan_group`] decides what to commit;
//! 4. OffsetCommit at the target as an admin commit (generation -1, no member id), which a
//!    Kafka coordinator also refuses for a group that gained members meanwhile.
//!
//! [`plan_group`] is sans-I/O: a source offset whose records are not replicated yet
//! ([`Translation::HeldBack`], or a partition without a map) is held back, never committed
//! past replicated data; a translated offset lower than the target group's committed one is
//! not committed unless `sync.group.offsets.allow.rewind`; an offset already committed is
//! not committed again. Errors are logged and retried next interval; they never stop
//! replication.
//!
//! References: KIP-545 (MirrorMaker 2 consumer offset sync), Kafka's
//! `MirrorCheckpointTask` and `GroupCoordinator.handleCommitOffsets` (admin commits).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{OffsetMaps, Translation};
use crate::replicate::{RouteConfig, TopicFilter};
use crate::wire::admin::TopicPartition;
use crate::wire::{Cluster, CommittedOffset, WireError};

/// Groups never synced unless `groups.exclude` is set otherwise: kferry's own progress groups.
pub const DEFAULT_GROUPS_EXCLUDE: &str = "kferry-.*";

/// A route's group offset sync options (MirrorMaker 2's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSyncConfig {
    /// `sync.group.offsets.enabled` (default false).
    pub enabled: bool,
    /// `sync.group.offsets.interval.ms` (default 5 s).
    pub interval: Duration,
    /// `groups`: whole-name regexes of the source groups to sync (default `.*`).
    pub groups: Vec<String>,
    /// `groups.exclude` (default `kferry-.*`). The route's `group.id` is always excluded.
    pub groups_exclude: Vec<String>,
    /// `sync.group.offsets.allow.rewind`: move a target group's offset backwards when the
    /// source group's is behind it (default false).
    pub allow_rewind: bool,
}

impl Default for GroupSyncConfig {
    fn default() -> GroupSyncConfig {
        GroupSyncConfig {
            enabled: false,
            interval: Duration::from_secs(5),
            groups: vec![".*".to_string()],
            groups_exclude: vec![DEFAULT_GROUPS_EXCLUDE.to_string()],
            allow_rewind: false,
        }
    }
}

impl GroupSyncConfig {
    /// The filter of groups to sync; `own_group` (the route's progress group) never matches.
    pub fn filter(&self, own_group: &str) -> Result<TopicFilter, regex::Error> {
        let mut exclude = self.groups_exclude.clone();
        exclude.push(regex::escape(own_group));
        TopicFilter::new(&self.groups, &exclude)
    }
}

/// The target side of one group, as the sync found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetGroup {
    /// The group has members or is rebalancing: not touched.
    Active { state: String },
    /// No members: `committed` holds its committed offsets (absent: none).
    Idle { committed: HashMap<TopicPartition, i64> },
}

/// What to do for one group this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPlan {
    /// The group is active on the target: nothing is committed.
    pub active: bool,
    /// Offsets to commit on the target, with the source commit's metadata.
    pub commits: Vec<(TopicPartition, CommittedOffset)>,
    /// Partitions whose source offset cannot be committed yet (not replicated, or no map).
    pub held_back: Vec<(TopicPartition, i64, Translation)>,
    /// Partitions whose translated offset is behind the target group's: (target committed,
    /// translated).
    pub not_rewound: Vec<(TopicPartition, i64, i64)>,
    /// Partitions already at the translated offset.
    pub unchanged: usize,
}

/// Decides the commits of one group (sans-I/O): `source` is the group's committed offsets
/// on the source, `translate` the route's translation, `target` the group on the target.
pub fn plan_group(
    source: &BTreeMap<TopicPartition, CommittedOffset>,
    translate: impl Fn(&str, i32, i64) -> Translation,
    target: &TargetGroup,
    allow_rewind: bool,
) -> GroupPlan {
    let committed = match target {
        TargetGroup::Active { .. } => {
            return GroupPlan {
                active: true,
                ..GroupPlan::default()
            }
        }
        TargetGroup::Idle { committed } => committed,
    };
    let mut plan = GroupPlan::default();
    for (key, c) in source {
        let translation = translate(&key.0, key.1, c.offset);
        let Some(new) = translation.target() else {
            plan.held_back.push((key.clone(), c.offset, translation));
            continue;
        };
        match committed.get(key) {
            Some(&old) if old == new => plan.unchanged += 1,
            Some(&old) if old > new && !allow_rewind => plan.not_rewound.push((key.clone(), old, new)),
            _ => plan.commits.push((
                key.clone(),
                CommittedOffset {
                    offset: new,
                    metadata: c.metadata.clone(),
                },
            )),
        }
    }
    plan
}

/// What one group looked like last round, to log only changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    active: bool,
    held_back: usize,
    not_rewound: usize,
    error: Option<String>,
}

/// Totals since the route started, logged each round that did something.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounters {
    pub rounds: u64,
    /// Partition offsets committed on the target.
    pub synced: u64,
    /// Partition offsets held back (counted once per round).
    pub held_back: u64,
    /// Groups skipped because they are active on the target (once per round).
    pub skipped_active: u64,
    pub errors: u64,
}

/// One route's sync task state.
struct GroupSync {
    route: String,
    source: Arc<Cluster>,
    target: Arc<Cluster>,
    maps: Arc<OffsetMaps>,
    filter: TopicFilter,
    allow_rewind: bool,
    seen: HashMap<String, Seen>,
    /// The last ListGroups error text per broker answer, to log only changes.
    list_errors: Vec<String>,
    counters: SyncCounters,
}

/// The route's sync task: runs until `stop`, or returns at once when sync is disabled (or
/// its patterns do not compile, which config validation prevents).
pub fn run_group_sync(
    cfg: &RouteConfig,
    source: &Arc<Cluster>,
    target: &Arc<Cluster>,
    maps: &Arc<OffsetMaps>,
    stop: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let (source, target, maps, mut stop) = (source.clone(), target.clone(), maps.clone(), stop.clone());
    let sync_cfg = cfg.group_sync.clone();
    let filter = sync_cfg.filter(&cfg.group_id);
    let route = cfg.name.clone();
    async move {
        if !sync_cfg.enabled {
            return;
        }
        let filter = match filter {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(route, "group offset sync disabled: bad group pattern: {e}");
                return;
            }
        };
        let mut sync = GroupSync {
            route,
            source,
            target,
            maps,
            filter,
            allow_rewind: sync_cfg.allow_rewind,
            seen: HashMap::new(),
            list_errors: Vec::new(),
            counters: SyncCounters::default(),
        };
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(sync_cfg.interval) => false,
                _ = stop.changed() => true,
            } || *stop.borrow();
            if stopping {
                return;
            }
            sync.round().await;
        }
    }
}

impl GroupSync {
    /// One sync round over every matching source group.
    async fn round(&mut self) {
        self.counters.rounds += 1;
        let before = self.counters;
        let route = self.route.clone();
        let listed = match self.source.list_groups().await {
            Ok(listed) => listed,
            Err(e) => {
                self.counters.errors += 1;
                tracing::warn!(route, "group offset sync: ListGroups: {e}");
                return;
            }
        };
        // A broker that cannot answer: its groups wait; logged when the errors change.
        let list_errors: Vec<String> = listed.errors.iter().map(|e| e.to_string()).collect();
        self.counters.errors += list_errors.len() as u64;
        if list_errors != self.list_errors {
            for e in &list_errors {
                tracing::warn!(route, "group offset sync: ListGroups: {e}; its groups are not synced");
            }
            self.list_errors = list_errors;
        }
        let partitions: Vec<TopicPartition> = self.maps.snapshot().into_iter().map(|(k, _)| k).collect();
        let groups: Vec<&str> = listed
            .groups
            .iter()
            .map(|g| g.group_id.as_str())
            .filter(|g| self.filter.matches(g))
            .collect();
        for group in groups {
            let result = self.sync_group(group, &partitions).await;
            self.note(group, result);
        }
        let listed: HashSet<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
        self.seen.retain(|g, _| listed.contains(g.as_str()));
        if self.counters != before {
            tracing::debug!(route, counters = ?self.counters, "group offset sync round");
        }
    }

    async fn sync_group(&self, group: &str, partitions: &[TopicPartition]) -> Result<GroupPlan, WireError> {
        let source: BTreeMap<TopicPartition, CommittedOffset> = self
            .source
            .fetch_offsets_many(group, partitions)
            .await?
            .into_iter()
            .collect();
        if source.is_empty() {
            return Ok(GroupPlan::default());
        }
        let description = self.target.describe_group(group).await?;
        let target = match description.is_active() {
            true => TargetGroup::Active {
                state: description.state,
            },
            false => {
                let wanted: Vec<TopicPartition> = source.keys().cloned().collect();
                let committed = self.target.fetch_offsets_many(group, &wanted).await?;
                TargetGroup::Idle {
                    committed: committed.into_iter().map(|(k, c)| (k, c.offset)).collect(),
                }
            }
        };
        let maps = &self.maps;
        let plan = plan_group(&source, |t, p, o| maps.translate(t, p, o), &target, self.allow_rewind);
        if !plan.commits.is_empty() {
            let commits: Vec<(String, i32, CommittedOffset)> = plan
                .commits
                .iter()
                .map(|((t, p), c)| (t.clone(), *p, c.clone()))
                .collect();
            self.target.commit_offsets(group, &commits).await?;
            tracing::debug!(route = %self.route, group, "group offset sync committed {:?}", commits);
        }
        Ok(plan)
    }

    /// Counts a group's round and logs what changed since its last round.
    fn note(&mut self, group: &str, result: Result<GroupPlan, WireError>) {
        let route = self.route.as_str();
        let prev = self.seen.get(group).cloned().unwrap_or_default();
        let now = match &result {
            Ok(plan) => Seen {
                active: plan.active,
                held_back: plan.held_back.len(),
                not_rewound: plan.not_rewound.len(),
                error: None,
            },
            Err(e) => Seen {
                error: Some(e.to_string()),
                ..prev.clone()
            },
        };
        match result {
            Ok(plan) => {
                self.counters.synced += plan.commits.len() as u64;
                self.counters.held_back += plan.held_back.len() as u64;
                self.counters.skipped_active += u64::from(plan.active);
                if now.active != prev.active {
                    match now.active {
                        true => tracing::info!(
                            route,
                            group,
                            "group offset sync: group is active on the target; not syncing it while it has members"
                        ),
                        false => tracing::info!(
                            route,
                            group,
                            "group offset sync: group is no longer active on the target; syncing it"
                        ),
                    }
                }
                if now.held_back != prev.held_back && !plan.held_back.is_empty() {
                    let first = &plan.held_back[0];
                    tracing::info!(
                        route,
                        group,
                        "group offset sync: {} partitions held back until their records are replicated (e.g. {}-{} at source offset {}: {:?})",
                        plan.held_back.len(),
                        first.0 .0,
                        first.0 .1,
                        first.1,
                        first.2
                    );
                }
                if now.not_rewound != prev.not_rewound && !plan.not_rewound.is_empty() {
                    let ((t, p), old, new) = &plan.not_rewound[0];
                    tracing::info!(
                        route,
                        group,
                        "group offset sync: {} partitions not moved backwards (e.g. {t}-{p}: target committed {old}, source translates to {new}; set sync.group.offsets.allow.rewind to allow)",
                        plan.not_rewound.len()
                    );
                }
            }
            Err(e) => {
                self.counters.errors += 1;
                if now.error != prev.error {
                    tracing::warn!(route, group, "group offset sync: {e}; retrying next interval");
                }
            }
        }
        self.seen.insert(group.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsets::PartitionMap;

    fn source(entries: &[(&str, i32, i64)]) -> BTreeMap<TopicPartition, CommittedOffset> {
        entries
            .iter()
            .map(|&(t, p, o)| {
                let c = CommittedOffset {
                    offset: o,
                    metadata: format!("m{o}"),
                };
                ((t.to_string(), p), c)
            })
            .collect()
    }

    fn idle(entries: &[(&str, i32, i64)]) -> TargetGroup {
        TargetGroup::Idle {
            committed: entries.iter().map(|&(t, p, o)| ((t.to_string(), p), o)).collect(),
        }
    }

    /// Partition 0: records 0..10 replicated at target offset 100 + marker at 10 + 11..15
    /// at 110; partition 1: nothing replicated past source offset 5 (target 50).
    fn maps() -> Arc<OffsetMaps> {
        let maps = OffsetMaps::new();
        let m0 = maps.insert("t", 0, PartitionMap::starting_at(0, Some(100)));
        let mut m0 = m0.lock().unwrap();
        m0.record(&[(0, 10)], Some(100), 10);
        m0.skip_to(11);
        m0.record(&[(11, 4)], Some(110), 15);
        let m1 = maps.insert("t", 1, PartitionMap::starting_at(0, Some(50)));
        m1.lock().unwrap().record(&[(0, 5)], Some(50), 5);
        maps.clone()
    }

    fn plan(src: &[(&str, i32, i64)], target: &TargetGroup, rewind: bool) -> GroupPlan {
        let maps = maps();
        plan_group(&source(src), |t, p, o| maps.translate(t, p, o), target, rewind)
    }

    fn commit(t: &str, p: i32, o: i64, from: i64) -> (TopicPartition, CommittedOffset) {
        let c = CommittedOffset {
            offset: o,
            metadata: format!("m{from}"),
        };
        ((t.to_string(), p), c)
    }

    #[test]
    fn translated_offsets_are_committed_exactly_across_a_marker() {
        let p = plan(&[("t", 0, 10), ("t", 1, 3)], &idle(&[]), false);
        assert_eq!(p.commits, vec![commit("t", 0, 110, 10), commit("t", 1, 53, 3)]);
        assert!(p.held_back.is_empty() && p.not_rewound.is_empty() && !p.active);
        let p = plan(&[("t", 0, 12)], &idle(&[]), false);
        assert_eq!(p.commits, vec![commit("t", 0, 111, 12)]);
    }

    #[test]
    fn offsets_past_replicated_data_are_held_back() {
        let p = plan(&[("t", 0, 15), ("t", 1, 9)], &idle(&[]), false);
        assert_eq!(p.commits, vec![commit("t", 0, 114, 15)], "the acknowledged position");
        assert_eq!(
            p.held_back,
            vec![(("t".to_string(), 1), 9, Translation::HeldBack { replicated_to: 5 })]
        );
    }

    #[test]
    fn a_partition_without_a_map_is_held_back() {
        let p = plan(&[("other", 0, 3)], &idle(&[]), false);
        assert!(p.commits.is_empty());
        assert_eq!(p.held_back.len(), 1);
        assert_eq!(p.held_back[0].2, Translation::Unknown);
    }

    #[test]
    fn an_active_target_group_is_never_committed_to() {
        let active = TargetGroup::Active {
            state: "Stable".to_string(),
        };
        let p = plan(&[("t", 0, 10), ("t", 1, 3)], &active, true);
        assert!(p.active);
        assert!(p.commits.is_empty());
    }

    #[test]
    fn a_target_offset_is_not_moved_backwards_unless_asked() {
        let target = idle(&[("t", 0, 113), ("t", 1, 53)]);
        let p = plan(&[("t", 0, 10), ("t", 1, 3)], &target, false);
        assert!(p.commits.is_empty());
        assert_eq!(p.not_rewound, vec![(("t".to_string(), 0), 113, 110)]);
        assert_eq!(p.unchanged, 1, "already at the translated offset");
        let p = plan(&[("t", 0, 10)], &target, true);
        assert_eq!(p.commits, vec![commit("t", 0, 110, 10)], "rewind allowed");
        let p = plan(&[("t", 0, 15)], &target, false);
        assert_eq!(p.commits, vec![commit("t", 0, 114, 15)], "forwards is always fine");
    }

    #[test]
    fn the_routes_own_group_and_kferry_groups_are_excluded_by_default() {
        let f = GroupSyncConfig::default().filter("my.progress").unwrap();
        assert!(f.matches("orders-app"));
        assert!(!f.matches("my.progress"));
        assert!(f.matches("myxprogress"), "the group id is a literal, not a regex");
        assert!(!f.matches("kferry-other-route"));
        let cfg = GroupSyncConfig {
            groups: vec!["app-.*".to_string()],
            groups_exclude: vec![],
            ..GroupSyncConfig::default()
        };
        let f = cfg.filter("kferry-r").unwrap();
        assert!(f.matches("app-1") && !f.matches("other") && !f.matches("kferry-r"));
    }
}
