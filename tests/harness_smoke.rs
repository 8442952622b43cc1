//! Smoke tests of the integration-test harness itself (tests/common): real tansu brokers,
//! the confluent-kafka based kclient, and durable (S3-backed) broker restarts.
//! Independent of kferry's own API.

mod common;

use common::{kclient, kclient_output, Broker, MotoServer};
use serde_json::Value;

fn total(v: &Value) -> u64 {
    v["total"].as_u64().expect("total")
}

#[test]
fn two_memory_brokers_produce_consume_verify() {
    let a = Broker::start_memory("smoke-a");
    let b = Broker::start_memory("smoke-b");
    assert_ne!(a.port, b.port);
    let (ba, bb) = (a.bootstrap(), b.bootstrap());

    for bs in [&ba, &bb] {
        let created = kclient(&[
            "create-topic",
            "--bootstrap",
            bs,
            "--topic",
            "smoke",
            "--partitions",
            "3",
        ]);
        assert_eq!(created["partitions"], 3, "{created}");
    }
    let produced = kclient(&[
        "produce",
        "--bootstrap",
        &ba,
        "--topic",
        "smoke",
        "--partitions",
        "3",
        "--count",
        "1000",
        "--codec",
        "lz4",
        "--idempotent",
    ]);
    assert_eq!(produced["produced"], 1000, "{produced}");

    let consumed = kclient(&["consume", "--bootstrap", &ba, "--topic", "smoke", "--expect", "1000"]);
    assert_eq!(total(&consumed), 1000);
    let p0 = consumed["partitions"]["0"].as_array().expect("partition 0 records");
    assert_eq!(p0.len(), 334);
    // Record i goes to partition i % 3, in order, with CreateTime base + i.
    for (n, r) in p0.iter().enumerate() {
        let i = (n * 3) as u64;
        assert_eq!(r["offset"], n as u64);
        assert_eq!(r["i"], i);
        assert_eq!(r["ts"], 1_700_000_000_000u64 + i);
        assert_eq!(r["ts_type"], "create");
        assert_eq!(r["key"].is_null(), matches!(i % 10, 0), "{r}");
    }

    // A topic verified against itself is perfect, with identical offsets.
    let v = kclient(&[
        "verify",
        "--source",
        &ba,
        "--target",
        &ba,
        "--topic",
        "smoke",
        "--require-offsets-equal",
    ]);
    for k in ["lost", "duplicated", "reordered", "mismatched", "extra"] {
        assert_eq!(v[k], 0, "{k} in {v}");
    }
    assert_eq!(v["records"], 1000);
    assert_eq!(v["offsets_equal"], 1000);

    // Against an empty copy on the other broker, everything is lost and verify fails.
    let out = kclient_output(&["verify", "--source", &ba, "--target", &bb, "--topic", "smoke"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.json.as_ref().expect("verify json")["lost"], 1000);

    // A copy that holds one record twice is caught as a duplicate.
    kclient(&[
        "produce",
        "--bootstrap",
        &bb,
        "--topic",
        "smoke",
        "--count",
        "1000",
        "--codec",
        "zstd",
    ]);
    kclient(&[
        "produce",
        "--bootstrap",
        &bb,
        "--topic",
        "smoke",
        "--count",
        "1",
        "--start",
        "5",
    ]);
    let out = kclient_output(&["verify", "--source", &ba, "--target", &bb, "--topic", "smoke"]);
    let v = out.json.expect("verify json");
    assert_eq!(out.code, 1);
    assert_eq!(
        (v["lost"].as_u64(), v["duplicated"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );

    let wm = kclient(&["watermarks", "--bootstrap", &bb, "--topic", "smoke"]);
    assert_eq!(wm["partitions"]["2"]["high"], 334, "{wm}");
}

#[test]
fn s3_backed_broker_keeps_data_across_restart() {
    let moto = MotoServer::start();
    let mut broker = Broker::start_s3("smoke-s3", &moto);
    assert!(broker.is_durable());
    let bs = broker.bootstrap();
    kclient(&[
        "create-topic",
        "--bootstrap",
        &bs,
        "--topic",
        "durable",
        "--partitions",
        "2",
    ]);
    kclient(&[
        "produce",
        "--bootstrap",
        &bs,
        "--topic",
        "durable",
        "--count",
        "500",
        "--codec",
        "gzip",
    ]);
    let before = kclient(&["consume", "--bootstrap", &bs, "--topic", "durable", "--summary"]);
    assert_eq!(total(&before), 500);

    let port = broker.port;
    broker.restart();
    assert_eq!(broker.port, port);
    assert!(broker.is_running());

    let after = kclient(&["consume", "--bootstrap", &bs, "--topic", "durable", "--summary"]);
    assert_eq!(after["partitions"], before["partitions"], "data changed across restart");

    // Appending after the restart continues the offsets.
    kclient(&[
        "produce",
        "--bootstrap",
        &bs,
        "--topic",
        "durable",
        "--count",
        "100",
        "--start",
        "500",
    ]);
    let more = kclient(&[
        "consume",
        "--bootstrap",
        &bs,
        "--topic",
        "durable",
        "--summary",
        "--expect",
        "600",
    ]);
    assert_eq!(more["partitions"]["0"]["last_offset"], 299, "{more}");

    // A crash (SIGKILL) loses nothing that was acknowledged either.
    broker.kill();
    assert!(!broker.is_running());
    broker.restart();
    let crashed = kclient(&["consume", "--bootstrap", &bs, "--topic", "durable", "--summary"]);
    assert_eq!(crashed["partitions"], more["partitions"]);
}
