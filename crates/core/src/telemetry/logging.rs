//! `tracing` to stderr; level from `SPANGATE_LOG` (env-filter syntax), else the config's
//! `service.telemetry.logs.level`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::service::LogFormat;

pub const LOG_ENV: &str = "SPANGATE_LOG";

/// Installs the global subscriber. A second call (tests) is a no-op.
pub fn init(format: LogFormat, level: Option<&str>) {
    let filter = std::env::var(LOG_ENV)
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .or_else(|| level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
