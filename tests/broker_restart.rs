//! The target broker goes away for a few seconds in the middle of a run and comes back
//! (durable S3-backed storage, so its data survives). kferry must recover on its own, with
//! nothing lost and nothing written twice.

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
    let (found, resent) = (log_count("found on the target"), log_count("missing on the target"));
    println!("after a target broker restart: {v}; duplicate answers found on the target: {found}, missing and resent: {resent}");
    assert_eq!(v["records"], 60_000, "{v}");
    // The target may answer a batch it lost as a duplicate (tansu on S3 keeps the producer's
    // sequence but not the batch); kferry checks every such answer against the target's log
    // and resends what is missing, one batch at a time, so nothing is lost or written twice.
    for key in ["lost", "duplicated", "reordered", "mismatched", "extra"] {
        assert_eq!(v[key], 0, "{key}: {v}");
    }
}

/// Lines of this test's kferry log that contain `text`.
fn log_count(text: &str) -> usize {
    let path = std::env::temp_dir().join(format!("kferry-bounce.log-{}", std::process::id()));
    let log = std::fs::read_to_string(path).unwrap_or_default();
    log.lines().filter(|l| l.contains(text)).count()
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "condition not met within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
