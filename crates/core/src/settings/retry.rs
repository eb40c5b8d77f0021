//! `retry_on_failure`: exponential backoff with jitter, bounded by `max_elapsed_time`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retry retryable failures at all (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// First wait (default 1s).
    #[serde(default = "d_initial", with = "crate::config::duration")]
    pub initial_interval: Duration,
    /// Longest wait between attempts (default 30s).
    #[serde(default = "d_max", with = "crate::config::duration")]
    pub max_interval: Duration,
    /// Give up (and count the spans as failed) after this long; 0 = never (default 300s).
    #[serde(default = "d_elapsed", with = "crate::config::duration")]
    pub max_elapsed_time: Duration,
    /// Growth of the wait after each attempt (default 1.5).
    #[serde(default = "d_mult")]
    pub multiplier: f64,
    /// Jitter: each wait is drawn from interval * [1 - f, 1 + f] (default 0.5).
    #[serde(default = "d_rand")]
    pub randomization_factor: f64,
}

fn yes() -> bool {
    true
}
fn d_initial() -> Duration {
    Duration::from_secs(1)
}
fn d_max() -> Duration {
    Duration::from_secs(30)
}
fn d_elapsed() -> Duration {
    Duration::from_secs(300)
}
fn d_mult() -> f64 {
    1.5
}
fn d_rand() -> f64 {
    0.5
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: d_initial(),
            max_interval: d_max(),
            max_elapsed_time: d_elapsed(),
            multiplier: d_mult(),
            randomization_factor: d_rand(),
        }
    }
}

impl RetryConfig {
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.multiplier < 1.0 {
            out.push((
                "retry_on_failure.multiplier".into(),
                "must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            out.push((
                "retry_on_failure.randomization_factor".into(),
                "must be between 0 and 1".into(),
            ));
        }
        if self.initial_interval.is_zero() {
            out.push((
                "retry_on_failure.initial_interval".into(),
                "must be greater than 0".into(),
            ));
        }
        out
    }

    pub fn backoff(&self) -> Backoff {
        Backoff {
            next: self.initial_interval,
            config: self.clone(),
        }
    }
}

/// The sequence of waits for one batch.
pub struct Backoff {
    next: Duration,
    config: RetryConfig,
}

impl Backoff {
    /// The wait before the next attempt: jittered, then the interval grows.
    pub fn next_delay(&mut self) -> Duration {
        let f = self.config.randomization_factor;
        let base = self.next.as_secs_f64();
        let jittered = base * (1.0 - f + 2.0 * f * fastrand::f64());
        self.next = Duration::from_secs_f64(
            (base * self.config.multiplier).min(self.config.max_interval.as_secs_f64()),
        );
        Duration::from_secs_f64(jittered.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let cfg = RetryConfig {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(3),
            ..Default::default()
        };
        let mut b = cfg.backoff();
        let d1 = b.next_delay();
        assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_millis(1500));
        let d2 = b.next_delay();
        assert!(d2 >= Duration::from_millis(750) && d2 <= Duration::from_millis(2250));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_millis(4500));
        }
    }
}
