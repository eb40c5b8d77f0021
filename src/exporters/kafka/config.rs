//! `exporters.kafka`.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
pub use crate::settings::kafka::Encoding;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionBy {
    /// Message key = trace id: every span of a trace lands in one partition.
    #[default]
    TraceId,
    /// Message key = the session attribute (trace id when a span has none).
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaExporterConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic to produce to (default `otlp_spans`).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// `otlp_proto` (default) or `otlp_json`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `trace_id` (default) or `session`.
    #[serde(default)]
    pub partition_by: PartitionBy,
    /// Span (then resource) attribute naming the session, for `partition_by: session`.
    #[serde(default = "default_session_attribute")]
    pub session_attribute: String,
    /// Kafka client id (default `spangate`).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Message compression: `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Largest message produced, in bytes (before compression); spans bound for one
    /// partition are split over several messages above it. Keep it under the broker's
    /// `message.max.bytes` (default 900000, under Kafka's 1 MB default).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// `sasl: { mechanism, username, password }` (and the contrib's older `tls` place).
    #[serde(default)]
    pub auth: Option<crate::settings::kafka::Auth>,
    /// TLS to the brokers: `{ insecure, insecure_skip_verify, ca_file, cert_file, key_file }`.
    #[serde(default)]
    pub tls: Option<crate::settings::kafka::Tls>,
}

fn default_topic() -> String {
    "otlp_spans".into()
}
fn default_session_attribute() -> String {
    "session.id".into()
}
fn default_max_message_bytes() -> usize {
    900_000
}

fn default_client_id() -> String {
    "spangate".into()
}

impl KafkaExporterConfig {
    pub fn security(&self) -> crate::settings::kafka::Security<'_> {
        crate::settings::kafka::Security::new(&self.auth, &self.tls)
    }
}

impl Check for KafkaExporterConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.brokers.is_empty() {
            out.push((
                "brokers".into(),
                "list at least one broker (host:port)".into(),
            ));
        }
        for (i, b) in self.brokers.iter().enumerate() {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                out.push((format!("brokers[{i}]"), format!("`{b}` is not host:port")));
            }
        }
        if self.max_message_bytes < 1024 {
            out.push(("max_message_bytes".into(), "must be at least 1024".into()));
        }
        if self.topic.is_empty() {
            out.push(("topic".into(), "must not be empty".into()));
        }
        self.security().check(&mut out);
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_config::<KafkaExporterConfig>(v)?))
}

impl ExporterConfig for KafkaExporterConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        Ok(Arc::new(
            super::KafkaExporter::new(
                self,
                ctx.timeout,
                crate::settings::kafka::ClientLog::new(&ctx.id.to_string(), &ctx.telemetry),
            )
            .map_err(|e| BuildError::new(&ctx.id, e))?,
        ))
    }
}
