//! Transaction markers: [`control_type`] reads the kind of a control batch.
//!
//! A broker ends a transaction by appending, to every partition the transaction wrote,
//! a control batch (attribute bit 5, plus the transactional bit) holding one control
//! record. Its key is `version: int16, type: int16` (type 0 abort, 1 commit) and its
//! value `version: int16, coordinatorEpoch: int32`. Control batches are never
//! compressed, and Kafka's consumer reads only the first record's key, as here.
//!
//! kferry never forwards control batches (the target writes its own markers), but the
//! engine needs the kind to finish tracking a source transaction: a commit releases
//! the producer's held batches, an abort drops them.
//!
//! # References
//!
//! * Kafka `clients/.../record/ControlRecordType.java` (`parseTypeId`: key of at least
//!   4 bytes, negative version refused, unknown versions parsed as version 0)
//! * Kafka `clients/.../record/EndTransactionMarker.java` (key and value layout)
//! * Kafka `clients/.../consumer/internals/CompletedFetch.java` (first record only)
//! * KIP-98 (transactions, control batches)

use super::{decode_records, BatchError, ControlType, RecordBatch, HEADER_LEN};

/// Control key size: version and type, two int16s.
const CONTROL_KEY_LEN: usize = 4;

/// The transaction marker kind of a control batch.
///
/// Fails with [`BatchError::Unsupported`] for a batch without the control bit or for a
/// control type other than abort and commit (types 2-6 are KRaft's own, found only in
/// the metadata log), and with [`BatchError::Corrupt`] for a missing or malformed key.
pub fn control_type(batch: &RecordBatch) -> Result<ControlType, BatchError> {
    let offset = batch.base_offset();
    if !batch.attributes().is_control() {
        return Err(BatchError::Unsupported {
            offset,
            reason: "not a control batch",
        });
    }
    let corrupt = |reason| BatchError::Corrupt {
        offset,
        position: HEADER_LEN,
        reason,
    };
    let records = decode_records(batch)?;
    let first = records
        .first()
        .ok_or_else(|| corrupt("control batch without a record"))?;
    let key = first.key.as_deref().unwrap_or_default();
    let Some(&[v0, v1, t0, t1]) = key.first_chunk::<CONTROL_KEY_LEN>() else {
        return Err(corrupt("control record key shorter than 4 bytes"));
    };
    if i16::from_be_bytes([v0, v1]) < 0 {
        return Err(corrupt("negative control record key version"));
    }
    match i16::from_be_bytes([t0, t1]) {
        0 => Ok(ControlType::Abort),
        1 => Ok(ControlType::Commit),
        _ => Err(BatchError::Unsupported {
            offset,
            reason: "control record type other than abort (0) or commit (1)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use bytes::Bytes;

    fn control_with_key(key: Option<&[u8]>) -> RecordBatch {
        BatchBuilder::new()
            .attributes(crate::batch::Attributes(crate::batch::Attributes::CONTROL))
            .record(Record::new(
                0,
                key.map(Bytes::copy_from_slice),
                Some(Bytes::from_static(&[0; 6])),
            ))
            .build()
    }

    #[test]
    fn reads_commit_and_abort_markers() {
        for kind in [ControlType::Abort, ControlType::Commit] {
            let batch = BatchBuilder::new()
                .base_offset(77)
                .producer(4, 0, -1)
                .control_marker(kind, 3)
                .build();
            assert_eq!(control_type(&batch), Ok(kind));
        }
        // A future key version is parsed as version 0, with extra bytes ignored.
        assert_eq!(
            control_type(&control_with_key(Some(&[0, 1, 0, 1, 9]))),
            Ok(ControlType::Commit)
        );
    }

    #[test]
    fn rejects_what_is_not_a_marker() {
        let plain = BatchBuilder::new().value("x").build();
        assert!(matches!(control_type(&plain), Err(BatchError::Unsupported { .. })));
        for key in [None, Some(&[0u8, 0, 0][..]), Some(&[0xff, 0xff, 0, 1][..])] {
            assert!(matches!(
                control_type(&control_with_key(key)),
                Err(BatchError::Corrupt { .. })
            ));
        }
        let leader_change = control_with_key(Some(&[0, 0, 0, 2]));
        assert!(matches!(
            control_type(&leader_change),
            Err(BatchError::Unsupported { .. })
        ));
        let empty = BatchBuilder::new()
            .attributes(crate::batch::Attributes(crate::batch::Attributes::CONTROL))
            .build();
        assert!(matches!(control_type(&empty), Err(BatchError::Corrupt { .. })));
        let compressed = BatchBuilder::new()
            .control_marker(ControlType::Abort, 0)
            .build_compressed(Compression::Gzip, |raw| raw.to_vec());
        assert!(matches!(control_type(&compressed), Err(BatchError::Compressed { .. })));
    }
}
