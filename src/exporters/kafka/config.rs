//! `exporters.kafka`.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_beside, Check, Problems};
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
use crate::settings::kafka::ClientSettings;
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
    /// `brokers`, `client_id`, `auth`, `tls`: parsed beside the exporter's own keys.
    #[serde(skip)]
    pub client: ClientSettings,
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
    /// Message compression: `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Largest message produced, in bytes (before compression); spans bound for one
    /// partition are split over several messages above it. Keep it under the broker's
    /// `message.max.bytes` (default 900000, under Kafka's 1 MB default).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
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

impl Check for KafkaExporterConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.max_message_bytes < 1024 {
            out.push(("max_message_bytes".into(), "must be at least 1024".into()));
        }
        if self.topic.is_empty() {
            out.push(("topic".into(), "must not be empty".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_typed(v)?))
}

/// The config with its client settings, parsed beside its own keys.
pub fn parse_typed(v: &serde_json::Value) -> Result<KafkaExporterConfig, Problems> {
    let (client, config) =
        parse_beside::<ClientSettings, KafkaExporterConfig>(v, &ClientSettings::KEYS)?;
    Ok(KafkaExporterConfig { client, ..config })
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
