//! Applying the RFC 6455 masking key (XOR with a repeating 4-byte key).
//!
//! Masking is its own inverse, so the same function masks outgoing client
//! frames and unmasks incoming ones. `phase` says how many payload bytes of
//! the frame came before `buf`, so a frame that arrives in several reads can
//! be unmasked piece by piece.

/// XORs `buf` in place with `key`, starting at key byte `phase % 4`.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    apply_mask_aligned(buf, key);
}

/// Rotates `key` so that index 0 is the key byte for payload offset `phase`.
#[inline]
pub fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    let k = u32::from_ne_bytes(key);
    let shift = (phase % 4) * 8;
    let rotated = if cfg!(target_endian = "little") {
        k.rotate_right(shift as u32)
    } else {
        k.rotate_left(shift as u32)
    };
    rotated.to_ne_bytes()
}

/// XORs `buf` with `key`, where `key[0]` applies to `buf[0]`.
#[inline]
pub fn apply_mask_aligned(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_words(buf, key)
}

/// A portable version that works eight bytes at a time.
#[inline]
pub fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
    let k4 = u32::from_ne_bytes(key) as u64;
    // The key repeated twice reads the same in either byte order.
    let k8 = k4 | (k4 << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_ne_bytes(w) ^ k8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The obvious byte-at-a-time version, kept as the reference in tests.
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + phase) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example() {
        let mut b = *b"Hello";
        apply_mask(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(b, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(any::<u8>(), 0..300), key in any::<[u8; 4]>(), phase in 0usize..9) {
            let mut a = data.clone();
            let mut b = data.clone();
            apply_mask(&mut a, key, phase);
            apply_mask_bytewise(&mut b, key, phase);
            prop_assert_eq!(&a, &b);
            apply_mask(&mut a, key, phase);
            prop_assert_eq!(&a, &data);
        }

        #[test]
        fn split_anywhere_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..300), key in any::<[u8; 4]>(), cut in 0usize..300) {
            let cut = cut.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            prop_assert_eq!(whole, parts);
        }
    }
}
