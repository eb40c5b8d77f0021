//! Decision caches: spans arriving after their trace was decided follow the decision.
//!
//! Sampled ids are few (they are what we keep) and kept exactly, FIFO-bounded. Not-sampled ids
//! are most ids; they go into a pair of Bloom filters (current and previous generation, each
//! sized for half the capacity at a 1e-4 false-positive rate, ~19 bits per id), so a million
//! dropped ids cost ~2.4 MB. A false positive makes a new trace's spans count as late spans of a
//! dropped trace: at most 1 in 10,000 new traces, and counted, never silent.

use std::collections::VecDeque;

use crate::data::trace_map::{TraceHash, TraceSet};

pub type TraceId = u128;

pub struct SampledCache {
    capacity: usize,
    set: TraceSet,
    order: VecDeque<TraceId>,
}

impl SampledCache {
    pub fn new(capacity: usize) -> Self {
        SampledCache {
            capacity,
            set: TraceSet::with_capacity_and_hasher(capacity.min(1 << 16), TraceHash::default()),
            order: VecDeque::new(),
        }
    }

    pub fn insert(&mut self, id: TraceId) {
        if self.capacity == 0 || !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub fn contains(&self, id: TraceId) -> bool {
        self.set.contains(&id)
    }
}

/// Bits per id and hash count for a 1e-4 false-positive rate.
const BITS_PER_ID: f64 = 19.2;
const HASHES: u64 = 13;

pub struct NotSampledFilter {
    per_generation: usize,
    bits: u64,
    current: Vec<u64>,
    previous: Vec<u64>,
    inserted: usize,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer: trace ids are random in production but not in every test or SDK.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl NotSampledFilter {
    pub fn new(capacity: usize) -> Self {
        let per_generation = capacity.div_ceil(2);
        let bits = ((per_generation as f64 * BITS_PER_ID).ceil() as u64).max(64);
        let words = if capacity == 0 {
            0
        } else {
            bits.div_ceil(64) as usize
        };
        NotSampledFilter {
            per_generation,
            bits: words as u64 * 64,
            current: vec![0; words],
            previous: vec![0; words],
            inserted: 0,
        }
    }

    fn positions(bits: u64, id: TraceId) -> impl Iterator<Item = (usize, u64)> {
        let h1 = mix(id as u64);
        let h2 = mix((id >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15) | 1;
        (0..HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % bits;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    pub fn insert(&mut self, id: TraceId) {
        if self.current.is_empty() {
            return;
        }
        for (w, m) in Self::positions(self.bits, id) {
            self.current[w] |= m;
        }
        self.inserted += 1;
        if self.inserted >= self.per_generation {
            // Age out the oldest half: the previous generation is forgotten.
            self.previous = std::mem::replace(&mut self.current, vec![0; self.previous.len()]);
            self.inserted = 0;
        }
    }

    pub fn contains(&self, id: TraceId) -> bool {
        if self.current.is_empty() {
            return false;
        }
        let hit = |words: &[u64]| Self::positions(self.bits, id).all(|(w, m)| words[w] & m != 0);
        hit(&self.current) || hit(&self.previous)
    }

    /// Heap bytes held (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        (self.current.len() + self.previous.len()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_cache_is_fifo_bounded() {
        let mut c = SampledCache::new(3);
        for i in 0..5 {
            c.insert(i);
        }
        assert!(!c.contains(0) && !c.contains(1));
        assert!(c.contains(2) && c.contains(4));
    }

    #[test]
    fn bloom_pair_remembers_recent_ids_with_few_false_positives() {
        let mut f = NotSampledFilter::new(200_000);
        for i in 0..150_000u128 {
            f.insert(i * 7919);
        }
        // The last 50,000 (current generation) and the previous 100,000 are all remembered.
        assert!((0..150_000u128).all(|i| f.contains(i * 7919)));
        let false_pos = (1..=100_000u128)
            .filter(|i| f.contains((1u128 << 100) + i))
            .count();
        assert!(false_pos < 30, "{false_pos} false positives in 100k");
        assert!(f.heap_bytes() < 500_000, "{} bytes", f.heap_bytes());
        // Old generations are forgotten.
        for i in 0..250_000u128 {
            f.insert((1u128 << 120) + i);
        }
        let remembered = (0..1000u128).filter(|i| f.contains(i * 7919)).count();
        assert!(remembered < 5);
    }
}
