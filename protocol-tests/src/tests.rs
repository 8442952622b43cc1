//! One test per [`Violation`], each breaking exactly one rule of a valid batch.

use crate::craft::{record, varint, varlong, CraftedBatch};
use crate::{codec, validate_produced_batch, BatchSummary, Expect, Violation};

fn check(batch: &CraftedBatch) -> Result<BatchSummary, Violation> {
    validate_produced_batch(&batch.encode(), &Expect::default())
}

fn valid() -> CraftedBatch {
    CraftedBatch::valid(&[b"a", b"bb", b"ccc"])
}

fn with(f: impl FnOnce(&mut CraftedBatch)) -> Result<BatchSummary, Violation> {
    let mut b = valid();
    f(&mut b);
    check(&b)
}

fn with_records(records: Vec<Vec<u8>>, f: impl FnOnce(&mut CraftedBatch)) -> Result<BatchSummary, Violation> {
    let mut b = valid();
    b.record_count = records.len() as i32;
    b.last_offset_delta = b.record_count - 1;
    b.records = records.concat();
    f(&mut b);
    check(&b)
}

#[test]
fn valid_batch_passes_with_every_codec() {
    for codec in 0..=4u8 {
        let mut b = valid();
        b.attributes = u16::from(codec);
        b.records = codec::compress(codec, &b.records);
        let summary = check(&b).unwrap_or_else(|v| panic!("codec {codec}: {v}"));
        assert_eq!(summary.record_count, 3);
        assert_eq!(summary.compression, codec);
        assert_eq!(summary.records[2].value.as_deref(), Some(&b"ccc"[..]));
        assert_eq!(summary.records[1].offset_delta, 1);
    }
    let mut b = valid();
    b.attributes = 2;
    b.records = codec::compress_snappy_raw(&b.records);
    check(&b).unwrap();
}

#[test]
fn idempotent_batch_and_expectations() {
    let mut b = valid();
    (b.producer_id, b.producer_epoch, b.base_sequence) = (77, 3, 1000);
    let bytes = b.encode();
    let all = Expect {
        producer_id: Some(77),
        producer_epoch: Some(3),
        base_sequence: Some(1000),
    };
    validate_produced_batch(&bytes, &all).unwrap();
    let wrong = Expect {
        base_sequence: Some(999),
        ..all
    };
    assert_eq!(
        validate_produced_batch(&bytes, &wrong),
        Err(Violation::Unexpected {
            field: "baseSequence",
            expected: 999,
            actual: 1000
        })
    );
    let wrong = Expect {
        producer_id: Some(1),
        ..Expect::default()
    };
    assert!(matches!(
        validate_produced_batch(&bytes, &wrong),
        Err(Violation::Unexpected {
            field: "producerId",
            ..
        })
    ));
}

#[test]
fn framing_violations() {
    let bytes = valid().encode();
    assert_eq!(
        validate_produced_batch(&bytes[..60], &Expect::default()),
        Err(Violation::TooShort { len: 60 })
    );
    let cut = &bytes[..bytes.len() - 1];
    assert!(matches!(
        validate_produced_batch(cut, &Expect::default()),
        Err(Violation::LengthMismatch { .. })
    ));
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(
        validate_produced_batch(&two, &Expect::default()),
        Err(Violation::TrailingBytes { extra: bytes.len() })
    );
    assert!(matches!(
        with(|b| b.batch_length = Some(-3)),
        Err(Violation::LengthMismatch { batch_length: -3, .. })
    ));
    assert!(matches!(
        with(|b| b.batch_length = Some(10)),
        Err(Violation::LengthMismatch { .. })
    ));
}

#[test]
fn header_violations() {
    assert_eq!(with(|b| b.magic = 1), Err(Violation::BadMagic { magic: 1 }));
    assert_eq!(
        with(|b| b.base_offset = 42),
        Err(Violation::NonZeroBaseOffset { base_offset: 42 })
    );
    assert!(matches!(
        with(|b| b.crc = Some(0x1234)),
        Err(Violation::CrcMismatch { stored: 0x1234, .. })
    ));
    assert_eq!(
        with(|b| {
            b.record_count = 0;
            b.last_offset_delta = -1;
            b.records.clear();
        }),
        Err(Violation::NoRecords { record_count: 0 })
    );
    assert_eq!(
        with(|b| b.last_offset_delta = 5),
        Err(Violation::OffsetRangeMismatch {
            last_offset_delta: 5,
            record_count: 3
        })
    );
}

#[test]
fn attribute_violations() {
    assert_eq!(with(|b| b.attributes = 0x20), Err(Violation::ControlBit));
    assert_eq!(with(|b| b.attributes = 0x10), Err(Violation::TransactionalBit));
    assert_eq!(with(|b| b.attributes = 0x08), Err(Violation::LogAppendTimeBit));
    assert_eq!(with(|b| b.attributes = 0x40), Err(Violation::DeleteHorizonBit));
    assert_eq!(
        with(|b| b.attributes = 0x0100),
        Err(Violation::ReservedAttributeBits { attributes: 0x0100 })
    );
    assert_eq!(with(|b| b.attributes = 0x05), Err(Violation::UnknownCodec { codec: 5 }));
}

#[test]
fn producer_violations() {
    let set = |id, epoch, seq| with(move |b| (b.producer_id, b.producer_epoch, b.base_sequence) = (id, epoch, seq));
    assert_eq!(set(-2, -1, -1), Err(Violation::InvalidProducerId { producer_id: -2 }));
    assert_eq!(
        set(5, -1, 0),
        Err(Violation::InvalidProducerEpoch {
            producer_id: 5,
            producer_epoch: -1
        })
    );
    assert_eq!(
        set(5, 0, -1),
        Err(Violation::InvalidSequence {
            producer_id: 5,
            base_sequence: -1
        })
    );
    assert_eq!(
        set(-1, 0, -1),
        Err(Violation::StrayProducerFields {
            producer_epoch: 0,
            base_sequence: -1
        })
    );
    assert_eq!(
        set(-1, -1, 0),
        Err(Violation::StrayProducerFields {
            producer_epoch: -1,
            base_sequence: 0
        })
    );
    set(0, 0, 0).unwrap();
}

#[test]
fn decompression_violation() {
    let err = with(|b| b.attributes = 4).unwrap_err();
    assert!(matches!(err, Violation::Decompression { codec: 4, .. }), "{err}");
}

#[test]
fn record_count_violations() {
    assert_eq!(
        with(|b| {
            b.record_count = 4;
            b.last_offset_delta = 3;
        }),
        Err(Violation::MissingRecords { declared: 4, found: 3 })
    );
    let err = with(|b| {
        b.record_count = 2;
        b.last_offset_delta = 1;
    });
    assert_eq!(
        err,
        Err(Violation::TrailingRecordBytes {
            remaining: record(2, 0, None, Some(b"ccc"), &[]).len()
        })
    );
}

#[test]
fn record_length_violations() {
    // Length varint one larger than the fields: pad the record with a stray byte.
    let mut padded = record(0, 0, None, Some(b"v"), &[]);
    padded[0] += 2; // zigzag: +1 byte
    padded.push(0);
    assert_eq!(
        with_records(vec![padded], |_| {}),
        Err(Violation::RecordLengthMismatch {
            index: 0,
            declared: 8,
            actual: 7
        })
    );
    // Length varint one smaller than the fields.
    let mut short = record(0, 0, None, Some(b"v"), &[]);
    short[0] -= 2;
    let second = record(1, 0, None, Some(b"w"), &[]);
    assert!(matches!(
        with_records(vec![short, second], |_| {}),
        Err(Violation::RecordOverrun {
            index: 0,
            declared: 6,
            ..
        })
    ));
    // Length beyond the records section.
    let mut long = record(0, 0, None, Some(b"v"), &[]);
    long[0] = 0x7e; // 63
    assert!(matches!(
        with_records(vec![long], |_| {}),
        Err(Violation::RecordOverrun {
            declared: 63,
            available: 7,
            ..
        })
    ));
}

#[test]
fn record_field_violations() {
    let mut attrs = record(0, 0, None, Some(b"v"), &[]);
    attrs[1] = 1;
    assert_eq!(
        with_records(vec![attrs], |_| {}),
        Err(Violation::RecordAttributes {
            index: 0,
            attributes: 1
        })
    );

    let gap = vec![record(0, 0, None, Some(b"a"), &[]), record(2, 0, None, Some(b"b"), &[])];
    assert_eq!(
        with_records(gap, |_| {}),
        Err(Violation::OffsetDeltaNotConsecutive {
            index: 1,
            offset_delta: 2
        })
    );

    let mut body = vec![0u8, 0, 0, 2, b'k', 2, b'v'];
    varint(&mut body, 1_000); // 1000 headers in a 10-byte record
    let mut rec = Vec::new();
    varint(&mut rec, body.len() as i32);
    rec.extend_from_slice(&body);
    assert_eq!(
        with_records(vec![rec], |_| {}),
        Err(Violation::BadHeaderCount { index: 0, count: 1_000 })
    );

    let mut body = vec![0u8, 0, 0, 1, 1];
    varint(&mut body, -1); // header count -1
    let mut rec = Vec::new();
    varint(&mut rec, body.len() as i32);
    rec.extend_from_slice(&body);
    assert_eq!(
        with_records(vec![rec], |_| {}),
        Err(Violation::BadHeaderCount { index: 0, count: -1 })
    );
}

#[test]
fn malformed_record_violations() {
    // Key length -2 (null must be exactly -1).
    let mut body = vec![0u8, 0, 0];
    varint(&mut body, -2);
    body.extend_from_slice(&[1, 0]);
    let mut rec = Vec::new();
    varint(&mut rec, body.len() as i32);
    rec.extend_from_slice(&body);
    assert!(matches!(
        with_records(vec![rec], |_| {}),
        Err(Violation::MalformedRecord { index: 0, .. })
    ));

    // A six-byte varint for the offset delta.
    let mut body = vec![0u8, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 1, 0];
    let mut rec = Vec::new();
    varint(&mut rec, body.len() as i32);
    rec.append(&mut body);
    assert_eq!(
        with_records(vec![rec], |_| {}),
        Err(Violation::MalformedRecord {
            index: 0,
            reason: "varint is too long"
        })
    );

    // A header key that is not UTF-8.
    let bad = record(0, 0, None, None, &[("\u{e9}", None)]);
    let mut bad_utf8 = bad.clone();
    let at = bad.len() - 3; // first byte of the two-byte key
    bad_utf8[at] = 0xFF;
    assert_eq!(
        with_records(vec![bad_utf8], |_| {}),
        Err(Violation::MalformedRecord {
            index: 0,
            reason: "header key is not UTF-8"
        })
    );
}

#[test]
fn timestamp_violations() {
    let recs = vec![
        record(0, 0, None, Some(b"a"), &[]),
        record(1, 25, None, Some(b"b"), &[]),
    ];
    let ok = with_records(recs.clone(), |b| b.max_timestamp = b.base_timestamp + 25).unwrap();
    assert_eq!(ok.records[1].timestamp, 1_700_000_000_025);
    assert_eq!(
        with_records(recs, |_| {}),
        Err(Violation::MaxTimestampMismatch {
            max_timestamp: 1_700_000_000_000,
            expected: 1_700_000_000_025
        })
    );

    // -1 is NO_TIMESTAMP and allowed; -5 is not.
    let none = with_records(vec![record(0, 0, None, Some(b"a"), &[])], |b| {
        b.base_timestamp = -1;
        b.max_timestamp = -1;
    });
    assert_eq!(none.unwrap().records[0].timestamp, -1);
    let negative = with_records(vec![record(0, -4, None, Some(b"a"), &[])], |b| {
        b.base_timestamp = -1;
        b.max_timestamp = -5;
    });
    assert_eq!(
        negative,
        Err(Violation::InvalidTimestamp {
            index: 0,
            timestamp: -5
        })
    );

    let mut overflow = vec![0u8];
    varlong(&mut overflow, i64::MAX);
    let mut body = overflow;
    body.extend_from_slice(&[0, 1, 1, 0]);
    let mut rec = Vec::new();
    varint(&mut rec, body.len() as i32);
    rec.extend_from_slice(&body);
    assert!(matches!(
        with_records(vec![rec], |_| {}),
        Err(Violation::MalformedRecord { index: 0, .. })
    ));
}

#[test]
fn keys_for_compacted_targets() {
    let keyed = with_records(vec![record(0, 0, Some(b"k"), Some(b"v"), &[("h", Some(b"x"))])], |_| {}).unwrap();
    keyed.check_keyed().unwrap();
    assert_eq!(keyed.records[0].headers, vec![("h".to_owned(), Some(b"x".to_vec()))]);
    assert_eq!(
        check(&valid()).unwrap().check_keyed(),
        Err(Violation::MissingKey { index: 0 })
    );
}

#[test]
fn never_panics_on_any_byte_flip() {
    let bytes = valid().encode();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let _ = validate_produced_batch(&b, &Expect::default());
            let _ = validate_produced_batch(&b[..i], &Expect::default());
        }
    }
}
