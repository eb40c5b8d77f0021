//! OTLP/HTTP client: POST protobuf (or JSON) to `<endpoint>/v1/traces`, gzip by default.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::config::{Compression, Encoding, OtlpExporterConfig};
use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::{gzip, heavy, json, rpc::RpcStatus, SpanBatch};
use crate::settings::client_tls::endpoint_url;

pub struct HttpExporter {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    gzip: bool,
    encoding: Encoding,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("{0}")]
    Tls(#[from] crate::settings::tls::TlsError),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("invalid header {0}")]
    Header(String),
}

impl HttpExporter {
    pub fn new(cfg: &OtlpExporterConfig) -> Result<Self, HttpSetupError> {
        let base = endpoint_url(&cfg.endpoint, &cfg.tls);
        let url = cfg
            .traces_endpoint
            .clone()
            .unwrap_or_else(|| format!("{}/v1/traces", base.trim_end_matches('/')));
        let tls = cfg.tls.rustls(&[b"h2", b"http/1.1"])?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers.0 {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| HttpSetupError::Header(k.clone()))?;
            let value = HeaderValue::from_str(v).map_err(|_| HttpSetupError::Header(k.clone()))?;
            headers.insert(name, value);
        }
        Ok(HttpExporter {
            client,
            url,
            headers,
            gzip: cfg.compression == Compression::Gzip,
            encoding: cfg.encoding,
        })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from OTLP backends and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The message inside an error body, when it is a `google.rpc.Status`.
fn error_message(body: &[u8], encoding: Encoding) -> String {
    let parsed = match encoding {
        Encoding::Proto => RpcStatus::decode(body).ok().map(|s| s.message),
        Encoding::Json => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string)),
    };
    parsed
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned())
}

impl Exporter for HttpExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.send(batch, None))
    }
}

impl HttpExporter {
    /// One export with `extra` headers on top of the configured ones (e.g. a tenant).
    pub async fn send(
        &self,
        batch: &SpanBatch,
        extra: Option<&HeaderMap>,
    ) -> Result<(), ExportError> {
        {
            // Protobuf is the batch's pieces as held (gzip reads them where they lie).
            let (parts, content_type): (Vec<Bytes>, &str) = match self.encoding {
                Encoding::Proto if self.gzip => (batch.encoded_parts(), "application/x-protobuf"),
                Encoding::Proto => (vec![batch.encoded()], "application/x-protobuf"),
                Encoding::Json => (
                    vec![Bytes::from(heavy(batch.len(), || {
                        json::encode_request(batch.resource_spans())
                    }))],
                    "application/json",
                ),
            };
            let mut req = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .headers(extra.cloned().unwrap_or_default())
                .header(http::header::CONTENT_TYPE, content_type);
            let body = if self.gzip {
                req = req.header(http::header::CONTENT_ENCODING, "gzip");
                Bytes::from(heavy(batch.len(), || gzip::compress_parts(&parts, 0)))
            } else {
                parts.into_iter().next().unwrap_or_default()
            };
            let resp = req
                .body(body)
                .send()
                .await
                .map_err(|e| ExportError::Retryable {
                    reason: format!("request failed: {e}"),
                    retry_after: None,
                })?;
            let status = resp.status();
            let hint = retry_after(resp.headers());
            let body = resp.bytes().await.unwrap_or_default();
            if status.is_success() {
                let partial = match self.encoding {
                    Encoding::Proto => ExportTraceServiceResponse::decode(body.as_ref())
                        .ok()
                        .and_then(|r| r.partial_success)
                        .map(|p| (p.rejected_spans, p.error_message)),
                    Encoding::Json => serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| {
                            let p = v.get("partialSuccess")?;
                            let n = p
                                .get("rejectedSpans")
                                .and_then(|n| n.as_i64().or_else(|| n.as_str()?.parse().ok()))?;
                            let m = p.get("errorMessage").and_then(|m| m.as_str()).unwrap_or("");
                            Some((n, m.to_string()))
                        }),
                };
                return match partial {
                    Some((n, msg)) if n > 0 => Err(ExportError::Permanent {
                        reason: format!("backend rejected spans: {msg}"),
                        rejected: Some(n as u64),
                    }),
                    _ => Ok(()),
                };
            }
            let reason = format!(
                "HTTP {}: {}",
                status.as_u16(),
                error_message(&body, self.encoding)
            );
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) {
                Err(ExportError::Retryable {
                    reason,
                    retry_after: hint,
                })
            } else {
                Err(ExportError::Permanent {
                    reason,
                    rejected: None,
                })
            }
        }
    }
}
