//! `receivers.kafka` (the contrib layout `traces: { topic, encoding }` is accepted too).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::component::registry::{parse_beside, Check, Problems};
use crate::component::{BoxFuture, BuildError, ReceiverConfig, ReceiverContext, RunningReceiver};
use crate::settings::kafka::ClientSettings;
pub use crate::settings::kafka::Encoding;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialOffset {
    #[default]
    Latest,
    Earliest,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesSection {
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaReceiverConfig {
    /// `brokers`, `client_id`, `auth`, `tls`: parsed beside the receiver's own keys.
    #[serde(skip)]
    pub client: ClientSettings,
    /// Topic to consume (default `otlp_spans`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Consumer group (default `spangate`); instances in one group share the partitions.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// `otlp_proto` (default) or `otlp_json`: one `ExportTraceServiceRequest` per message.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    /// Where a group without committed offsets starts: `latest` (default) or `earliest`.
    #[serde(default)]
    pub initial_offset: InitialOffset,
    /// The contrib collector's layout for topic and encoding.
    #[serde(default)]
    pub traces: Option<TracesSection>,
    /// Group session timeout (default 10s).
    #[serde(default = "default_session", with = "crate::config::duration")]
    pub session_timeout: Duration,
    /// Attributes kept per span; the excess is dropped and counted.
    #[serde(default)]
    pub max_attributes_per_span: Option<usize>,
    /// Longest string (or bytes) attribute value kept; longer ones are truncated and counted.
    #[serde(default)]
    pub max_attribute_value_length: Option<usize>,
}

fn default_group() -> String {
    "spangate".into()
}
fn default_session() -> Duration {
    Duration::from_secs(10)
}

impl KafkaReceiverConfig {
    pub fn limits(&self) -> crate::data::limits::AttrLimits {
        crate::data::limits::AttrLimits {
            max_attributes_per_span: self.max_attributes_per_span,
            max_attribute_value_length: self.max_attribute_value_length,
        }
    }

    pub fn topic(&self) -> String {
        self.topic
            .clone()
            .or_else(|| self.traces.as_ref().and_then(|t| t.topic.clone()))
            .unwrap_or_else(|| "otlp_spans".into())
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
            .or_else(|| self.traces.as_ref().and_then(|t| t.encoding))
            .unwrap_or_default()
    }
}

impl Check for KafkaReceiverConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        crate::receivers::intake::check_limits(&self.limits(), &mut out);
        if self.topic.is_some() && self.traces.as_ref().is_some_and(|t| t.topic.is_some()) {
            out.push((
                "traces.topic".into(),
                "set the topic once (topic or traces.topic)".into(),
            ));
        }
        if self.group_id.is_empty() {
            out.push(("group_id".into(), "must not be empty".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ReceiverConfig>, Problems> {
    Ok(Arc::new(parse_typed(v)?))
}

/// The config with its client settings, parsed beside its own keys.
pub fn parse_typed(v: &serde_json::Value) -> Result<KafkaReceiverConfig, Problems> {
    let (client, config) =
        parse_beside::<ClientSettings, KafkaReceiverConfig>(v, &ClientSettings::KEYS)?;
    Ok(KafkaReceiverConfig { client, ..config })
}

impl ReceiverConfig for KafkaReceiverConfig {
    fn endpoints(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn start(&self, ctx: ReceiverContext) -> BoxFuture<'_, Result<RunningReceiver, BuildError>> {
        Box::pin(super::start(self.clone(), ctx))
    }
}
