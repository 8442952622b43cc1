//! Repartitioning by key: 6 source partitions into 4 and into 8 target partitions.
//!
//! Where each key must land is asked of librdkafka's `murmur2_random` partitioner (Java
//! compatible) through tests/client/partition_oracle.py, not of kferry's own murmur2. Null
//! keys keep their source partition modulo the target count. Per key and source partition,
//! records keep their order.

mod common;
mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use common::{kclient, Broker};
use support::{replicate_until_caught_up, BatchAudit};

const SOURCE_PARTITIONS: u64 = 6;
const RECORDS: u64 = 3_000;

/// key -> partition, as librdkafka's Java-compatible partitioner places it.
fn oracle(bootstrap: &str, topic: &str, partitions: u32, keys: &[String]) -> HashMap<String, u64> {
    kclient(&[
        "create-topic",
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--partitions",
        &partitions.to_string(),
    ]);
    let out = Command::new(common::python())
        .arg(common::repo_root().join("tests/client/partition_oracle.py"))
        .args([bootstrap, topic])
        .args(keys)
        .output()
        .expect("run partition oracle");
    assert!(out.status.success(), "oracle: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["partitions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, p)| (k.clone(), p.as_u64().unwrap()))
        .collect()
}

/// Replicates a 6-partition topic into a pre-created target topic of `target_partitions`.
async fn repartition_into(target_partitions: u32) {
    let source = Broker::start_memory(&format!("repart{target_partitions}-src"));
    let target = Broker::start_memory(&format!("repart{target_partitions}-dst"));
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "metrics.repart";
    let sp = SOURCE_PARTITIONS.to_string();
    kclient(&[
        "create-topic",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        &sp,
    ]);
    kclient(&[
        "produce",
        "--bootstrap",
        &src,
        "--topic",
        topic,
        "--partitions",
        &sp,
        "--count",
        &RECORDS.to_string(),
        "--codec",
        "lz4",
    ]);
    kclient(&[
        "create-topic",
        "--bootstrap",
        &dst,
        "--topic",
        topic,
        "--partitions",
        &target_partitions.to_string(),
    ]);
    let keys: Vec<String> = (0..97).map(|k| format!("k{k}")).collect();
    let placement = oracle(&dst, "oracle", target_partitions, &keys);

    let audit = BatchAudit::default();
    replicate_until_caught_up(&src, &dst, &[topic], &audit).await;
    let (_, records, violations) = audit.summary();
    assert!(violations.is_empty(), "{violations:#?}");
    assert_eq!(records, RECORDS);

    let tp = target_partitions.to_string();
    let got = kclient(&[
        "consume",
        "--bootstrap",
        &dst,
        "--topic",
        topic,
        "--partitions",
        &tp,
        "--expect",
        &RECORDS.to_string(),
    ]);
    let mut seen = 0;
    // (source partition, key) -> generator indices in target order
    let mut order: BTreeMap<(u64, String), Vec<u64>> = BTreeMap::new();
    for (partition, recs) in got["partitions"].as_object().unwrap() {
        let partition: u64 = partition.parse().unwrap();
        for r in recs.as_array().unwrap() {
            let i: u64 = r["headers"].as_array().unwrap().iter().find(|h| h[0] == "i").unwrap()[1]
                .as_str()
                .map(|hex| String::from_utf8(hex_decode(hex)).unwrap().parse().unwrap())
                .unwrap();
            let key = (i % 10 != 0).then(|| format!("k{}", i % 97));
            let want = match &key {
                Some(k) => placement[k],
                None => (i % SOURCE_PARTITIONS) % u64::from(target_partitions),
            };
            assert_eq!(
                partition, want,
                "record {i} (key {key:?}) in target partition {partition}, expected {want}"
            );
            order
                .entry((i % SOURCE_PARTITIONS, key.unwrap_or_default()))
                .or_default()
                .push(i);
            seen += 1;
        }
    }
    assert_eq!(seen, RECORDS, "every record arrived once");
    for ((sp, key), is) in order {
        assert!(
            is.windows(2).all(|w| w[0] < w[1]),
            "source partition {sp} key {key:?}: order {is:?}"
        );
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_into_four_by_key() {
    repartition_into(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_partitions_into_eight_by_key() {
    repartition_into(8).await;
}
