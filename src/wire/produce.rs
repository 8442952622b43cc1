//! Produce request encoding that never copies a batch payload.
//!
//! `kafka-protocol` encodes a `ProduceRequest` by copying its `records` into the output
//! buffer. kferry encodes Produce itself instead, as a list of segments: the small framing
//! fields and the rewritten 61-byte batch header go into one buffer, and each batch payload
//! (the bytes after the header, still a slice of the fetch response buffer) is its own
//! segment. The connection writes the segments with one vectored write.
//!
//! Supported versions: 3 (the first with v2 batches only) to 12. v9+ are "flexible"
//! (compact lengths and tagged fields). v13 names topics by id and is not used.
//!
//! References: Kafka `clients/src/main/resources/common/message/ProduceRequest.json`.

use bytes::{BufMut, Bytes, BytesMut};

/// Produce versions kferry can encode.
pub const PRODUCE_MIN_VERSION: i16 = 3;
/// See [`PRODUCE_MIN_VERSION`].
pub const PRODUCE_MAX_VERSION: i16 = 12;

/// One batch for one partition: a new header and the untouched payload.
#[derive(Debug, Clone)]
pub struct PartitionBatch {
    pub partition: i32,
    pub header: [u8; crate::batch::HEADER_LEN],
    pub payload: Bytes,
}

/// A Produce request: at most one batch per partition (Kafka rejects more from v3 on).
#[derive(Debug, Clone)]
pub struct ProduceRequestFrame<'a> {
    pub transactional_id: Option<&'a str>,
    pub acks: i16,
    pub timeout_ms: i32,
    pub topics: Vec<(&'a str, Vec<PartitionBatch>)>,
}

impl ProduceRequestFrame<'_> {
    /// Encodes the request body as segments for a vectored write.
    pub fn encode(&self, version: i16) -> Vec<Bytes> {
        assert!(
            (PRODUCE_MIN_VERSION..=PRODUCE_MAX_VERSION).contains(&version),
            "Produce v{version} is not supported by the encoder"
        );
        let flexible = version >= 9;
        let mut out = Segments::default();
        put_nullable_string(&mut out.buf, self.transactional_id, flexible);
        out.buf.put_i16(self.acks);
        out.buf.put_i32(self.timeout_ms);
        put_array_len(&mut out.buf, self.topics.len(), flexible);
        for (topic, partitions) in &self.topics {
            put_nullable_string(&mut out.buf, Some(topic), flexible);
            put_array_len(&mut out.buf, partitions.len(), flexible);
            for p in partitions {
                out.buf.put_i32(p.partition);
                let len = p.header.len() + p.payload.len();
                if flexible {
                    put_uvarint(&mut out.buf, len as u64 + 1);
                } else {
                    out.buf.put_i32(len as i32);
                }
                out.buf.put_slice(&p.header);
                out.push_payload(p.payload.clone());
                put_tagged_fields(&mut out.buf, flexible);
            }
            put_tagged_fields(&mut out.buf, flexible);
        }
        put_tagged_fields(&mut out.buf, flexible);
        out.finish()
    }
}

#[derive(Default)]
struct Segments {
    buf: BytesMut,
    done: Vec<Bytes>,
}

impl Segments {
    fn push_payload(&mut self, payload: Bytes) {
        if !self.buf.is_empty() {
            self.done.push(self.buf.split().freeze());
        }
        if !payload.is_empty() {
            self.done.push(payload);
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.buf.is_empty() {
            self.done.push(self.buf.freeze());
        }
        self.done
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>, flexible: bool) {
    match (s, flexible) {
        (None, false) => buf.put_i16(-1),
        (None, true) => put_uvarint(buf, 0),
        (Some(s), false) => {
            buf.put_i16(s.len() as i16);
            buf.put_slice(s.as_bytes());
        }
        (Some(s), true) => {
            put_uvarint(buf, s.len() as u64 + 1);
            buf.put_slice(s.as_bytes());
        }
    }
}

fn put_array_len(buf: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

fn put_tagged_fields(buf: &mut BytesMut, flexible: bool) {
    if flexible {
        put_uvarint(buf, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::protocol::Decodable;

    fn frame(payload: &'static [u8]) -> ProduceRequestFrame<'static> {
        let mut header = [0u8; crate::batch::HEADER_LEN];
        header[16] = 2;
        ProduceRequestFrame {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topics: vec![(
                "orders",
                vec![PartitionBatch {
                    partition: 3,
                    header,
                    payload: Bytes::from_static(payload),
                }],
            )],
        }
    }

    /// Our hand encoding must decode with the independent `kafka-protocol` decoder.
    #[test]
    fn encodes_what_kafka_protocol_decodes_in_every_version() {
        for version in PRODUCE_MIN_VERSION..=PRODUCE_MAX_VERSION {
            let segments = frame(b"payload-bytes").encode(version);
            let payload_seg = segments.iter().any(|s| s.as_ref() == b"payload-bytes");
            assert!(payload_seg, "v{version}: payload must be its own segment");
            let mut whole = Bytes::from(segments.concat());
            let req = ProduceRequest::decode(&mut whole, version).expect("decodes");
            assert_eq!(req.acks, -1);
            assert_eq!(req.timeout_ms, 30_000);
            let topic = &req.topic_data[0];
            assert_eq!(topic.name.0.as_str(), "orders");
            let p = &topic.partition_data[0];
            assert_eq!(p.index, 3);
            let records = p.records.as_ref().expect("records");
            assert_eq!(records.len(), 61 + 13);
            assert_eq!(&records[61..], b"payload-bytes");
            assert!(whole.is_empty(), "v{version}: trailing bytes");
        }
    }
}
