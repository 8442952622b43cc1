//! Kafka's default placement of keyed records: [`partition_for_key`].
//!
//! A Java producer without a custom partitioner sends a record with a non-null key to
//! `toPositive(murmur2(keyBytes)) % numPartitions`, where `murmur2` is Kafka's own
//! variant of MurmurHash2 (32-bit, seed `0x9747b28c`) over the *serialized* key. kferry
//! keeps partition numbers by default; this is for routes that remap partitions (a
//! target with a different partition count) and want keys where a Java producer on the
//! target would put them.
//!
//! Java's `int` arithmetic wraps, and `>>>` is a logical shift; both map to `u32`
//! wrapping operations here, so the result is bit-identical.
//!
//! # References
//!
//! * Kafka `clients/.../common/utils/Utils.java` (`murmur2`, `toPositive`) and its
//!   `UtilsTest.testMurmur2` vectors
//! * Kafka `clients/.../producer/internals/BuiltInPartitioner.java`
//!   (`partitionForKey`), KIP-480 / KIP-794 (keyless records use sticky partitioning
//!   instead, which a replicator has no reason to imitate)

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, little-endian words.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's `length` is an int: the seed is mixed with its low 32 bits.
    let mut h = SEED ^ data.len() as u32;
    let words = data.chunks_exact(4);
    let tail = words.remainder();
    for word in words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if !tail.is_empty() {
        // Java's switch falls through from case 3 to case 1.
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a record with this key.
///
/// # Panics
///
/// If `num_partitions` is 0: a topic always has at least one partition.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    assert!(num_partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) as u32 % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_utils_test_vectors() {
        // Kafka `UtilsTest.testMurmur2`.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{:?}", std::str::from_utf8(data));
        }
    }

    #[test]
    fn every_tail_length_is_mixed() {
        // Lengths 0..8 cover empty input, every tail length, and whole words.
        let data = b"abcdefgh";
        let hashes: Vec<i32> = (0..=data.len()).map(|n| murmur2(&data[..n])).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(murmur2(b""), murmur2(&[]));
    }

    #[test]
    fn partition_is_positive_modulo() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(42), 42);
        // "foobar" hashes to -790332482; toPositive gives 1357151166.
        assert_eq!(to_positive(murmur2(b"foobar")), 1_357_151_166);
        assert_eq!(partition_for_key(b"foobar", 10), 1_357_151_166 % 10);
        assert_eq!(partition_for_key(b"foobar", 1), 0);
        for n in 1..50 {
            assert!(partition_for_key(b"21", n) < n);
        }
    }
}
