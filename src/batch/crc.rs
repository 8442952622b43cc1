//! CRC-32C (Castagnoli) helpers for record batches, including a CRC *patch* that
//! updates a batch CRC after a header rewrite without reading the payload.
//!
//! A v2 batch stores `crc32c(batch[21..])`: attributes through the last record. kferry
//! changes only header bytes inside that range (attributes, producer id, epoch, base
//! sequence), so the new CRC follows from the old one and the two headers alone:
//!
//! ```text
//! crc(H_new ‖ P) = crc(H_old ‖ P) ⊕ shift_|P|( crc(H_old) ⊕ crc(H_new) )
//! ```
//!
//! *Why it holds.* A CRC is affine over GF(2): for messages of equal length
//! `crc(A) ⊕ crc(B) = L(A ⊕ B)`, where `L` is the CRC with zero initial value and no
//! final xor. `H_old ‖ P` and `H_new ‖ P` differ only in their first 40 bytes, so their
//! CRCs differ by `L((H_old ⊕ H_new) ‖ 0ⁿ)`, and appending `n` zero bytes to a message
//! multiplies its `L` by `x^(8n)` modulo the CRC polynomial. `crc(H_old) ⊕ crc(H_new)`
//! is `L(H_old ⊕ H_new)` by the same rule.
//!
//! *Why it is fast.* `x^(8n) mod P` is assembled from four 256-entry tables indexed by
//! the bytes of `n` (`x^(8·j·256^k)`, built at compile time), and multiplication mod P
//! is a nibble-table carry-less multiply followed by a 4-step table reduction. A patch
//! is therefore two 40-byte CRCs plus at most four multiplications: tens of
//! nanoseconds whatever the batch size, and no payload byte is touched.
//!
//! A useful side effect: the patch preserves corruption. If the source batch's CRC did
//! not match its payload, the patched CRC does not match either, so the target broker
//! rejects the batch (CORRUPT_MESSAGE) instead of kferry laundering bad bytes.
//!
//! All polynomials here are in the *reflected* bit order CRC-32C uses: bit 31 holds the
//! coefficient of `x^0` and bit 0 that of `x^31`.
//!
//! # References
//!
//! * Kafka `clients/.../record/DefaultRecordBatch.java` (`computeChecksum`: bytes 21..end)
//! * Kafka `clients/.../utils/Crc32C.java`
//! * RFC 3720 §12.1 (CRC-32C, polynomial 0x1EDC6F41, reflected 0x82F63B78)
//! * The GF(2) combine technique of zlib's `crc32_combine` (M. Adler)

use super::{field, HEADER_LEN};

/// CRC-32C polynomial in reflected bit order.
pub const POLY: u32 = 0x82F6_3B78;

/// Number of header bytes covered by the batch CRC (attributes .. recordCount).
pub const HEADER_CRC_SPAN: usize = HEADER_LEN - field::CRC_START;

/// The polynomial `1` in reflected order.
const ONE: u32 = 0x8000_0000;

/// Byte-at-a-time CRC-32C table: `TABLE[i] = i(x)·x^32 mod P` for a reflected byte `i`.
/// A `const` so that the `const fn` table construction below can use it too.
const TABLE: [u32; 256] = byte_table();

/// `SHIFT[k][j] = x^(8·j·256^k) mod P`: the operator that appends `j·256^k` zero bytes.
static SHIFT: [[u32; 256]; 4] = shift_tables();

/// Standard CRC-32C of `data` (initial value and final xor `0xFFFF_FFFF`), hardware
/// accelerated where the CPU allows.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Multiplies `crc` by `x^(8·len)` modulo P.
///
/// Applied to the linear part of a CRC this "appends `len` zero bytes"; it is the core
/// of [`crc32c_combine`] and [`patch_crc`].
pub fn crc32c_shift(crc: u32, len: usize) -> u32 {
    let mut crc = crc;
    let mut len = len as u64;
    // Batches are < 2 GiB, so this loop runs once; it keeps larger inputs correct.
    while len > u64::from(u32::MAX) {
        crc = shift_u32(crc, u32::MAX);
        len -= u64::from(u32::MAX);
    }
    shift_u32(crc, len as u32)
}

/// CRC-32C of `A ‖ B` from `crc_a = crc32c(A)`, `crc_b = crc32c(B)` and `len_b = |B|`.
pub fn crc32c_combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    crc32c_shift(crc_a, len_b) ^ crc_b
}

/// The CRC of a batch whose CRC-covered header bytes (21..61) change from `old_header`
/// to `new_header`, given its current CRC and payload length (`len - 61`).
///
/// Reads neither the payload nor anything outside the two 40-byte spans.
pub fn patch_crc(
    old_crc: u32,
    old_header: &[u8; HEADER_CRC_SPAN],
    new_header: &[u8; HEADER_CRC_SPAN],
    payload_len: usize,
) -> u32 {
    let delta = crc32c(old_header) ^ crc32c(new_header);
    if delta == 0 {
        return old_crc;
    }
    old_crc ^ crc32c_shift(delta, payload_len)
}

/// `crc · x^(8·n) mod P` for a 32-bit `n`: one table entry per non-zero byte of `n`.
fn shift_u32(crc: u32, n: u32) -> u32 {
    let mut acc = crc;
    for (k, byte) in n.to_le_bytes().into_iter().enumerate() {
        if byte != 0 {
            acc = mul_mod_p(acc, SHIFT[k][usize::from(byte)]);
        }
    }
    acc
}

/// Product of two reflected polynomials modulo P.
///
/// The 63-bit carry-less product is split at `x^32`: the low-degree half is already a
/// reflected residue, the high-degree half `D` contributes `D·x^32 mod P`, which four
/// zero-byte CRC steps compute.
const fn mul_mod_p(a: u32, b: u32) -> u32 {
    // Bit (62 - d) of `product` is the coefficient of x^d; shift so bit (63 - d) is.
    let product = clmul_reflected(a, b) << 1;
    let low_degrees = (product >> 32) as u32;
    let mut high = product as u32;
    let mut i = 0;
    while i < 4 {
        high = TABLE[(high & 0xFF) as usize] ^ (high >> 8);
        i += 1;
    }
    low_degrees ^ high
}

/// Carry-less 32×32→64-bit multiply, four bits of `a` at a time.
const fn clmul_reflected(a: u32, b: u32) -> u64 {
    let mut multiples = [0u64; 16];
    multiples[1] = b as u64;
    let mut i = 2;
    while i < 16 {
        multiples[i] = if i % 2 == 0 {
            multiples[i / 2] << 1
        } else {
            multiples[i - 1] ^ b as u64
        };
        i += 1;
    }
    let mut product = 0u64;
    let mut nibble = 0;
    while nibble < 8 {
        let bits = ((a >> (4 * nibble)) & 0xF) as usize;
        product ^= multiples[bits] << (4 * nibble);
        nibble += 1;
    }
    product
}

const fn byte_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

const fn shift_tables() -> [[u32; 256]; 4] {
    let mut tables = [[0u32; 256]; 4];
    let mut step = ONE >> 8; // x^8: one zero byte
    let mut k = 0;
    while k < 4 {
        tables[k][0] = ONE;
        let mut j = 1;
        while j < 256 {
            tables[k][j] = mul_mod_p(tables[k][j - 1], step);
            j += 1;
        }
        // x^(8·256^(k+1)) = x^(8·255·256^k) · x^(8·256^k)
        step = mul_mod_p(tables[k][255], step);
        k += 1;
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bit-serial reference multiply (reflected), independent of the tables.
    fn mul_reference(a: u32, mut b: u32) -> u32 {
        let mut product = 0;
        for bit in (0..32).rev() {
            if a & (1 << bit) != 0 {
                product ^= b;
            }
            b = if b & 1 == 1 { (b >> 1) ^ POLY } else { b >> 1 };
        }
        product
    }

    #[test]
    fn table_matches_byte_crc() {
        assert_eq!(TABLE[1], 0xF26B_8303);
        assert_eq!(TABLE[128], POLY);
    }

    #[test]
    fn known_check_value() {
        // CRC-32C check value from the CRC catalogue.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn shift_zero_is_identity() {
        assert_eq!(crc32c_shift(0xDEAD_BEEF, 0), 0xDEAD_BEEF);
    }

    #[test]
    fn combine_large_len_beyond_u32() {
        // x^(8(n+m)) = x^(8n)·x^(8m): the >4 GiB loop must agree with two shifts.
        let len = u32::MAX as usize + 1234;
        let direct = crc32c_shift(0x1234_5678, len);
        let split = crc32c_shift(crc32c_shift(0x1234_5678, 1234), u32::MAX as usize);
        assert_eq!(direct, split);
    }

    #[test]
    fn patch_unchanged_header_keeps_crc() {
        let h = [7u8; HEADER_CRC_SPAN];
        assert_eq!(patch_crc(0xABCD_0123, &h, &h, 99), 0xABCD_0123);
    }

    proptest! {
        #[test]
        fn mul_matches_reference(a: u32, b: u32) {
            prop_assert_eq!(mul_mod_p(a, b), mul_reference(a, b));
        }

        #[test]
        fn combine_matches_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..2000),
            b in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(crc32c_combine(crc32c(&a), crc32c(&b), b.len()), crc32c(&whole));
        }

        #[test]
        fn patch_matches_recompute(
            old in proptest::array::uniform32(any::<u8>()),
            new in proptest::array::uniform32(any::<u8>()),
            tail in any::<[u8; 8]>(),
            payload_len in 0usize..=100_000,
            seed: u64,
        ) {
            let mut old_h = [0u8; HEADER_CRC_SPAN];
            old_h[..32].copy_from_slice(&old);
            old_h[32..].copy_from_slice(&tail);
            let mut new_h = old_h;
            new_h[..32].copy_from_slice(&new);
            let payload: Vec<u8> = (0..payload_len)
                .map(|i| (seed.wrapping_mul(i as u64 + 1) >> 29) as u8)
                .collect();
            let full = |h: &[u8]| crc32c::crc32c_append(crc32c(h), &payload);
            let patched = patch_crc(full(&old_h), &old_h, &new_h, payload_len);
            prop_assert_eq!(patched, full(&new_h));
        }
    }
}
