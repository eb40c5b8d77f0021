//! A fixed-size latency histogram in microseconds, 1/16 relative precision (HDR-style
//! log-linear buckets): memory stays constant however many requests a run sends.

pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
}

const BUCKETS: usize = 32 + 59 * 16;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
        }
    }
}

fn index(us: u64) -> usize {
    if us < 32 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // >= 5
    let sub = ((us >> (e - 4)) & 15) as usize;
    32 + (e - 5) * 16 + sub
}

/// The largest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    if i < 32 {
        return i as u64;
    }
    let e = (i - 32) / 16 + 5;
    let sub = ((i - 32) % 16) as u64;
    let v = ((17 + sub as u128) << (e - 4)) - 1;
    v.min(u64::MAX as u128) as u64
}

impl Histogram {
    pub fn record(&mut self, d: std::time::Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[index(us)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile (0..=1) as an upper bound, in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i);
            }
        }
        upper(BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_bound_values_within_one_sixteenth() {
        for us in [
            0u64, 1, 31, 32, 33, 100, 999, 1000, 4_999, 123_456, 10_000_000,
        ] {
            let i = index(us);
            assert!(upper(i) >= us, "{us}");
            assert!(
                upper(i) as f64 <= us as f64 * (1.0 + 1.0 / 16.0) + 1.0,
                "{us}"
            );
            if i > 0 {
                assert!(upper(i - 1) < us, "{us}");
            }
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p99 = h.quantile_us(0.99);
        assert!((99_000..=99_000 + 99_000 / 16).contains(&p99), "{p99}");
        assert!(h.quantile_us(0.5) >= 50_000);
    }
}
