//! The `jaeger` exporter: OTLP to a Jaeger collector (`otlp_grpc`, `otlp_http`), or Jaeger's
//! own gRPC API (`grpc`: `PostSpans`, one request per resource) with the model translation in
//! [`translate`].

pub mod config;
pub mod model;
pub mod translate;

use std::sync::Arc;

use prost::Message;

use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::{heavy, SpanBatch};
use crate::exporters::otlp_client::grpc::GrpcExporter;
use crate::exporters::otlp_client::http::HttpExporter;
use config::{JaegerExporterConfig, JaegerProtocol};
use model::{PostSpansRequest, POST_SPANS_PATH};

pub fn build(cfg: &JaegerExporterConfig) -> Result<Arc<dyn Exporter>, String> {
    Ok(match cfg.protocol {
        JaegerProtocol::OtlpGrpc => {
            Arc::new(GrpcExporter::new(&cfg.otlp).map_err(|e| e.to_string())?)
        }
        JaegerProtocol::OtlpHttp => {
            Arc::new(HttpExporter::new(&cfg.otlp).map_err(|e| e.to_string())?)
        }
        JaegerProtocol::Grpc => Arc::new(JaegerGrpcExporter {
            client: GrpcExporter::with_path(&cfg.otlp, POST_SPANS_PATH)
                .map_err(|e| e.to_string())?,
        }),
    })
}

pub struct JaegerGrpcExporter {
    client: GrpcExporter,
}

impl JaegerGrpcExporter {
    async fn export_batch(&self, batch: &SpanBatch) -> Result<(), ExportError> {
        // Encoded up front (off the runtime for big batches), then sent one resource at a time.
        let frames: Vec<bytes::Bytes> = heavy(batch.len(), || {
            batch
                .resource_spans()
                .iter()
                .map(|rs| {
                    let request = PostSpansRequest {
                        batch: Some(translate::batch(rs)),
                    };
                    let spans = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
                    self.client.frame_message(&request.encode_to_vec(), spans)
                })
                .collect()
        });
        // A failed resource fails the attempt; the retry re-sends all of them (at least once).
        for frame in frames {
            self.client.unary(frame, None).await?;
        }
        Ok(())
    }
}

impl Exporter for JaegerGrpcExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export_batch(batch))
    }
}
