//! Payload masking (RFC 6455 §5.3).
//!
//! Every client-to-server frame is XORed with a 4-byte key. Unmasking is on the
//! hot path of every message the server receives, so it works a machine word at
//! a time: the key is rotated to the buffer's alignment once, widened to a
//! `u64`, and applied eight bytes per step; only the unaligned head and tail go
//! byte by byte. [`apply_mask_simple`] is the obvious byte loop, kept as the
//! reference the fast path is tested against.

/// XOR `buf` in place with `key`, as if the key started at payload offset 0.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_offset(buf, key, 0);
}

/// XOR `buf` in place with `key`, where `buf[0]` sits at payload offset
/// `offset` (so a payload can be unmasked in pieces as it arrives).
pub fn apply_mask_offset(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    // SAFETY: u64 has no invalid bit patterns; align_to_mut only splits the slice.
    let (head, words, tail) = unsafe { buf.align_to_mut::<u64>() };
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    // After the head, the key starts `head.len()` bytes further on.
    key.rotate_left(head.len() % 4);
    let k32 = u32::from_ne_bytes(key);
    let k64 = (u64::from(k32) << 32) | u64::from(k32);
    // On little- and big-endian alike, the native-endian u64 built from two
    // native-endian copies of the key lays the key bytes out in memory order.
    for w in words.iter_mut() {
        *w ^= k64;
    }
    // The word part is a multiple of 8 (so of 4) long: the tail starts where the key does.
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= key[i % 4];
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
            data in proptest::collection::vec(any::<u8>(), 0..300),
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
        fn masking_in_pieces_equals_masking_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            cut in 0usize..300,
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
