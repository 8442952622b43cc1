//! Fetching from the closest replica (KIP-392): which broker a partition is fetched from.
//!
//! With `client.rack` set, a leader whose `replica.selector.class` picks a follower in the
//! fetcher's rack answers a Fetch with that follower's id as `preferred_read_replica` and no
//! records. The partition is then fetched from the follower, until one of these sends it back
//! to the leader (as Kafka's consumer does, `AbstractFetch` / `SubscriptionState`):
//!
//! - the follower answers the partition with any error: it is no longer a replica, not in
//!   sync, fenced, or behind the fetch offset (OFFSET_OUT_OF_RANGE from a lagging follower is
//!   not the leader's verdict, so it does not stop the partition);
//! - the request to the follower fails (connection, timeout, top-level error);
//! - the follower is no longer a broker in the metadata;
//! - [`READ_REPLICA_MAX_AGE`] has passed: the leader is asked again, and may point elsewhere.
//!
//! A follower that lags just returns less; a follower never names another replica, so a
//! `preferred_read_replica` of -1 from it changes nothing. Sans-I/O: `now` is passed in.
//!
//! References: KIP-392; Kafka `ReplicaManager.findPreferredReadReplica`,
//! `SubscriptionState.preferredReadReplica`.

use std::time::{Duration, Instant};

/// How long a preferred read replica is followed before the leader is asked again. Kafka's
/// consumer keeps one for `metadata.max.age.ms`, 5 minutes by default.
pub const READ_REPLICA_MAX_AGE: Duration = Duration::from_secs(300);

/// The replica a partition is fetched from instead of its leader, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preferred {
    broker: i32,
    until: Instant,
}

/// Whether a partition follows a preferred read replica.
#[derive(Debug, Default)]
pub struct ReadReplica {
    preferred: Option<Preferred>,
}

impl ReadReplica {
    /// A response named `broker` as the preferred read replica (-1: none, ignored).
    pub fn handle_preferred(&mut self, broker: i32, now: Instant) {
        if broker >= 0 {
            self.preferred = Some(Preferred {
                broker,
                until: now + READ_REPLICA_MAX_AGE,
            });
        }
    }

    /// A fetch from `broker` failed for the partition. True when `broker` was its read
    /// replica, which is then dropped: the next fetch goes to the leader.
    pub fn handle_failure(&mut self, broker: i32) -> bool {
        let following = self.preferred.is_some_and(|p| p.broker == broker);
        if following {
            self.preferred = None;
        }
        following
    }

    /// The broker to fetch from: the read replica while it is fresh and `known` (in the
    /// metadata), else the leader. A stale or unknown replica is dropped.
    pub fn poll_broker(&mut self, leader: Option<i32>, known: impl Fn(i32) -> bool, now: Instant) -> Option<i32> {
        match self.preferred {
            Some(p) if now < p.until && known(p.broker) => Some(p.broker),
            Some(_) => {
                self.preferred = None;
                leader
            }
            None => leader,
        }
    }

    /// The read replica followed, if any (as of the last [`ReadReplica::poll_broker`]).
    pub fn broker(&self) -> Option<i32> {
        self.preferred.map(|p| p.broker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: Option<i32> = Some(0);

    fn all(_: i32) -> bool {
        true
    }

    #[test]
    fn leader_until_a_replica_is_preferred() {
        let now = Instant::now();
        let mut r = ReadReplica::default();
        assert_eq!(r.poll_broker(LEADER, all, now), LEADER);
        r.handle_preferred(-1, now);
        assert_eq!(r.poll_broker(LEADER, all, now), LEADER, "-1 is no preference");
        r.handle_preferred(2, now);
        assert_eq!(r.poll_broker(LEADER, all, now), Some(2));
        assert_eq!(r.poll_broker(None, all, now), Some(2), "followed even while leaderless");
        r.handle_preferred(-1, now);
        assert_eq!(r.broker(), Some(2), "a follower's -1 keeps the preference");
    }

    #[test]
    fn a_failure_of_the_replica_goes_back_to_the_leader() {
        let now = Instant::now();
        let mut r = ReadReplica::default();
        assert!(
            !r.handle_failure(0),
            "nothing followed: the leader's own errors are not ours"
        );
        r.handle_preferred(2, now);
        assert!(!r.handle_failure(1), "another broker's failure changes nothing");
        assert_eq!(r.poll_broker(LEADER, all, now), Some(2));
        assert!(r.handle_failure(2));
        assert_eq!(r.poll_broker(LEADER, all, now), LEADER);
        assert!(!r.handle_failure(2), "only once");
    }

    #[test]
    fn an_unknown_replica_goes_back_to_the_leader() {
        let now = Instant::now();
        let mut r = ReadReplica::default();
        r.handle_preferred(2, now);
        assert_eq!(r.poll_broker(LEADER, |b| b != 2, now), LEADER);
        assert_eq!(r.broker(), None, "dropped, not just skipped");
        assert_eq!(r.poll_broker(LEADER, all, now), LEADER);
    }

    #[test]
    fn the_preference_expires() {
        let now = Instant::now();
        let mut r = ReadReplica::default();
        r.handle_preferred(2, now);
        let almost = now + READ_REPLICA_MAX_AGE - Duration::from_millis(1);
        assert_eq!(r.poll_broker(LEADER, all, almost), Some(2));
        assert_eq!(r.poll_broker(LEADER, all, now + READ_REPLICA_MAX_AGE), LEADER);
        assert_eq!(r.broker(), None);
        r.handle_preferred(3, now + READ_REPLICA_MAX_AGE);
        assert_eq!(
            r.poll_broker(LEADER, all, now + READ_REPLICA_MAX_AGE),
            Some(3),
            "the leader's next answer sets it again"
        );
    }
}
