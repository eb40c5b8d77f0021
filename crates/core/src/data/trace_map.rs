//! Maps keyed by trace id. Trace ids are 128 random bits (W3C trace context), so SipHash's
//! rounds buy nothing but time on the per-span lookups of tail sampling, sessions and rate
//! limiting; two keyed folded multiplies spread them as well. The key is drawn per map from the
//! standard library's random seed, so ids chosen to collide cannot be computed from outside.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

pub type TraceMap<V> = HashMap<u128, V, TraceHash>;
pub type TraceSet = HashSet<u128, TraceHash>;

/// Builds [`TraceHasher`]s with a per-map random key.
#[derive(Clone, Copy, Debug)]
pub struct TraceHash {
    key: [u64; 2],
}

impl Default for TraceHash {
    fn default() -> Self {
        // RandomState is seeded once per thread from the OS and stepped per instance: two
        // hashes of distinct fixed inputs give two independent 64-bit keys.
        let s = std::collections::hash_map::RandomState::new();
        TraceHash {
            key: [s.hash_one(0x9e37_79b9_u64), s.hash_one(0x7f4a_7c15_u64) | 1],
        }
    }
}

impl BuildHasher for TraceHash {
    type Hasher = TraceHasher;
    fn build_hasher(&self) -> TraceHasher {
        TraceHasher {
            key: self.key,
            state: 0,
        }
    }
}

pub struct TraceHasher {
    key: [u64; 2],
    state: u64,
}

/// The high and low halves of the full product, folded: every input bit reaches every output bit.
fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for TraceHasher {
    fn write_u128(&mut self, id: u128) {
        let (hi, lo) = ((id >> 64) as u64, id as u64);
        // The second multiply carries high-half differences into the low bits the table
        // indexes by (one alone leaves ids that differ only above bit 64 clumped).
        let h = fold(lo ^ self.key[0], hi ^ self.key[1]);
        self.state = fold(h ^ self.state, self.key[1] ^ 0x2d35_8dcc_aa6c_78a5);
    }

    fn write_u64(&mut self, v: u64) {
        self.state = fold(v ^ self.key[0], self.state ^ self.key[1]);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    /// Other keys (not used for trace ids) still hash correctly, a word at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w) ^ chunk.len() as u64);
        }
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_over_buckets() {
        // Sequential ids (the worst case a careless SDK produces) fill 1024 buckets evenly.
        let h = TraceHash::default();
        let mut buckets = [0u32; 1024];
        for i in 0..102_400u128 {
            buckets[(h.hash_one(i) % 1024) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
        assert!(*min > 50 && *max < 160, "min {min} max {max}");
        // High-half-only differences spread too.
        let mut buckets = [0u32; 1024];
        for i in 0..102_400u128 {
            buckets[(h.hash_one(i << 64) % 1024) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min().unwrap(), buckets.iter().max().unwrap());
        assert!(*min > 50 && *max < 160, "min {min} max {max}");
    }

    #[test]
    fn maps_work_as_maps() {
        let mut m: TraceMap<u32> = TraceMap::default();
        for i in 0..1000u128 {
            m.insert(i * 0x1_0000_0001, i as u32);
        }
        assert!((0..1000u128).all(|i| m[&(i * 0x1_0000_0001)] == i as u32));
        let mut pairs: HashMap<(usize, u128), u8, TraceHash> = HashMap::default();
        pairs.insert((1, 2), 3);
        assert_eq!(pairs.get(&(1, 2)), Some(&3));
        assert_eq!(pairs.get(&(2, 1)), None);
    }
}
