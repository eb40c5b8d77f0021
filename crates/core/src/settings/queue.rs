//! The settings every exporter takes, in the OpenTelemetry Collector's exporterhelper terms:
//! `sending_queue`, `retry_on_failure`, `timeout`. The queue itself is the pipeline's
//! (`pipeline::queue`).

use std::time::Duration;

use serde::Deserialize;

pub use super::retry::RetryConfig;

/// What `sending_queue.queue_size` counts (the contrib collector's `sizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Batches.
    #[default]
    Requests,
    /// Spans.
    Items,
    /// Bytes of the batches' OTLP protobuf encoding.
    Bytes,
}

impl Sizer {
    /// What a batch of `spans` spans, `bytes` encoded, takes of the queue.
    pub fn cost(self, spans: usize, bytes: usize) -> usize {
        match self {
            Sizer::Requests => 1,
            Sizer::Items => spans,
            Sizer::Bytes => bytes,
        }
    }
}

/// `sending_queue`: in memory, or on disk with `storage`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// When false, the sender waits for each export (and its retries) to finish.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Capacity, in `sizer` units; when full, senders wait and receivers refuse with a
    /// retryable status.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// `requests` (default: `queue_size` batches), `items` (spans) or `bytes`.
    #[serde(default)]
    pub sizer: Sizer,
    /// Exports in flight at once.
    #[serde(default = "default_consumers")]
    pub num_consumers: usize,
    /// A directory: the queue becomes a write-ahead log in `<storage>/<exporter id>/` that
    /// survives crashes and restarts.
    #[serde(default)]
    pub storage: Option<String>,
    /// With `storage`: the most the log takes on disk; past it, senders wait and receivers refuse.
    #[serde(default = "default_max_size_mib")]
    pub max_size_mib: u64,
    /// With `storage`: how often written records are flushed to the disk itself (`0`: after
    /// every write). Records survive a crash of the process either way.
    #[serde(default = "default_fsync", with = "crate::config::duration")]
    pub fsync_interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            enabled: true,
            queue_size: default_queue_size(),
            sizer: Sizer::default(),
            num_consumers: default_consumers(),
            storage: None,
            max_size_mib: default_max_size_mib(),
            fsync_interval: default_fsync(),
        }
    }
}

fn default_max_size_mib() -> u64 {
    1024
}
fn default_fsync() -> Duration {
    Duration::from_secs(1)
}

fn yes() -> bool {
    true
}
fn default_queue_size() -> usize {
    1000
}
fn default_consumers() -> usize {
    4
}

pub fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// The keys of [`HelperSettings`]: the pipeline takes them out of every exporter's config
/// before the exporter parses the rest, the way Vector's sinks take `buffer`.
pub const KEYS: [&str; 3] = ["timeout", "retry_on_failure", "sending_queue"];

/// What every exporter takes besides its own keys: `timeout` (one attempt), `retry_on_failure`,
/// `sending_queue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperSettings {
    /// Time limit of one export attempt (default 5s).
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Retry with exponential backoff on retryable errors.
    #[serde(default, rename = "retry_on_failure")]
    pub retry: RetryConfig,
    /// The bounded queue in front of the exporter.
    #[serde(default, rename = "sending_queue")]
    pub queue: QueueConfig,
}

impl Default for HelperSettings {
    fn default() -> Self {
        HelperSettings {
            timeout: default_timeout(),
            retry: RetryConfig::default(),
            queue: QueueConfig::default(),
        }
    }
}

impl HelperSettings {
    /// Problems with these settings, as (field path, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.timeout.is_zero() {
            out.push(("timeout".into(), "must be greater than 0".into()));
        }
        if self.queue.enabled && self.queue.queue_size == 0 {
            out.push((
                "sending_queue.queue_size".into(),
                "must be at least 1".into(),
            ));
        }
        if self.queue.enabled && self.queue.num_consumers == 0 {
            out.push((
                "sending_queue.num_consumers".into(),
                "must be at least 1".into(),
            ));
        }
        if self.queue.storage.is_some() && self.queue.sizer != Sizer::Requests {
            out.push((
                "sending_queue.sizer".into(),
                "a disk queue (storage) counts batches (queue_size) and bytes on disk \
                 (max_size_mib): leave sizer at requests"
                    .into(),
            ));
        }
        if let (true, Some(dir)) = (self.queue.enabled, &self.queue.storage) {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => out.push((
                    "sending_queue.storage".into(),
                    format!("{dir} is not a directory"),
                )),
                Err(e) => out.push(("sending_queue.storage".into(), format!("{dir}: {e}"))),
            }
            if self.queue.max_size_mib == 0 {
                out.push((
                    "sending_queue.max_size_mib".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        out.extend(self.retry.check());
        out
    }
}
