//! Self-observability: metrics, the health server, logging.

pub mod logging;
pub mod memory;
pub mod metrics;
pub mod server;

use std::sync::atomic::{AtomicBool, Ordering};

pub use metrics::Metrics;

/// Shared by every component of the process, across reloads.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    /// `service.memory_limit_mib`: whether receivers should refuse now.
    pub memory: memory::MemoryLimit,
    ready: AtomicBool,
}

impl Telemetry {
    pub fn new() -> Self {
        let t = Telemetry::default();
        t.metrics.build_info().set(1);
        t
    }

    /// /readyz answers 200 only while this is true (receivers listening, not draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
