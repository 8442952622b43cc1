//! Crash and restart: kferry (the real binary) is SIGKILLed at random points while a real
//! producer writes 120,000 records, restarted each time, and finally stopped with SIGTERM.
//! The target is then read by an independent client and compared with the source.
//!
//! Bound on duplicates after SIGKILL: only batches that were in flight can be written twice,
//! at most `max.in.flight (5) x partitions x records per batch` per kill. kferry's restart
//! reconciliation (matching the target's tail to the source) is expected to bring it to 0.

mod common;

mod support;

use std::time::Duration;

use common::Broker;
use rand::Rng;
use support::daemon::*;

#[test]
fn sigkill_three_times_loses_nothing() {
    let source = Broker::start_memory("kill-src");
    let target = Broker::start_memory("kill-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "crash.kill";
    create_topic(&src, topic, PARTITIONS);
    let dir = tempdir("kill");
    // A long commit interval: each kill leaves acknowledged but uncommitted batches on the
    // target, which the restart must recognise instead of writing them again.
    let config = write_config(&dir, &src, &dst, topic, 3000);

    let mut producer = produce_in_background(&src, topic, 120_000, 20_000);
    let mut rng = rand::thread_rng();
    for round in 0..3 {
        let mut kferry = start_kferry(&config, &format!("kferry-kill-{round}.log"));
        std::thread::sleep(Duration::from_millis(rng.gen_range(700..2200)));
        signal(&kferry, "-KILL");
        kferry.wait().unwrap();
    }
    assert!(producer.wait().unwrap().success(), "producer failed");
    let mut kferry = start_kferry(&config, "kferry-kill-final.log");
    wait_replicated(&src, &dst, topic, Duration::from_secs(120));
    signal(&kferry, "-TERM");
    assert!(kferry.wait().unwrap().success(), "kferry exits 0 on SIGTERM");

    let v = verify(&src, &dst, topic);
    println!("after 3 SIGKILLs: {v}");
    assert_eq!(v["records"], 120_000, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["reordered"], 0, "{v}");
    assert_eq!(v["mismatched"], 0, "{v}");
    // librdkafka with linger 5 ms at 20k records/s makes batches of a few hundred records at
    // most; 3 kills x 4 partitions x 5 in flight x 1000 records is a generous bound.
    let duplicated = v["duplicated"].as_u64().unwrap();
    assert!(
        duplicated <= 3 * 4 * 5 * 1000,
        "duplicates beyond the in-flight bound: {v}"
    );
    let resumed = resumed_batches("kferry-kill-");
    println!("batches found already on the target at restarts: {resumed:?}; duplicates: {duplicated}");
    assert!(
        resumed.iter().any(|&n| n > 0),
        "no restart had to reconcile the target's tail: {resumed:?}"
    );
}

#[test]
fn sigterm_then_restart_duplicates_nothing() {
    let source = Broker::start_memory("term-src");
    let target = Broker::start_memory("term-dst");
    let (src, dst) = (source.bootstrap(), target.bootstrap());
    let topic = "crash.term";
    create_topic(&src, topic, PARTITIONS);
    let dir = tempdir("term");
    let config = write_config(&dir, &src, &dst, topic, 200);

    let mut producer = produce_in_background(&src, topic, 100_000, 25_000);
    for round in 0..2 {
        let mut kferry = start_kferry(&config, &format!("kferry-term-{round}.log"));
        std::thread::sleep(Duration::from_millis(1500));
        signal(&kferry, "-TERM");
        assert!(kferry.wait().unwrap().success(), "kferry exits 0 on SIGTERM");
    }
    assert!(producer.wait().unwrap().success(), "producer failed");
    let mut kferry = start_kferry(&config, "kferry-term-final.log");
    wait_replicated(&src, &dst, topic, Duration::from_secs(120));
    signal(&kferry, "-TERM");
    assert!(kferry.wait().unwrap().success());

    let v = verify(&src, &dst, topic);
    println!("after SIGTERM restarts: {v}");
    assert_exact(&v, 100_000);
}
