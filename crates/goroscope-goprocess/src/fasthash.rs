//! A small, fast hasher for the integer keys of per-snapshot maps (goroutine ids, stack ids, pcs).
//! The keys come from the target, not from an attacker choosing collisions against goroscope, and
//! SipHash was a sixth of a snapshot's cost at 10k goroutines.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of 64-bit words (the scheme rustc's FxHash uses).
#[derive(Default, Clone, Copy)]
pub struct WordHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(SEED);
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// A HashMap using [`WordHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

#[cfg(test)]
mod tests {
    use super::FastMap;

    #[test]
    fn works_as_a_map_for_words_and_word_lists() {
        let mut map: FastMap<u64, u32> = FastMap::default();
        for i in 0..10_000u64 {
            map.insert(i * 8, i as u32);
        }
        assert_eq!(map.get(&800), Some(&100));
        let mut stacks: FastMap<Vec<u64>, u32> = FastMap::default();
        stacks.insert(vec![1, 2, 3], 7);
        assert_eq!(stacks.get(&vec![1, 2, 3]), Some(&7));
        assert_eq!(stacks.get(&vec![1, 2]), None);
    }
}
