//! OTLP/gRPC client. Sends the batch's cached protobuf encoding as is (no re-encode per
//! exporter), framed and compressed by us, over tonic's `Channel` (connection pooling, HTTP/2)
//! with TLS from our rustls settings; tonic's `Status` parses the answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};
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
    Tls(#[from] crate::settings::tls::TlsError),
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
        let parsed: http::Uri = url
            .parse()
            .map_err(|_| GrpcSetupError::Header(format!("endpoint {url}")))?;
        let secure = parsed.scheme_str() == Some("https");
        // `[::1]` in a URI, `::1` to connect to and to name.
        let host = parsed.host().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = parsed.port_u16().unwrap_or(if secure { 443 } else { 80 });
        // tonic dials `http://` and our connector adds TLS, so the TLS settings are the same
        // rustls config the HTTP exporter uses (`insecure_skip_verify` included); the origin
        // keeps `:scheme https` on the requests.
        let plain = format!("http://{}", parsed.authority().map_or("", |a| a.as_str()));
        let endpoint = Endpoint::from_shared(plain)?
            .origin(parsed.clone())
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        // Lazy: a backend that is down at start is retried per batch, never a start failure.
        let channel = if secure {
            let tls = Arc::new(cfg.tls.rustls(&[b"h2"])?);
            let name = ServerName::try_from(host.clone())
                .map_err(|_| GrpcSetupError::Header(format!("endpoint host {host}")))?;
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                tls_connect(tls.clone(), name.clone(), host.clone(), port)
            }))
        } else {
            endpoint.connect_lazy()
        };
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
            channel,
            uri,
            headers,
            gzip: cfg.compression == Compression::Gzip,
        })
    }
}

/// One TLS connection to `host:port`, verified (or not) as `tls` says.
async fn tls_connect(
    tls: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    host: String,
    port: u16,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(TokioIo::new(stream))
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

/// A compressed gRPC message of the concatenation of `parts`: flag 1, big-endian length, gzip
/// written straight after the header (no copy of the message or of its compressed form).
fn gzip_frame(parts: &[impl AsRef<[u8]>]) -> Bytes {
    let mut framed = gzip::compress_parts(parts, 5);
    let len = (framed.len() - 5) as u32;
    framed[0] = 1;
    framed[1..5].copy_from_slice(&len.to_be_bytes());
    Bytes::from(framed)
}

impl GrpcExporter {
    /// The gRPC frame: flag, length, message; gzip done here (out of the runtime's way for big
    /// batches) rather than in tonic's encoder, which would compress on a runtime thread.
    /// Uncompressed, it is the batch's cached encoding as is.
    fn frame(&self, batch: &SpanBatch) -> Bytes {
        if !self.gzip {
            return batch.grpc_frame();
        }
        heavy(batch.len(), || gzip_frame(&batch.encoded_parts()))
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
        heavy(spans, || gzip_frame(&[message]))
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
