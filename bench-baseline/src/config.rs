//! The librdkafka settings of the two clients, each with the reason for its value.
//!
//! The aim is what a competent operator would run MirrorMaker with for throughput: large
//! fetches and batches, deep local queues so neither client waits on the other, and the
//! same delivery guarantees kferry gives (read_committed, CRC checks, idempotent acks=all
//! produce). `--consumer-prop` / `--producer-prop` override any of them.
//!
//! References: librdkafka `CONFIGURATION.md` (2.12), Kafka's MirrorMaker 2 `MirrorMakerConfig`.

use clap::ValueEnum;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};

/// The codec the producer compresses the target batches with (`compression.codec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The librdkafka name of the codec.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// The `client.id` of both clients.
const CLIENT_ID: &str = "kferry-baseline";

/// The source consumer's settings.
pub fn consumer(bootstrap: &str, group: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", CLIENT_ID)
        .set("group.id", group)
        // The same guarantees kferry gives: never forward records of aborted transactions,
        // and verify every fetched batch's CRC (kferry checks CRCs too).
        .set("isolation.level", "read_committed")
        .set("check.crcs", "true")
        .set("auto.offset.reset", "earliest")
        // Needed by --until-caught-up to see where a partition ends.
        .set("enable.partition.eof", "true")
        // Offsets are committed in the background every 5 s (MirrorMaker's cadence), but
        // only offsets the target has acknowledged are stored for commit (main.rs stores
        // them from the delivery reports), as MirrorMaker 2 does: at-least-once, like kferry.
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "5000")
        .set("enable.auto.offset.store", "false")
        // Large fetches: 50 MiB per request (the Java consumer's fetch.max.bytes) and
        // 4 MiB per partition (4x the default, so one fetch carries several 1 MB batches).
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "4194304")
        // tansu holds every Fetch for its full max_wait even when data is ready, so the
        // 500 ms default would cap throughput at two fetches a second per broker. 100 ms keeps
        // the pipeline full there; on Kafka (which answers early) it only costs a few more
        // empty fetches when the source is idle.
        .set("fetch.wait.max.ms", "100")
        // Prefetch deep enough that the loop never waits for a fetch: up to 128 MiB (twice
        // the default) queued locally over all partitions.
        .set("queued.max.messages.kbytes", "131072")
        .set_log_level(RDKafkaLogLevel::Warning);
    apply(&mut c, overrides);
    c
}

/// The target producer's settings.
pub fn producer(bootstrap: &str, codec: Codec, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", CLIENT_ID)
        // acks=all, at most 5 requests in flight per partition, retries without duplicates
        // or reordering: what kferry's own produce path does.
        .set("enable.idempotence", "true")
        // The target topic is created beforehand (with the source's partition count); a
        // typo must not create a one-partition topic as a side effect of a metadata request.
        .set("allow.auto.create.topics", "false")
        .set("compression.codec", codec.name())
        // Big batches: up to 1 MB (the broker's default max.message.bytes) and no record
        // count limit below that (the default of 10k records would cut ~100-byte records
        // into 1 MB / 10k-record batches first). 10 ms of linger fills them under load
        // without adding visible latency.
        .set("linger.ms", "10")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "1000000")
        // A local queue that absorbs a whole consumer prefetch, so send() rarely reports
        // QueueFull; when it does, main.rs polls and retries (nothing is dropped).
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "262144")
        .set_log_level(RDKafkaLogLevel::Warning);
    apply(&mut c, overrides);
    c
}

fn apply(c: &mut ClientConfig, overrides: &[(String, String)]) {
    for (k, v) in overrides {
        c.set(k, v);
    }
}
