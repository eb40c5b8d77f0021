//! `debug`: writes what passes to stderr, for trying a pipeline out.

use std::io::Write;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BoxFuture, BuildError, ExportError, Exporter, ExporterConfig, ExporterContext,
};
use crate::data::attrs::str_attr;
use crate::data::{heavy, json, SpanBatch};

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One line per batch: counts.
    #[default]
    Basic,
    /// One line per span: ids, service, name, duration, status.
    Normal,
    /// The whole batch as OTLP/JSON.
    Detailed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugConfig {
    /// `basic` (default), `normal` or `detailed`.
    #[serde(default)]
    pub verbosity: Verbosity,
}

impl Check for DebugConfig {
    fn check(&self) -> Problems {
        Vec::new()
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_config::<DebugConfig>(v)?))
}

impl ExporterConfig for DebugConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        Ok(Arc::new(DebugExporter {
            id: ctx.id.to_string(),
            verbosity: self.verbosity,
        }))
    }
}

struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

fn service_name(rs: &opentelemetry_proto::tonic::trace::v1::ResourceSpans) -> &str {
    rs.resource
        .as_ref()
        .and_then(|r| str_attr(&r.attributes, "service.name"))
        .unwrap_or("-")
}

impl Exporter for DebugExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let text = match self.verbosity {
                Verbosity::Basic => format!(
                    "{}: {} spans in {} resources\n",
                    self.id,
                    batch.len(),
                    batch.resource_spans().len()
                ),
                Verbosity::Normal => {
                    let mut s = String::new();
                    for rs in batch.resource_spans() {
                        let service = service_name(rs);
                        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                            let dur = span
                                .end_time_unix_nano
                                .saturating_sub(span.start_time_unix_nano);
                            let status = span.status.as_ref().map(|s| s.code).unwrap_or(0);
                            s.push_str(&format!(
                                "{}: trace={} span={} service={} name={:?} duration_ns={} status={}\n",
                                self.id,
                                json::to_hex(&span.trace_id),
                                json::to_hex(&span.span_id),
                                service,
                                span.name,
                                dur,
                                status
                            ));
                        }
                    }
                    s
                }
                Verbosity::Detailed => {
                    let text = heavy(batch.len(), || json::encode_request(batch.resource_spans()));
                    format!("{}: {text}\n", self.id)
                }
            };
            std::io::stderr()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| ExportError::Retryable {
                    reason: format!("writing to stderr: {e}"),
                    retry_after: None,
                })
        })
    }
}
