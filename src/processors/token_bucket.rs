//! A token bucket with Go's `rate.Limiter` semantics (the contrib collector's limiters): starts
//! full, refills continuously at `rate` per second up to `burst`, and refuses a request larger
//! than it holds without taking anything.

use std::time::{Duration, Instant};

pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let add = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + add).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Takes `n` tokens if there are that many.
    pub fn allow(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if n <= self.tokens {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Takes up to `n` tokens (for traffic admitted regardless, which still uses the budget).
    pub fn take_available(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - n).max(0.0);
    }

    /// How long until `n` tokens are there (`None` when `n` exceeds the burst: never).
    pub fn wait_for(&mut self, n: f64, now: Instant) -> Option<Duration> {
        self.refill(now);
        if n > self.burst {
            return None;
        }
        let missing = (n - self.tokens).max(0.0);
        Some(Duration::from_secs_f64(
            missing / self.rate.max(f64::MIN_POSITIVE),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10.0, 20.0);
        assert!(b.allow(15.0, t0));
        assert!(!b.allow(6.0, t0), "5 left");
        assert!(b.allow(5.0, t0));
        assert_eq!(b.wait_for(10.0, t0), Some(Duration::from_secs(1)));
        assert!(b.allow(10.0, t0 + Duration::from_secs(1)));
        assert!(
            !b.allow(21.0, t0 + Duration::from_secs(100)),
            "more than the burst never fits"
        );
        assert_eq!(b.wait_for(21.0, t0), None);
    }
}
