//! Fuzzes `kferry::batch::codec::decompress` with every codec id (0-7, so the three
//! undefined ones too) on the same payload.
//!
//! Input: `max_out` (big-endian u16), then the payload. Checks: no panic; output never
//! longer than `max_out`; the cap is consistent (a larger cap never turns "too large"
//! into a short output, nor changes an output); codec 0 returns the payload; and every
//! output round-trips through `compress`. lz4 is also decoded after
//! `fix_lz4_header_checksum`, as magic-0 wrappers are.
#![no_main]

use kferry::batch::codec::{compress, decompress, fix_lz4_header_checksum};
use kferry::batch::{BatchError, Compression};
use libfuzzer_sys::fuzz_target;

/// The larger cap for the consistency check.
const BIG: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((cap, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_out = usize::from(u16::from_be_bytes(*cap));
    for id in 0..8u8 {
        let c = Compression::from_id(id);
        check(c, payload, max_out);
    }
    let fixed = fix_lz4_header_checksum(payload);
    assert_eq!(fixed.len(), payload.len(), "the fix rewrites one byte at most");
    assert!(fixed.iter().zip(payload).filter(|(a, b)| a != b).count() <= 1);
    check(Compression::Lz4, &fixed, max_out);
});

fn check(c: Compression, payload: &[u8], max_out: usize) {
    let result = decompress(c, payload, max_out);
    if matches!(c, Compression::Unknown(_)) {
        assert!(
            matches!(result, Err(BatchError::Codec { .. })),
            "undefined codec id accepted"
        );
        return;
    }
    match &result {
        Ok(out) => {
            assert!(out.len() <= max_out, "{c:?}: {} bytes out, cap {max_out}", out.len());
            if c == Compression::None {
                assert_eq!(out, payload);
            }
            let again = compress(c, out).expect("a known codec compresses anything");
            let back = decompress(c, &again, out.len()).expect("our own output decompresses");
            assert_eq!(&back, out, "{c:?}: round trip");
        }
        Err(BatchError::DecompressedTooLarge { offset: -1, limit, .. }) => assert_eq!(*limit, max_out),
        Err(BatchError::Codec { offset: -1, .. }) => {}
        Err(e) => panic!("{c:?}: unexpected error {e:?}"),
    }
    if max_out >= BIG {
        return;
    }
    match (&result, decompress(c, payload, BIG)) {
        (Ok(small), Ok(big)) => assert_eq!(small, &big, "{c:?}: output depends on the cap"),
        (Ok(_), Err(e)) => panic!("{c:?}: fits {max_out} but fails with a larger cap: {e:?}"),
        (Err(BatchError::DecompressedTooLarge { .. }), Ok(big)) => {
            assert!(
                big.len() > max_out,
                "{c:?}: 'too large' for {} bytes, cap {max_out}",
                big.len()
            )
        }
        (Err(BatchError::Codec { .. }), Ok(big)) => {
            panic!(
                "{c:?}: corrupt under cap {max_out}, {} bytes under a larger cap",
                big.len()
            )
        }
        _ => {}
    }
}
