//! A cluster: its bootstrap servers, a metadata cache and connections per broker.
//!
//! Connections are kept per (broker, purpose): a long-polling Fetch must never sit in front
//! of a Produce or an OffsetCommit on the same connection, because a broker answers the
//! requests of one connection strictly in order (franz-go `DESIGN.md`). Connections are made
//! lazily and remade, with exponential backoff, after they fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::conn::{Connection, ReadMode};
use super::error::WireError;
use super::produce_mux::ProduceSender;

/// How to reach a cluster. Field names follow Kafka's client configs.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The name kferry's config gives the cluster; used in every error and log line.
    pub name: String,
    /// `bootstrap.servers`: `host:port` pairs.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `socket.connection.setup.timeout.ms`.
    pub connect_timeout: Duration,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `reconnect.backoff.ms`.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`.
    pub reconnect_backoff_max: Duration,
    /// `client.rack`: sent as the Fetch `rack_id` (KIP-392), so that a broker with a
    /// `replica.selector.class` can point fetchers at a replica in the same rack. Empty: none.
    pub client_rack: String,
}

impl ClusterConfig {
    /// A config with Kafka's client defaults for everything but the servers.
    pub fn new(name: impl Into<String>, bootstrap_servers: Vec<String>) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            bootstrap_servers,
            client_id: "kferry".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            client_rack: String::new(),
        }
    }
}

/// What a connection is used for; each purpose gets its own connection per broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Metadata, admin, group and producer-id requests.
    Control,
    /// Fetch requests (long polls).
    Fetch,
    /// Produce requests.
    Produce,
}

/// One partition as the last Metadata response described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub error_code: i16,
}

/// One topic as the last Metadata response described it.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    pub error_code: i16,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionMetadata>,
}

/// A snapshot of cluster metadata.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub brokers: HashMap<i32, String>,
    pub controller_id: i32,
    pub topics: HashMap<String, TopicMetadata>,
}

impl Metadata {
    /// The leader of a partition, if the topic and partition are known and have one.
    ///
    /// A binary search (partitions are sorted by index): fetchers look up every partition of
    /// a route each round, so a scan would cost O(partitions²) per round.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let t = self.topics.get(topic)?;
        let i = t.partitions.binary_search_by_key(&partition, |p| p.partition).ok()?;
        let leader = t.partitions[i].leader;
        (leader >= 0).then_some(leader)
    }
}

#[derive(Default)]
struct State {
    conns: HashMap<(i32, Purpose), Arc<Connection>>,
    producers: HashMap<i32, ProduceSender>,
    failures: HashMap<String, (u32, Instant)>,
    metadata: Arc<Metadata>,
    last_refresh: Option<Instant>,
}

/// A Kafka cluster: shared by every route that reads from or writes to it.
pub struct Cluster {
    config: ClusterConfig,
    name: Arc<str>,
    state: Mutex<State>,
    /// Held while a metadata refresh is in flight, so that concurrent callers wait for it
    /// instead of sending their own (single flight).
    refreshing: tokio::sync::Mutex<()>,
}

/// Broker id used for connections made to a bootstrap address.
const BOOTSTRAP_ID: i32 = -1;

impl Cluster {
    /// A cluster handle; nothing is connected until first use.
    pub fn new(config: ClusterConfig) -> Cluster {
        let name: Arc<str> = Arc::from(config.name.as_str());
        Cluster {
            config,
            name,
            state: Mutex::new(State::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The cluster's name in kferry's config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's config.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The last metadata fetched (empty before the first [`Cluster::refresh_metadata`]).
    pub fn metadata(&self) -> Arc<Metadata> {
        self.state.lock().expect("cluster lock").metadata.clone()
    }

    /// A control connection to any broker: known brokers first, then bootstrap servers.
    pub async fn any_broker(&self) -> Result<Arc<Connection>, WireError> {
        let (existing, mut candidates) = {
            let st = self.state.lock().expect("cluster lock");
            let existing = st
                .conns
                .iter()
                .find(|((_, p), c)| *p == Purpose::Control && !c.is_poisoned())
                .map(|(_, c)| c.clone());
            let mut ids: Vec<(i32, String)> = st.metadata.brokers.iter().map(|(i, a)| (*i, a.clone())).collect();
            ids.sort();
            (existing, ids)
        };
        if let Some(conn) = existing {
            return Ok(conn);
        }
        for addr in &self.config.bootstrap_servers {
            if !candidates.iter().any(|(_, a)| a == addr) {
                candidates.push((BOOTSTRAP_ID, addr.clone()));
            }
        }
        let mut last = String::from("no bootstrap.servers configured");
        for (id, addr) in &candidates {
            match self.connect(*id, addr, Purpose::Control).await {
                Ok(conn) => return Ok(conn),
                Err(e) => last = e.to_string(),
            }
        }
        let tried: Vec<&str> = candidates.iter().map(|(_, a)| a.as_str()).collect();
        Err(WireError::Unreachable {
            cluster: self.name.to_string(),
            tried: tried.join(", "),
            last,
        })
    }

    /// A connection to broker `id` for `purpose`, made (or remade) if needed.
    pub async fn broker(&self, id: i32, purpose: Purpose) -> Result<Arc<Connection>, WireError> {
        let addr = {
            let st = self.state.lock().expect("cluster lock");
            if let Some(c) = st.conns.get(&(id, purpose)) {
                if !c.is_poisoned() {
                    return Ok(c.clone());
                }
            }
            st.metadata.brokers.get(&id).cloned()
        };
        let addr = match addr {
            Some(a) => a,
            None => {
                self.refresh_metadata(None).await?;
                self.metadata()
                    .brokers
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| WireError::Connect {
                        cluster: self.name.to_string(),
                        addr: format!("broker id {id}"),
                        reason: "broker not in metadata".to_string(),
                    })?
            }
        };
        self.connect(id, &addr, purpose).await
    }

    /// The Produce multiplexer of a broker's Produce connection (see [`super::produce_mux`]),
    /// connecting first if needed. Every sink producing to that broker shares it.
    pub async fn producer(&self, id: i32) -> Result<ProduceSender, WireError> {
        let conn = self.broker(id, Purpose::Produce).await?;
        let mut st = self.state.lock().expect("cluster lock");
        if let Some(sender) = st.producers.get(&id).filter(|s| s.serves(&conn)) {
            return Ok(sender.clone());
        }
        let sender = ProduceSender::spawn(conn);
        st.producers.insert(id, sender.clone());
        Ok(sender)
    }

    async fn connect(&self, id: i32, addr: &str, purpose: Purpose) -> Result<Arc<Connection>, WireError> {
        self.wait_backoff(addr).await;
        let cfg = &self.config;
        let result = Connection::connect(
            self.name.clone(),
            addr,
            &cfg.client_id,
            cfg.connect_timeout,
            cfg.request_timeout,
            match purpose {
                Purpose::Fetch => ReadMode::Exact,
                Purpose::Control | Purpose::Produce => ReadMode::Buffered,
            },
        )
        .await;
        let mut st = self.state.lock().expect("cluster lock");
        match result {
            Ok(conn) => {
                st.failures.remove(addr);
                // Another task may have connected meanwhile: keep the connection that may
                // already carry requests, and let the new, idle one go.
                if let Some(existing) = st.conns.get(&(id, purpose)).filter(|c| !c.is_poisoned()) {
                    return Ok(existing.clone());
                }
                let conn = Arc::new(conn);
                st.conns.insert((id, purpose), conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let entry = st.failures.entry(addr.to_string()).or_insert((0, Instant::now()));
                entry.0 = entry.0.saturating_add(1);
                entry.1 = Instant::now();
                Err(e)
            }
        }
    }

    /// Sleeps out the reconnect backoff of an address that failed recently.
    async fn wait_backoff(&self, addr: &str) {
        let wait = {
            let st = self.state.lock().expect("cluster lock");
            st.failures.get(addr).map(|(n, at)| {
                let exp = self.config.reconnect_backoff.saturating_mul(1 << (*n).min(10));
                let backoff = exp.min(self.config.reconnect_backoff_max);
                backoff.saturating_sub(at.elapsed())
            })
        };
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Refreshes metadata for all topics unless it was refreshed less than `min_age` ago:
    /// many partitions hitting NOT_LEADER at once cause one refresh, not one each.
    pub async fn refresh_metadata_if_older(&self, min_age: Duration) -> Result<(), WireError> {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.metadata_age().is_some_and(|age| age < min_age) {
            return Ok(()); // refreshed meanwhile, by us or by whoever held the lock
        }
        self.refresh_metadata(None).await?;
        Ok(())
    }

    /// Time since the last successful metadata refresh.
    pub fn metadata_age(&self) -> Option<Duration> {
        self.state
            .lock()
            .expect("cluster lock")
            .last_refresh
            .map(|t| t.elapsed())
    }

    /// Fetches metadata for `topics` (all topics when `None`) and updates the cache.
    ///
    /// Topics missing from the answer keep their cached entry: a broker that answers with
    /// incomplete metadata must not make every partition lose its leader.
    pub async fn refresh_metadata(&self, topics: Option<&[String]>) -> Result<Arc<Metadata>, WireError> {
        let conn = self.any_broker().await?;
        let version = conn.version_for::<MetadataRequest>(12)?;
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(StrBytes::from_string(t.clone()).into()))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let response = conn.call(&request, version).await?;
        let fresh = parse_metadata(&response);
        let mut st = self.state.lock().expect("cluster lock");
        let mut merged = (*st.metadata).clone();
        merged.brokers = fresh.brokers;
        merged.controller_id = fresh.controller_id;
        merged.topics.extend(fresh.topics);
        st.metadata = Arc::new(merged);
        st.last_refresh = Some(Instant::now());
        Ok(st.metadata.clone())
    }
}

fn parse_metadata(response: &MetadataResponse) -> Metadata {
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let topics = response
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let meta = TopicMetadata {
                name: name.clone(),
                id: t.topic_id,
                internal: t.is_internal,
                error_code: t.error_code,
                partitions,
            };
            Some((name, meta))
        })
        .collect();
    Metadata {
        brokers,
        controller_id: response.controller_id.0,
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_finds_partitions_by_index() {
        let partitions = [0, 1, 2, 5, 9]
            .iter()
            .map(|&partition| PartitionMetadata {
                partition,
                leader: if partition == 2 { -1 } else { 100 + partition },
                leader_epoch: 0,
                error_code: 0,
            })
            .collect();
        let topic = TopicMetadata {
            name: "t".into(),
            id: Uuid::nil(),
            internal: false,
            error_code: 0,
            partitions,
        };
        let meta = Metadata {
            topics: HashMap::from([("t".to_string(), topic)]),
            ..Metadata::default()
        };
        assert_eq!(meta.leader("t", 0), Some(100));
        assert_eq!(meta.leader("t", 9), Some(109));
        assert_eq!(meta.leader("t", 5), Some(105));
        assert_eq!(meta.leader("t", 2), None, "no leader");
        assert_eq!(meta.leader("t", 3), None, "no such partition");
        assert_eq!(meta.leader("u", 0), None, "no such topic");
    }
}
