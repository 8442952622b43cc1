//! Embedding kferry in your own program.
//!
//! Replicates every topic matching `orders.*` from one cluster to another, counts the
//! forwarded bytes per topic with a batch observer (which sees each batch without copying
//! it), prints the positions every 5 seconds, and stops cleanly on Ctrl-C.
//!
//! ```text
//! cargo run --example embed -- SOURCE_BOOTSTRAP TARGET_BOOTSTRAP
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kferry::{ClusterConfig, Replicator, RouteConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(source), Some(target)) = (args.next(), args.next()) else {
        eprintln!("usage: embed SOURCE_BOOTSTRAP TARGET_BOOTSTRAP");
        std::process::exit(2);
    };

    let bytes_per_topic: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let counter = bytes_per_topic.clone();
    let replicator = Replicator::builder()
        .cluster(ClusterConfig::new("source", vec![source]))
        .cluster(ClusterConfig::new("target", vec![target]))
        .route(RouteConfig::new("orders", "source", "target").include(&["orders.*"]))
        .on_batch(move |batch| {
            // Runs on the partition's task for every acknowledged batch: keep it cheap.
            *counter
                .lock()
                .unwrap()
                .entry(batch.source_topic.to_string())
                .or_default() += batch.size() as u64;
        })
        .build()?;

    let running = replicator.start().await?;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                for (route, p) in running.status() {
                    println!("{route} {}-{}: replicated up to {} of {}", p.source_topic, p.partition, p.acked.source_next, p.high_watermark);
                }
                println!("bytes forwarded per topic: {:?}", bytes_per_topic.lock().unwrap());
            }
        }
    }
    running.shutdown().await?;
    Ok(())
}
