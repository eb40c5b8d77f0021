//! `service.memory_limit_mib`, as the contrib memory_limiter does it: the process's resident
//! memory is sampled every 100 ms; above the soft limit (`memory_limit_mib` minus
//! `memory_spike_limit_mib`, by default 20% of the limit) receivers refuse with retryable codes
//! before reading request bodies and the Kafka receiver pauses; below the soft limit minus 5% of
//! the limit they accept again. Resident memory (RSS, from /proc/self/status) is what the
//! kernel's and the container's OOM killers weigh; queued batches, buffered traces and request
//! bodies all show up in it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct MemoryLimit {
    over: AtomicBool,
    /// Bytes; 0 when no limit is set.
    soft: AtomicU64,
    resume: AtomicU64,
    /// Bytes between the soft limit and the limit (what in-flight work may take); 0: no limit.
    allowance: AtomicU64,
}

impl MemoryLimit {
    /// True while new data should be refused.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The headroom above the soft limit, in bytes, when a limit is set: what requests being
    /// decoded may take between them.
    pub fn allowance(&self) -> Option<u64> {
        match self.allowance.load(Ordering::Relaxed) {
            0 => None,
            a => Some(a),
        }
    }

    /// Sets (or, with `None`, clears) the limit, in MiB.
    pub fn configure(&self, limit_mib: Option<u64>, spike_mib: Option<u64>) {
        let Some(limit) = limit_mib else {
            self.soft.store(0, Ordering::SeqCst);
            self.allowance.store(0, Ordering::SeqCst);
            self.over.store(false, Ordering::SeqCst);
            return;
        };
        let limit = limit * 1024 * 1024;
        let spike = spike_mib.map_or(limit / 5, |s| s * 1024 * 1024);
        let soft = limit.saturating_sub(spike).max(1);
        self.soft.store(soft, Ordering::SeqCst);
        self.allowance
            .store((limit - soft).max(1), Ordering::SeqCst);
        self.resume
            .store(soft.saturating_sub(limit / 20), Ordering::SeqCst);
    }

    /// Updates the refusing state from one RSS sample.
    pub fn observe(&self, rss: u64) {
        let soft = self.soft.load(Ordering::SeqCst);
        if soft == 0 {
            return;
        }
        let over = self.over.load(Ordering::SeqCst);
        if !over && rss > soft {
            self.over.store(true, Ordering::SeqCst);
            tracing::warn!(
                rss_mib = rss >> 20,
                soft_limit_mib = soft >> 20,
                "memory above the soft limit: refusing new data until it drops"
            );
        } else if over && rss < self.resume.load(Ordering::SeqCst) {
            self.over.store(false, Ordering::SeqCst);
            tracing::info!(
                rss_mib = rss >> 20,
                "memory back under the limit: accepting again"
            );
        }
    }
}

/// Resident memory of this process, in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples RSS into the gauge and the limit, for the life of the process.
pub async fn watch(telemetry: Arc<super::Telemetry>) {
    let gauge = telemetry.metrics.process_rss();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Some(rss) = rss_bytes() {
            gauge.set(rss as i64);
            telemetry.memory.observe(rss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_soft_and_resumes_below_with_hysteresis() {
        let m = MemoryLimit::default();
        m.observe(u64::MAX);
        assert!(!m.over(), "no limit, never over");
        m.configure(Some(100), None); // soft 80 MiB, resume 75 MiB
        let mib = |n: u64| n * 1024 * 1024;
        m.observe(mib(79));
        assert!(!m.over());
        m.observe(mib(81));
        assert!(m.over());
        m.observe(mib(77));
        assert!(m.over(), "hysteresis");
        m.observe(mib(74));
        assert!(!m.over());
        m.configure(Some(100), Some(50));
        m.observe(mib(51));
        assert!(m.over());
        m.configure(None, None);
        assert!(!m.over());
        assert!(rss_bytes().is_some_and(|r| r > 0));
    }
}
