//! OTLP/gRPC client. Sends the batch's cached protobuf encoding as is (no re-encode per
//! exporter), framed and compressed by us, over tonic's `Channel` (connection pooling, HTTP/2,
//! TLS); tonic's `Status` parses the answer.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use super::config::{Compression, OtlpExporterConfig};
use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::{gzip, heavy, rpc, SpanBatch};
use crate::settings::client_tls::endpoint_url;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub struct GrpcExporter {
    channel: Channel,
    uri: http::Uri,
    headers: http::HeaderMap,
    gzip: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcSetupError {
    #[error("invalid endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    #[error("{0}")]
    Read(String),
    #[error("invalid header {0}")]
    Header(String),
}

impl GrpcExporter {
    pub fn new(cfg: &OtlpExporterConfig) -> Result<Self, GrpcSetupError> {
        Self::with_path(cfg, EXPORT_PATH)
    }

    /// A client for another unary method (`/package.Service/Method`) on the same settings.
    pub fn with_path(cfg: &OtlpExporterConfig, path: &str) -> Result<Self, GrpcSetupError> {
        let url = endpoint_url(&cfg.endpoint, &cfg.tls);
        let mut endpoint = Endpoint::from_shared(url.clone())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            match &cfg.tls.ca_file {
                Some(ca) => {
                    let pem = std::fs::read(ca)
                        .map_err(|e| GrpcSetupError::Read(format!("{ca}: {e}")))?;
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                None => tls = tls.with_native_roots(),
            }
            if let (Some(c), Some(k)) = (&cfg.tls.cert_file, &cfg.tls.key_file) {
                let cert =
                    std::fs::read(c).map_err(|e| GrpcSetupError::Read(format!("{c}: {e}")))?;
                let key =
                    std::fs::read(k).map_err(|e| GrpcSetupError::Read(format!("{k}: {e}")))?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        let mut headers = http::HeaderMap::new();
        for (k, v) in &cfg.headers.0 {
            let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| GrpcSetupError::Header(k.clone()))?;
            let value =
                http::HeaderValue::from_str(v).map_err(|_| GrpcSetupError::Header(k.clone()))?;
            headers.insert(name, value);
        }
        let uri = format!("{}{path}", url.trim_end_matches('/'))
            .parse()
            .map_err(|_| GrpcSetupError::Header(format!("endpoint {url}")))?;
        Ok(GrpcExporter {
            // Lazy: a backend that is down at start is retried per batch, never a start failure.
            channel: endpoint.connect_lazy(),
            uri,
            headers,
            gzip: cfg.compression == Compression::Gzip,
        })
    }
}

/// Classifies a gRPC status as the OTLP spec says: these codes are transient.
pub fn classify(status: &Status) -> ExportError {
    let retryable = matches!(
        status.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss
            | Code::DeadlineExceeded
    );
    let reason = format!("{:?}: {}", status.code(), status.message());
    if retryable {
        ExportError::Retryable {
            reason,
            retry_after: rpc::retry_delay(status.details()),
        }
    } else {
        ExportError::Permanent {
            reason,
            rejected: None,
        }
    }
}

impl GrpcExporter {
    /// The gRPC frame: flag, length, message; gzip done here (out of the runtime's way for big
    /// batches) rather than in tonic's encoder, which would compress on a runtime thread.
    /// Uncompressed, it is the batch's cached encoding as is.
    fn frame(&self, batch: &SpanBatch) -> Bytes {
        if !self.gzip {
            return batch.grpc_frame();
        }
        self.frame_message(&batch.encoded(), batch.len())
    }

    /// Any message framed (and gzipped when configured); `spans` sizes the work.
    pub fn frame_message(&self, message: &[u8], spans: usize) -> Bytes {
        if !self.gzip {
            let mut framed = BytesMut::with_capacity(message.len() + 5);
            framed.put_u8(0);
            framed.put_u32(message.len() as u32);
            framed.put_slice(message);
            return framed.freeze();
        }
        heavy(spans, || {
            let compressed = gzip::compress(message);
            let mut framed = BytesMut::with_capacity(compressed.len() + 5);
            framed.put_u8(1);
            framed.put_u32(compressed.len() as u32);
            framed.put_slice(&compressed);
            framed.freeze()
        })
    }

    async fn call(
        &self,
        batch: &SpanBatch,
        extra: Option<&http::HeaderMap>,
    ) -> Result<Bytes, ExportError> {
        self.unary(self.frame(batch), extra).await
    }

    /// One unary call with a framed request; the response message (empty if none).
    pub async fn unary(
        &self,
        frame: Bytes,
        extra: Option<&http::HeaderMap>,
    ) -> Result<Bytes, ExportError> {
        let mut request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .header("grpc-accept-encoding", "gzip,identity");
        if self.gzip {
            request = request.header("grpc-encoding", "gzip");
        }
        let mut request = request
            .body(tonic::body::Body::new(Full::new(frame)))
            .map_err(|e| ExportError::Permanent {
                reason: format!("building request: {e}"),
                rejected: None,
            })?;
        request.headers_mut().extend(self.headers.clone());
        if let Some(extra) = extra {
            request.headers_mut().extend(extra.clone());
        }
        let mut channel = self.channel.clone();
        let unavailable = |e: &dyn std::fmt::Display| ExportError::Retryable {
            reason: format!("UNAVAILABLE: {e}"),
            retry_after: None,
        };
        channel.ready().await.map_err(|e| unavailable(&e))?;
        let response = channel.call(request).await.map_err(|e| unavailable(&e))?;
        let (parts, body) = response.into_parts();
        // Trailers-only answers carry the status in the headers.
        if let Some(status) = Status::from_header_map(&parts.headers) {
            if status.code() != Code::Ok {
                return Err(classify(&status));
            }
        }
        if parts.status != http::StatusCode::OK {
            let reason = format!("HTTP {} from gRPC endpoint", parts.status.as_u16());
            return Err(match parts.status.as_u16() {
                429 | 502 | 503 | 504 => ExportError::Retryable {
                    reason,
                    retry_after: None,
                },
                _ => ExportError::Permanent {
                    reason,
                    rejected: None,
                },
            });
        }
        let collected = body.collect().await.map_err(|e| unavailable(&e))?;
        if let Some(status) = collected.trailers().and_then(Status::from_header_map) {
            if status.code() != Code::Ok {
                return Err(classify(&status));
            }
        }
        let gzipped = parts
            .headers
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        Ok(unframe(collected.to_bytes(), gzipped))
    }
}

/// The response message out of its frame; empty when absent or unreadable (a response body
/// only matters for `partial_success`).
fn unframe(body: Bytes, gzipped: bool) -> Bytes {
    if body.len() < 5 {
        return Bytes::new();
    }
    let message = body.slice(5..);
    if body[0] == 1 && gzipped {
        return gzip::decompress(&message, 64 * 1024 * 1024)
            .map(Bytes::from)
            .unwrap_or_default();
    }
    message
}

impl GrpcExporter {
    /// One export with `extra` headers on top of the configured ones (e.g. a tenant).
    pub async fn send(
        &self,
        batch: &SpanBatch,
        extra: Option<&http::HeaderMap>,
    ) -> Result<(), ExportError> {
        let message = self.call(batch, extra).await?;
        let response = ExportTraceServiceResponse::decode(message).unwrap_or_default();
        match response.partial_success {
            Some(p) if p.rejected_spans > 0 => Err(ExportError::Permanent {
                reason: format!("backend rejected spans: {}", p.error_message),
                rejected: Some(p.rejected_spans as u64),
            }),
            _ => Ok(()),
        }
    }
}

impl Exporter for GrpcExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch, None))
    }
}
