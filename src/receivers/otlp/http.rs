//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip, answered in the
//! request's content type as the OTLP spec says.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::server::{Body, Handler};
use super::{auth, Shared, Transport, OFFLOAD_BYTES, RETRY_AFTER};
use crate::component::Refusal;
use crate::data::{gzip, json, rpc::RpcStatus};
use crate::receivers::intake::Received;

/// What one JSON object or array costs once decoded (the parsed tree, then the OTLP structs):
/// an estimate on the high side, for the memory bound.
const DECODED_BYTES_PER_CONTAINER: u64 = 160;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Encoding {
    Proto,
    Json,
}

#[derive(Clone)]
pub struct HttpHandler {
    shared: Arc<Shared>,
    /// Largest body, after decompression.
    limit: usize,
    path: Arc<str>,
    /// Longest a body may take to arrive.
    read_timeout: std::time::Duration,
}

impl HttpHandler {
    pub fn new(
        shared: Arc<Shared>,
        limit: usize,
        path: String,
        read_timeout: std::time::Duration,
    ) -> Self {
        HttpHandler {
            shared,
            limit,
            path: path.into(),
            read_timeout,
        }
    }
}

impl Handler for HttpHandler {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move { this.export(req).await })
    }

    fn header_timed_out(&self) {
        self.shared.refused(Transport::Http, "header_timeout", 0);
    }
}

/// An error answer: a `google.rpc.Status` in the request's encoding.
struct Failure {
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// Already counted (refusals by the pipeline are counted where the span count is known).
    counted: bool,
}

fn fail(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status,
        reason,
        message: message.into(),
        retry_after: None,
        counted: false,
    }
}

/// The gRPC code that matches an HTTP status, for the `google.rpc.Status` body.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 415 => 3,
        408 => 4,
        401 => 16,
        404 => 12,
        405 => 12,
        413 | 429 => 8,
        503 => 14,
        _ => 2,
    }
}

fn respond(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = status;
    let ct = match encoding {
        Encoding::Proto => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}

fn error_response(encoding: Encoding, f: &Failure) -> Response<Body> {
    let code = grpc_code(f.status);
    let body = match encoding {
        Encoding::Proto => RpcStatus {
            code,
            message: f.message.clone(),
            details: Vec::new(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": f.message })
            .to_string()
            .into_bytes(),
    };
    let mut resp = respond(encoding, f.status, body);
    if let Some(secs) = f.retry_after {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if f.status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    }
    resp
}

fn success(encoding: Encoding, msg: &ExportTraceServiceResponse) -> Response<Body> {
    let body = match encoding {
        Encoding::Proto => msg.encode_to_vec(),
        Encoding::Json => {
            let v = match &msg.partial_success {
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            v.to_string().into_bytes()
        }
    };
    respond(encoding, StatusCode::OK, body)
}

impl HttpHandler {
    async fn export(&self, req: Request<Incoming>) -> Response<Body> {
        // Answer in the request's encoding where we can tell it; JSON otherwise (readable).
        let encoding = content_encoding(req.headers()).unwrap_or(Encoding::Json);
        match self.try_export(req).await {
            Ok(resp) => success(encoding, &resp),
            Err(f) => {
                if !f.counted {
                    self.shared.refused(Transport::Http, f.reason, 0);
                }
                error_response(encoding, &f)
            }
        }
    }

    async fn try_export(
        &self,
        req: Request<Incoming>,
    ) -> Result<ExportTraceServiceResponse, Failure> {
        let path = req.uri().path();
        if path != &*self.path {
            let msg = match path {
                "/v1/metrics" | "/v1/logs" => format!(
                    "{path}: only the traces signal is supported; send traces to {}",
                    self.path
                ),
                _ => format!("{path}: not found; send traces to {}", self.path),
            };
            return Err(fail(StatusCode::NOT_FOUND, "not_found", msg));
        }
        if req.method() != Method::POST {
            return Err(fail(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed; use POST", req.method()),
            ));
        }
        if !auth::authorized(self.shared.token.as_deref(), req.headers()) {
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing or invalid bearer token",
            ));
        }
        // Near the memory limit: refuse without keeping the body, once it is read (answering
        // under it closes the connection; see `discard`). One declared over the size limit is
        // cut: it would be refused anyway.
        if self.shared.intake.over_memory() {
            let declared = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if declared.is_none_or(|n| n <= self.limit) {
                super::discard(req.into_body(), self.limit, self.read_timeout).await;
            }
            return Err(Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "memory_limit",
                message: "memory limit reached, retry later".into(),
                retry_after: Some(RETRY_AFTER.as_secs().max(1)),
                counted: false,
            });
        }
        let Some(encoding) = content_encoding(req.headers()) else {
            let ct = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_else(|| "none".into());
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "unsupported content type {ct:?}; use application/x-protobuf or application/json"
                ),
            ));
        };
        let gzipped = match req
            .headers()
            .get(http::header::CONTENT_ENCODING)
            .map(|v| v.as_bytes().to_ascii_lowercase())
            .as_deref()
        {
            None | Some(b"identity") | Some(b"") => false,
            Some(b"gzip") | Some(b"x-gzip") => true,
            Some(other) => {
                return Err(fail(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    format!(
                        "unsupported content encoding {:?}; use gzip or none",
                        String::from_utf8_lossy(other)
                    ),
                ))
            }
        };
        let too_large = || {
            fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body exceeds max_request_body_size ({} bytes)", self.limit),
            )
        };
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.limit) {
            return Err(too_large());
        }
        let read = Limited::new(req.into_body(), self.limit).collect();
        let Ok(read) = tokio::time::timeout(self.read_timeout, read).await else {
            return Err(fail(
                StatusCode::REQUEST_TIMEOUT,
                "read_timeout",
                format!(
                    "the body did not arrive within read_timeout ({:?})",
                    self.read_timeout
                ),
            ));
        };
        let body = match read {
            Ok(c) => c.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return Err(too_large())
            }
            Err(e) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "read_error",
                    format!("reading body: {e}"),
                ))
            }
        };
        let request = self.decode(body, gzipped, encoding).await?;
        match self.shared.accept(Transport::Http, request).await {
            Ok(a) => Ok(a.into_response()),
            Err(Refusal::Full) => Err(Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "pipeline_full",
                message: "pipeline is full, retry later".into(),
                retry_after: Some(RETRY_AFTER.as_secs().max(1)),
                counted: true,
            }),
            Err(Refusal::Memory) => Err(Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "memory_limit",
                message: "memory limit reached, retry later".into(),
                retry_after: Some(RETRY_AFTER.as_secs().max(1)),
                counted: true,
            }),
            Err(Refusal::Refused { retry_after }) => Err(Failure {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: "refused_by_processor",
                message: "rate limited, retry later".into(),
                retry_after: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
                counted: true,
            }),
        }
    }

    async fn decode(
        &self,
        body: Bytes,
        gzipped: bool,
        encoding: Encoding,
    ) -> Result<Received, Failure> {
        let limit = self.limit;
        let keep_encoded = self.shared.intake.keeps_encoded();
        let allowance = self.shared.intake.memory_allowance();
        // gzip bodies expand (often ~10x), so a smaller compressed body is already big work.
        let big = body.len() > OFFLOAD_BYTES || (gzipped && body.len() > OFFLOAD_BYTES / 8);
        let work = move || -> Result<Received, Failure> {
            let raw = if gzipped {
                match gzip::decompress(&body, limit) {
                    Ok(v) => Bytes::from(v),
                    Err(gzip::GunzipError::TooLarge { .. }) => {
                        return Err(fail(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "too_large",
                            format!(
                                "decompressed body exceeds max_request_body_size ({limit} bytes)"
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(fail(StatusCode::BAD_REQUEST, "decode_error", e.to_string()))
                    }
                }
            } else {
                body
            };
            match encoding {
                Encoding::Proto => Received::proto(raw, keep_encoded).map_err(|e| {
                    fail(
                        StatusCode::BAD_REQUEST,
                        "decode_error",
                        format!("cannot decode protobuf ExportTraceServiceRequest: {e}"),
                    )
                }),
                Encoding::Json => {
                    // Bounded before anything is built: by the body (no amplification) and, with
                    // a memory limit, by half of its allowance for requests in flight.
                    let mut max = json::max_containers(raw.len());
                    if let Some(a) = allowance {
                        max = max.min((a / 2 / DECODED_BYTES_PER_CONTAINER) as usize);
                    }
                    let n = json::containers(&raw);
                    if n > max {
                        return Err(fail(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "too_large",
                            format!(
                                "OTLP/JSON body of {} bytes holds {n} objects and arrays; at most {max} may be decoded here (by its size and the memory limit): send smaller requests",
                                raw.len()
                            ),
                        ));
                    }
                    json::decode_unbounded(&raw)
                        .map(Received::from)
                        .map_err(|e| {
                            fail(
                                StatusCode::BAD_REQUEST,
                                "decode_error",
                                format!("cannot decode OTLP/JSON: {e}"),
                            )
                        })
                }
            }
        };
        if big {
            tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                Err(fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    e.to_string(),
                ))
            })
        } else {
            work()
        }
    }
}

fn content_encoding(headers: &http::HeaderMap) -> Option<Encoding> {
    let ct = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Proto),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}
