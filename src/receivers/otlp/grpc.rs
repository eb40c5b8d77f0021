//! OTLP/gRPC `TraceService/Export`, unary, on hyper directly.
//!
//! tonic's generated server answers INTERNAL for an undecodable message and OUT_OF_RANGE for an
//! oversize one; the contract wants INVALID_ARGUMENT and RESOURCE_EXHAUSTED, so we parse the
//! gRPC frame ourselves (five-byte prefix, optional gzip) and only borrow tonic's `Status` for
//! the error encoding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::{Code, Status};

use super::server::{Body, Handler};
use super::{auth, Shared, Transport, OFFLOAD_BYTES, RETRY_AFTER};
use crate::component::Refusal;
use crate::data::{gzip, rpc};
use crate::receivers::intake::Received;

pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Clone)]
pub struct GrpcHandler {
    shared: Arc<Shared>,
    /// Largest message, after decompression.
    limit: usize,
    /// Longest a message may take to arrive.
    read_timeout: std::time::Duration,
}

impl GrpcHandler {
    pub fn new(shared: Arc<Shared>, limit: usize, read_timeout: std::time::Duration) -> Self {
        GrpcHandler {
            shared,
            limit,
            read_timeout,
        }
    }
}

impl Handler for GrpcHandler {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move {
            match this.export(req).await {
                Ok(resp) => ok_response(&resp),
                Err(status) => status_response(status),
            }
        })
    }
}

fn status_response(status: Status) -> Response<Body> {
    status.into_http::<Empty<Bytes>>().map(|b| b.boxed_unsync())
}

fn ok_response(msg: &ExportTraceServiceResponse) -> Response<Body> {
    let payload = msg.encode_to_vec();
    let mut framed = BytesMut::with_capacity(5 + payload.len());
    framed.put_u8(0);
    framed.put_u32(payload.len() as u32);
    framed.put_slice(&payload);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(framed.freeze())
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed_unsync();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp.headers_mut().insert(
        "grpc-accept-encoding",
        HeaderValue::from_static("gzip,identity"),
    );
    resp
}

fn retryable(code: Code, message: &str) -> Status {
    let details = rpc::status_with_retry(code as i32, message, RETRY_AFTER);
    Status::with_details(code, message, Bytes::from(details))
}

impl GrpcHandler {
    async fn export(&self, req: Request<Incoming>) -> Result<ExportTraceServiceResponse, Status> {
        let transport = Transport::Grpc;
        let path = req.uri().path();
        if path != EXPORT_PATH {
            self.shared.refused(transport, "unimplemented", 0);
            let what = if path.contains(".metrics.") || path.contains(".logs.") {
                "only the traces signal is supported"
            } else {
                "unknown method"
            };
            return Err(Status::unimplemented(format!("{what}: {path}")));
        }
        if !auth::authorized(self.shared.token.as_deref(), req.headers()) {
            self.shared.refused(transport, "unauthenticated", 0);
            return Err(Status::unauthenticated("missing or invalid bearer token"));
        }
        // Near the memory limit: refuse without keeping the body, once it is read (answering
        // under it resets the stream; see `discard`).
        if self.shared.intake.over_memory() {
            self.shared.refused(transport, "memory_limit", 0);
            super::discard(req.into_body(), self.limit + 5, self.read_timeout).await;
            return Err(retryable(
                Code::Unavailable,
                "memory limit reached, retry later",
            ));
        }
        let gzipped = match req.headers().get("grpc-encoding").map(|v| v.as_bytes()) {
            None | Some(b"identity") => false,
            Some(b"gzip") => true,
            Some(other) => {
                self.shared.refused(transport, "unsupported_encoding", 0);
                return Err(Status::unimplemented(format!(
                    "unsupported grpc-encoding {:?}; use gzip or identity",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        // The frame can be at most the limit plus its prefix; a gzip frame is smaller than what
        // it expands to, so the same bound holds before decompression.
        let read = Limited::new(req.into_body(), self.limit + 5).collect();
        let Ok(read) = tokio::time::timeout(self.read_timeout, read).await else {
            self.shared.refused(transport, "read_timeout", 0);
            return Err(Status::deadline_exceeded(format!(
                "the message did not arrive within read_timeout ({:?})",
                self.read_timeout
            )));
        };
        let body = match read {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    self.shared.refused(transport, "too_large", 0);
                    return Err(Status::resource_exhausted(format!(
                        "message larger than max_recv_msg_size ({} bytes)",
                        self.limit
                    )));
                }
                self.shared.refused(transport, "read_error", 0);
                return Err(Status::invalid_argument(format!("reading request: {e}")));
            }
        };
        let request = self.decode(body, gzipped).await?;
        match self.shared.accept(transport, request).await {
            Ok(a) => Ok(a.into_response()),
            Err(Refusal::Full) => Err(retryable(
                Code::Unavailable,
                "pipeline is full, retry later",
            )),
            Err(Refusal::Memory) => Err(retryable(
                Code::Unavailable,
                "memory limit reached, retry later",
            )),
            Err(Refusal::Refused { retry_after }) => {
                let details = rpc::status_with_retry(
                    Code::ResourceExhausted as i32,
                    "rate limited",
                    retry_after,
                );
                Err(Status::with_details(
                    Code::ResourceExhausted,
                    "rate limited",
                    Bytes::from(details),
                ))
            }
        }
    }

    async fn decode(&self, body: Bytes, gzipped: bool) -> Result<Received, Status> {
        let transport = Transport::Grpc;
        if body.len() < 5 {
            self.shared.refused(transport, "decode_error", 0);
            return Err(Status::invalid_argument(
                "truncated gRPC frame: expected a 5-byte message prefix",
            ));
        }
        let compressed = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if len > self.limit {
            self.shared.refused(transport, "too_large", 0);
            return Err(Status::resource_exhausted(format!(
                "message of {len} bytes exceeds max_recv_msg_size ({} bytes)",
                self.limit
            )));
        }
        if body.len() != 5 + len {
            self.shared.refused(transport, "decode_error", 0);
            return Err(Status::invalid_argument(format!(
                "gRPC frame declares {len} bytes but carries {}",
                body.len() - 5
            )));
        }
        if compressed > 1 || (compressed == 1 && !gzipped) {
            self.shared.refused(transport, "decode_error", 0);
            return Err(Status::invalid_argument(
                "compressed message without a supported grpc-encoding",
            ));
        }
        let payload = body.slice(5..);
        let limit = self.limit;
        let keep_encoded = self.shared.intake.keeps_encoded();
        let work = move || -> Result<Received, (&'static str, Status)> {
            let raw = if compressed == 1 {
                match gzip::decompress(&payload, limit) {
                    Ok(v) => Bytes::from(v),
                    Err(gzip::GunzipError::TooLarge { .. }) => {
                        return Err((
                            "too_large",
                            Status::resource_exhausted(format!(
                                "decompressed message exceeds max_recv_msg_size ({limit} bytes)"
                            )),
                        ))
                    }
                    Err(e) => {
                        return Err(("decode_error", Status::invalid_argument(e.to_string())))
                    }
                }
            } else {
                payload
            };
            Received::proto(raw, keep_encoded).map_err(|e| {
                (
                    "decode_error",
                    Status::invalid_argument(format!(
                        "cannot decode ExportTraceServiceRequest: {e}"
                    )),
                )
            })
        };
        let result = if len > OFFLOAD_BYTES {
            tokio::task::spawn_blocking(work)
                .await
                .unwrap_or_else(|e| Err(("decode_error", Status::internal(e.to_string()))))
        } else {
            work()
        };
        result.map_err(|(reason, status)| {
            self.shared.refused(transport, reason, 0);
            status
        })
    }
}
