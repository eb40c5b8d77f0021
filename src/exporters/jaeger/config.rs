//! `exporters.jaeger`: the `otlp` exporter's settings with Jaeger's `protocol` values.

use std::sync::Arc;

use crate::component::registry::Problems;
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
use crate::exporters::otlp_client::config::{parse_settled, OtlpExporterConfig, Protocol};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JaegerProtocol {
    /// OTLP over gRPC to the Jaeger collector (port 4317; Jaeger speaks OTLP since 1.35).
    OtlpGrpc,
    /// OTLP over HTTP (port 4318).
    OtlpHttp,
    /// Jaeger's own `jaeger.api_v2.CollectorService/PostSpans` (port 14250).
    Grpc,
}

#[derive(Debug, Clone)]
pub struct JaegerExporterConfig {
    pub protocol: JaegerProtocol,
    /// Endpoint, headers, compression, TLS, queue and retry.
    pub otlp: OtlpExporterConfig,
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    let mut rest = v.as_object().cloned().unwrap_or_default();
    let protocol = match rest.remove("protocol") {
        None => JaegerProtocol::OtlpGrpc,
        Some(p) => match p.as_str() {
            Some("otlp_grpc") => JaegerProtocol::OtlpGrpc,
            Some("otlp_http") => JaegerProtocol::OtlpHttp,
            Some("grpc") => JaegerProtocol::Grpc,
            _ => {
                return Err(vec![(
                    "protocol".into(),
                    format!("unknown protocol {p}: expected one of: otlp_grpc, otlp_http, grpc"),
                )])
            }
        },
    };
    let transport = match protocol {
        JaegerProtocol::OtlpHttp => Protocol::Http,
        _ => Protocol::Grpc,
    };
    rest.insert(
        "protocol".into(),
        serde_json::Value::String(
            match transport {
                Protocol::Grpc => "grpc",
                Protocol::Http => "http",
            }
            .into(),
        ),
    );
    let otlp = parse_settled(&serde_json::Value::Object(rest), transport)?;
    Ok(Arc::new(JaegerExporterConfig { protocol, otlp }))
}

impl ExporterConfig for JaegerExporterConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        super::build(self).map_err(|e| BuildError::new(&ctx.id, e))
    }
}
