//! Payload masking (RFC 6455 §5.3).
//!
//! Every client-to-server frame is XORed with a 4-byte key. Unmasking is on the
//! hot path of every message the server receives, so it works eight bytes at
//! a time: the key is rotated to the payload offset once and widened to a
//! `u64`, and each 8-byte chunk is loaded, XORed and stored as one word
//! (unaligned loads are single instructions on the targets we run on, and the
//! loop vectorises); only the last 0-7 bytes go one by one.
//! [`apply_mask_simple`] is the obvious byte loop, kept as the reference the
//! fast path is tested and benchmarked against. Where the CPU has AVX2
//! (detected at run time), the same loop is compiled 32 bytes wide.

/// xorshift64 (Marsaglia), the one generator of the server and the load
/// generator: masking keys (§5.3) and handshake nonces (§4.1) need to be
/// unpredictable to an intermediary, not cryptographic (§10.3). The caller
/// seeds it; a zero state is replaced (it would stay zero).
pub fn xorshift64(state: &mut u64) -> u64 {
    let mut x = *state | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// XOR `buf` in place with `key`, as if the key started at payload offset 0.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_offset(buf, key, 0);
}

/// XOR `buf` in place with `key`, where `buf[0]` sits at payload offset
/// `offset` (so a payload can be unmasked in pieces as it arrives).
/// Always inlined: callgrind showed the frame parser calling it out of line
/// once the long path was split off, 21 more instructions per short frame.
#[inline(always)]
pub fn apply_mask_offset(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    if buf.len() >= 256 {
        return mask_long(buf, key);
    }
    mask_words(buf, key);
}

/// Masking of a long payload, kept out of line so that the short path
/// inlined into the frame parser stays as small as it was.
#[inline(never)]
fn mask_long(buf: &mut [u8], key: [u8; 4]) {
    // The baseline x86-64 target vectorises the word loop 16 bytes wide;
    // with AVX2 it goes 32 wide.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above (the detection is cached).
        unsafe { mask_words_avx2(buf, key) };
        return;
    }
    mask_words(buf, key);
}

/// [`mask_words`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mask_words_avx2(buf: &mut [u8], key: [u8; 4]) {
    mask_words(buf, key);
}

/// XOR with a key already rotated to `buf[0]`, a word at a time.
#[inline(always)]
fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key);
    // Two native-endian copies of the key lay its bytes out in memory order.
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        chunk.copy_from_slice(&(word ^ k64).to_ne_bytes());
    }
    // Whole chunks are a multiple of 4 long: the tail starts where the key does.
    for (b, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// Byte-at-a-time masking: the reference implementation for tests and benches.
pub fn apply_mask_simple(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_rfc_example() {
        // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn fast_mask_equals_simple_mask(
            // Past 256 bytes the AVX2 path runs where the CPU has it.
            data in proptest::collection::vec(any::<u8>(), 0..1200),
            key in any::<[u8; 4]>(),
            start in 0usize..8,
        ) {
            // Vary the alignment of the slice start to exercise every head length.
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[start..], key);
            apply_mask_simple(&mut slow[start..], key);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn portable_words_equal_simple_mask(
            data in proptest::collection::vec(any::<u8>(), 0..1200),
            key in any::<[u8; 4]>(),
        ) {
            // The path a CPU without AVX2 takes, whatever this one has.
            let mut words = data.clone();
            let mut slow = data.clone();
            mask_words(&mut words, key);
            apply_mask_simple(&mut slow, key);
            prop_assert_eq!(words, slow);
        }

        #[test]
        fn masking_in_pieces_equals_masking_whole(
            data in proptest::collection::vec(any::<u8>(), 0..1200),
            key in any::<[u8; 4]>(),
            cut in 0usize..1200,
        ) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply_mask_offset(a, key, 0);
            apply_mask_offset(b, key, cut);
            prop_assert_eq!(whole, pieces);
        }
    }
}
