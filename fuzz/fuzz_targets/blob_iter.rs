//! Fuzzes `BlobIter` over arbitrary fetched blobs. Input: 8 bytes of fetch offset
//! (big-endian), then the blob. Checks that iteration never panics, that every entry
//! is a zero-copy slice of the blob in order, and that the fetch-offset rules hold.
#![no_main]

use bytes::Bytes;
use kferry::batch::{BlobIter, FetchedEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((offset, blob)) = data.split_first_chunk::<8>() else {
        return;
    };
    let fetch_offset = i64::from_be_bytes(*offset);
    let blob = Bytes::copy_from_slice(blob);
    let start = blob.as_ptr() as usize;
    let mut iter = BlobIter::new(blob.clone(), fetch_offset);
    let mut last_end = 0;
    let mut errors = 0;
    for item in iter.by_ref() {
        let entry = match item {
            Ok(entry) => entry,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        let bytes = match &entry {
            FetchedEntry::Batch(b) => {
                assert!(b.base_offset() >= fetch_offset);
                b.as_bytes().clone()
            }
            FetchedEntry::Straddling(b) => {
                assert!(b.base_offset() < fetch_offset && fetch_offset <= b.last_offset());
                b.as_bytes().clone()
            }
            FetchedEntry::Legacy { offset, bytes, .. } => {
                assert!(*offset >= fetch_offset);
                bytes.clone()
            }
        };
        let at = bytes.as_ptr() as usize - start;
        assert!(
            at >= last_end && at + bytes.len() <= blob.len(),
            "entry is a slice of the blob"
        );
        last_end = at + bytes.len();
    }
    assert!(errors <= 1, "iteration stops after an error");
    assert!(iter.position() <= blob.len());
    assert_eq!(iter.truncated_bytes(), blob.len() - iter.position());
});
