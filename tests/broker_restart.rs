//! The target broker goes away for a few seconds in the middle of a run and comes back
//! (durable S3-backed storage, so its data survives). kferry must recover on its own.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Broker, MotoServer};
use support::daemon::*;

#[test]
fn target_broker_restart_mid_run_is_survived() {
    let moto = MotoServer::start();
    let source = Broker::start_memory("bounce-src");
    let mut target = Broker::start_s3("bounce-dst", &moto);
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "bounce";
    create_topic(&src, topic, PARTITIONS);
    let dir = tempdir("bounce");
    let config = write_config(&dir, &src, &dst, topic, 500);

    let mut kferry = start_kferry(&config, "kferry-bounce.log");
    let mut producer = produce_in_background(&src, topic, 60_000, 10_000);
    wait_for(Duration::from_secs(30), || total(&dst, topic) > 5_000);
    // The target dies while the producer is still writing (SIGKILL: no graceful close) ...
    target.kill();
    let at_kill = total(&src, topic);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        total(&src, topic) > at_kill,
        "the source kept growing during the outage"
    );
    // ... and comes back on the same port with the same (durable) storage.
    target.restart();
    assert!(producer.wait().unwrap().success(), "producer failed");
    wait_replicated(&src, &dst, topic, Duration::from_secs(180));
    signal(&kferry, "-TERM");
    assert!(kferry.wait().unwrap().success(), "kferry exits 0 on SIGTERM");
    assert!(
        kferry_log_mentions("kferry-bounce.log", "produce retry"),
        "the outage was noticed and retried"
    );

    let v = verify(&src, &dst, topic);
    println!("after a target broker restart: {v}");
    assert_eq!(v["records"], 60_000, "{v}");
    for key in ["lost", "reordered", "mismatched"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
    // Batches in flight when the broker went down may be written twice if the broker lost
    // the producer's state: at most 5 per partition, each well under 1000 records here.
    assert!(
        v["duplicated"].as_u64().unwrap() <= u64::from(PARTITIONS) * 5 * 1000,
        "{v}"
    );
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "condition not met within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
