//! The `otlp` exporter (`otlp_grpc`, `otlp_http`, `otlphttp`): the shared OTLP client
//! (`super::otlp_client`) as a component.

use std::sync::Arc;

use crate::component::registry::Problems;
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
use crate::exporters::otlp_client::config::{parse_with_default, OtlpExporterConfig, Protocol};
use crate::exporters::otlp_client::{grpc, http};

pub fn parse_otlp(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    parse_with_default(v, Protocol::Grpc)
}

pub fn parse_otlp_http(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    parse_with_default(v, Protocol::Http)
}

impl ExporterConfig for OtlpExporterConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        match self.protocol() {
            Protocol::Grpc => Ok(Arc::new(
                grpc::GrpcExporter::new(self).map_err(|e| BuildError::new(&ctx.id, e))?,
            )),
            Protocol::Http => Ok(Arc::new(
                http::HttpExporter::new(self).map_err(|e| BuildError::new(&ctx.id, e))?,
            )),
        }
    }
}
