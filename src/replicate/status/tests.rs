use super::table::{human_bytes, human_duration, render};
use super::*;
use crate::batch::BatchBuilder;

/// A batch of `records` records of `value_len` bytes each at `base`, first timestamp `ts`.
fn batch(base: i64, records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new().base_offset(base).base_timestamp(ts);
    for _ in 0..records {
        b = b.value(vec![7u8; value_len]);
    }
    b.build().as_bytes().to_vec()
}

fn reading(committed: Option<i64>, log_start: i64, end: i64) -> PartitionReading {
    PartitionReading {
        topic: "orders".into(),
        partition: 3,
        committed,
        log_start,
        end,
        target_topic_exists: true,
        sample: None,
    }
}

#[test]
fn sample_reads_headers_of_whole_and_cut_batches() {
    let first = batch(10, 4, 100, 5_000);
    let second = batch(14, 6, 100, 6_000);
    let mut blob = first.clone();
    blob.extend_from_slice(&second[..HEADER_LEN + 3]); // cut short, header whole
    let s = BatchSample::from_blob(&blob, 12).expect("sample");
    assert_eq!(s.first_timestamp, Some(5_000));
    assert_eq!(s.offsets, 10);
    assert_eq!(s.bytes, (first.len() + second.len()) as u64, "declared lengths count");
}

#[test]
fn sample_skips_batches_below_the_position_and_stops_at_partial_headers() {
    let mut blob = batch(0, 5, 10, 1_000);
    blob.extend(batch(5, 5, 10, 2_000));
    let s = BatchSample::from_blob(&blob, 5).expect("second batch");
    assert_eq!((s.first_timestamp, s.offsets), (Some(2_000), 5));
    assert_eq!(BatchSample::from_blob(&blob, 10), None, "nothing at or past 10");
    assert_eq!(
        BatchSample::from_blob(&blob[..HEADER_LEN - 1], 0),
        None,
        "no whole header"
    );
    let mut legacy = blob.clone();
    legacy[field::MAGIC] = 1;
    assert_eq!(BatchSample::from_blob(&legacy, 0), None, "legacy format: no v2 header");
}

#[test]
fn log_append_time_batches_use_the_max_timestamp() {
    let mut b = batch(0, 2, 10, 1_000);
    let attributes = u16::from_be_bytes([b[field::ATTRIBUTES], b[field::ATTRIBUTES + 1]]) | Attributes::LOG_APPEND_TIME;
    b[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    b[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&9_999i64.to_be_bytes());
    assert_eq!(BatchSample::from_blob(&b, 0).unwrap().first_timestamp, Some(9_999));
    let mut none = batch(0, 1, 10, NO_TIMESTAMP);
    none[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&NO_TIMESTAMP.to_be_bytes());
    assert_eq!(BatchSample::from_blob(&none, 0).unwrap().first_timestamp, None);
}

#[test]
fn lagging_partition_gets_offset_time_and_byte_lag() {
    let r = PartitionReading {
        sample: Some(BatchSample {
            first_timestamp: Some(10_000),
            bytes: 2_000,
            offsets: 20,
        }),
        ..reading(Some(150), 100, 180)
    };
    let row = evaluate("eu", &r, 14_200);
    assert_eq!(row.state, State::Lagging);
    assert_eq!(row.lag, 30);
    assert_eq!(row.time_lag_ms, Some(4_200));
    assert_eq!(row.bytes_behind, Some(3_000), "30 offsets × 100 bytes");
    assert_eq!(row.retention_margin, Some(50));
    assert_eq!(row.retention_margin_bytes, Some(5_000));
    assert_eq!(row.lost, None);
}

#[test]
fn states_follow_position_log_start_end_and_target() {
    let state = |r: PartitionReading| evaluate("eu", &r, 0).state;
    assert_eq!(state(reading(Some(180), 100, 180)), State::CaughtUp);
    assert_eq!(state(reading(Some(179), 100, 180)), State::Lagging);
    assert_eq!(state(reading(None, 100, 180)), State::NotStarted);
    assert_eq!(state(reading(Some(90), 100, 180)), State::DataLost);
    assert_eq!(state(reading(Some(200), 100, 180)), State::AheadOfEnd);
    let no_target = PartitionReading {
        target_topic_exists: false,
        ..reading(None, 0, 5)
    };
    assert_eq!(state(no_target), State::NoTargetTopic);
}

#[test]
fn caught_up_not_started_and_lost_rows() {
    let caught_up = evaluate("eu", &reading(Some(180), 100, 180), 99);
    assert_eq!(
        (caught_up.lag, caught_up.time_lag_ms, caught_up.bytes_behind),
        (0, Some(0), Some(0))
    );
    let fresh = evaluate("eu", &reading(None, 100, 180), 99);
    assert_eq!((fresh.lag, fresh.time_lag_ms, fresh.retention_margin), (80, None, None));
    let lost = evaluate("eu", &reading(Some(90), 100, 180), 99);
    assert_eq!((lost.lag, lost.lost, lost.retention_margin), (90, Some(10), Some(0)));
    assert_eq!(lost.bytes_behind, None, "no sample, no estimate");
    let ahead = evaluate("eu", &reading(Some(200), 100, 180), 99);
    assert_eq!((ahead.lag, ahead.time_lag_ms, ahead.bytes_behind), (0, None, None));
    assert_eq!(ahead.retention_margin, None);
}

#[test]
fn durations_and_bytes_read_short() {
    assert_eq!(human_duration(0), "0s");
    assert_eq!(human_duration(4_200), "4.2s");
    assert_eq!(human_duration(59_940), "59.9s");
    assert_eq!(human_duration(190_000), "3m10s");
    assert_eq!(human_duration(2 * 3_600_000 + 5 * 60_000), "2h05m");
    assert_eq!(human_duration(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
    assert_eq!(human_bytes(812), "812 B");
    assert_eq!(human_bytes(12_595), "12.3 KiB");
    assert_eq!(human_bytes(4 << 20), "4.0 MiB");
}

#[test]
fn table_has_a_row_per_partition_and_a_total_per_route() {
    let lagging = PartitionReading {
        partition: 0,
        sample: Some(BatchSample {
            first_timestamp: Some(1_000),
            bytes: 1_000,
            offsets: 10,
        }),
        ..reading(Some(5), 0, 25)
    };
    let rows = vec![
        evaluate("eu", &lagging, 4_200),
        evaluate("eu", &reading(Some(180), 100, 180), 4_200),
        evaluate("us", &reading(None, 0, 7), 4_200),
    ];
    let table = render(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 1 + 2 + 1 + 1 + 1, "{table}");
    let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(words(0)[..3], ["ROUTE", "TOPIC", "PARTITION"]);
    assert_eq!(
        words(1),
        ["eu", "orders", "0", "5", "25", "20", "3.2s", "~2.0", "KiB", "5", "(~500", "B)", "lagging"]
    );
    assert_eq!(
        words(2),
        [
            "eu",
            "orders",
            "3",
            "180",
            "180",
            "0",
            "0s",
            "0",
            "B",
            "80",
            "caught-up"
        ]
    );
    assert_eq!(
        words(3),
        [
            "eu",
            "total",
            "(2",
            "partitions)",
            "20",
            "3.2s",
            "~2.0",
            "KiB",
            "min",
            "5",
            "lagging"
        ]
    );
    assert_eq!(
        words(4),
        ["us", "orders", "3", "-", "7", "7", "-", "?", "-", "not-started"]
    );
    assert!(
        lines[5].starts_with("us") && lines[5].ends_with("not-started"),
        "{table}"
    );
    let lag_column = lines[0].find(" LAG").unwrap() + " LAG".len();
    assert!(
        lines[1..].iter().all(|l| l[..lag_column].ends_with(char::is_numeric)),
        "numbers right-aligned under LAG:\n{table}"
    );
}

#[test]
fn rows_serialize_with_kebab_states() {
    let row = evaluate("eu", &reading(None, 0, 7), 0);
    let json = serde_json::to_value(&row).unwrap();
    assert_eq!(json["state"], "not-started");
    assert_eq!(json["replicated"], serde_json::Value::Null);
    assert_eq!(json["lag"], 7);
}
