//! `exporters.postgres`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
use crate::config::secret::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresExporterConfig {
    /// `postgres://user:password@host:5432/db` or `host=... user=...` (libpq syntax).
    pub dsn: Secret,
    /// Schema holding `spans` and `service_edges` (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Most spans written in one transaction; larger batches are written in parts.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Create the schema, tables and indexes (versioned migrations) on first use.
    #[serde(default = "default_true")]
    pub create_tables: bool,
    /// Connections kept open (default 4).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Delete spans older than this in the background (e.g. `7d`); unset keeps everything.
    #[serde(default, with = "crate::config::duration::option")]
    pub retention: Option<Duration>,
    /// Span (then resource) attribute stored as `session_id`.
    #[serde(default = "default_session_attribute")]
    pub session_attribute: String,
}

fn default_schema() -> String {
    "public".into()
}
fn default_batch_size() -> usize {
    5000
}
fn default_true() -> bool {
    true
}
fn default_pool_size() -> usize {
    4
}
fn default_session_attribute() -> String {
    "session.id".into()
}

/// A plain SQL identifier: it is spliced into statements (quoted), so keep it simple.
pub fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

/// The DSN parsed; the error never quotes the DSN (it holds the password).
pub fn parse_dsn(dsn: &Secret) -> Result<tokio_postgres::Config, String> {
    let cfg = tokio_postgres::Config::from_str(dsn.expose())
        .map_err(|e| format!("not a valid Postgres connection string ({e})"))?;
    if matches!(cfg.get_ssl_mode(), tokio_postgres::config::SslMode::Require) {
        return Err(
            "sslmode=require is not available: spangate connects to Postgres without TLS (use sslmode=disable or prefer, or a TLS sidecar)"
                .into(),
        );
    }
    if cfg.get_hosts().is_empty() {
        return Err("names no host".into());
    }
    Ok(cfg)
}

impl Check for PostgresExporterConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if let Err(e) = parse_dsn(&self.dsn) {
            out.push(("dsn".into(), e));
        }
        if !valid_identifier(&self.schema) {
            out.push((
                "schema".into(),
                "must be a plain identifier (letters, digits, _; not starting with a digit)".into(),
            ));
        }
        if self.batch_size == 0 {
            out.push(("batch_size".into(), "must be at least 1".into()));
        }
        if self.pool_size == 0 {
            out.push(("pool_size".into(), "must be at least 1".into()));
        }
        if self.retention.is_some_and(|r| r < Duration::from_secs(60)) {
            out.push(("retention".into(), "must be at least 1m".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_config::<PostgresExporterConfig>(v)?))
}

impl ExporterConfig for PostgresExporterConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        Ok(Arc::new(
            super::PostgresExporter::new(self, &ctx.id.to_string(), ctx.timeout)
                .map_err(|e| BuildError::new(&ctx.id, e))?,
        ))
    }
}
