//! The `service` section: pipelines, telemetry, shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `service:` in pipelines.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `traces` or `traces/<name>` -> the components it chains.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Self-observability: metrics endpoint and log format.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long SIGTERM/SIGINT may take to flush everything before the rest is counted as lost.
    #[serde(default = "default_shutdown", with = "crate::config::duration")]
    pub shutdown_timeout: Duration,
    /// Resident memory above which (minus the spike allowance) receivers refuse new data.
    /// Unset: a share of the cgroup's memory limit (see `telemetry::memory`); 0: no limit.
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// Headroom under `memory_limit_mib` where refusing starts (default 20% of the limit).
    #[serde(default)]
    pub memory_spike_limit_mib: Option<u64>,
}

fn default_shutdown() -> Duration {
    Duration::from_secs(30)
}

/// One pipeline: receivers feed the processors in order, then every exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver ids feeding this pipeline (fan-in).
    pub receivers: Vec<String>,
    /// Processor ids, run in this order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporter ids; each gets every span leaving the processors (fan-out).
    pub exporters: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Where /metrics, /healthz and /readyz are served.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Log output settings.
    #[serde(default)]
    pub logs: LogsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of the self-observability HTTP server (default `0.0.0.0:8888`).
    #[serde(default = "default_metrics_address")]
    pub address: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            address: default_metrics_address(),
        }
    }
}

fn default_metrics_address() -> String {
    "0.0.0.0:8888".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// Log level filter used when `SPANGATE_LOG` is unset (env-filter syntax, default `info`).
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl ServiceConfig {
    /// Checks serde cannot express; (field path under `service`, problem).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self
            .telemetry
            .metrics
            .address
            .parse::<SocketAddr>()
            .is_err()
        {
            out.push((
                "telemetry.metrics.address".into(),
                format!(
                    "`{}` is not a valid host:port address (e.g. 0.0.0.0:8888)",
                    self.telemetry.metrics.address
                ),
            ));
        }
        if let Some(level) = &self.telemetry.logs.level {
            if tracing_subscriber::EnvFilter::try_new(level).is_err() {
                out.push((
                    "telemetry.logs.level".into(),
                    format!("`{level}` is not a valid log filter"),
                ));
            }
        }
        match (self.memory_limit_mib, self.memory_spike_limit_mib) {
            (Some(l), _) if (1..32).contains(&l) => out.push((
                "memory_limit_mib".into(),
                "must be at least 32 (spangate itself needs some), or 0 for no limit".into(),
            )),
            (Some(0), Some(_)) => out.push((
                "memory_spike_limit_mib".into(),
                "applies only with a memory limit (memory_limit_mib is 0)".into(),
            )),
            (Some(l), Some(s)) if s >= l => out.push((
                "memory_spike_limit_mib".into(),
                "must be below memory_limit_mib".into(),
            )),
            (None, Some(_)) => out.push((
                "memory_spike_limit_mib".into(),
                "applies only with memory_limit_mib".into(),
            )),
            _ => {}
        }
        out
    }

    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.telemetry.metrics.address.parse().ok()
    }
}
