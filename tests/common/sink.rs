//! A reference OTLP backend: tonic's generated `TraceService` server for gRPC and a hyper server
//! for OTLP/HTTP, recording every request. `set_down(true)` makes both answer UNAVAILABLE/503.

use std::convert::Infallible;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
pub struct SinkState {
    pub requests: Mutex<Vec<ExportTraceServiceRequest>>,
    pub down: AtomicBool,
    /// Every export attempt, accepted or refused.
    pub attempts: AtomicUsize,
    /// Metadata/headers seen (lowercase name -> value) on the last request.
    pub last_headers: Mutex<Vec<(String, String)>>,
    pub gzip_requests: AtomicUsize,
    /// Headers of each recorded request, in the order of `requests`.
    pub request_headers: Mutex<Vec<Vec<(String, String)>>>,
    /// Fault injection, as Grafana Tempo does it: a request larger than this many bytes
    /// (0 = no limit) is refused with RESOURCE_EXHAUSTED / HTTP 429 "ingestion rate limit".
    pub limit_bytes: AtomicUsize,
    /// Fault injection: refuse this many coming requests as rate limited (small, retryable).
    pub rate_limit_next: AtomicUsize,
    /// Fault injection: a slow backend, answering each gRPC export after this many ms.
    pub delay_ms: AtomicU64,
}

impl SinkState {
    /// Tempo's answer to `size` bytes, if it refuses them.
    fn tempo_refusal(&self, size: usize) -> Option<String> {
        let limit = self.limit_bytes.load(Ordering::SeqCst);
        let busy = self
            .rate_limit_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if busy || (limit > 0 && size > limit) {
            let (limit, adding) = if busy {
                (size * 10, size)
            } else {
                (limit, size)
            };
            return Some(format!(
                "RATE_LIMITED: ingestion rate limit (local: {limit} bytes, global: 0 bytes) exceeded while adding {adding} bytes for user single-tenant"
            ));
        }
        None
    }

    /// The value of header `name` on each recorded request.
    pub fn header_per_request(&self, name: &str) -> Vec<Option<String>> {
        self.request_headers
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .collect()
    }
}

impl SinkState {
    pub fn spans(&self) -> Vec<Span> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    pub fn span_count(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    }

    /// Polls until the sink holds `n` spans, or fails after [`super::SETTLE`].
    pub fn wait_spans(&self, n: usize) {
        let deadline = Instant::now() + super::SETTLE;
        while Instant::now() < deadline {
            if self.span_count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sink has {} spans, want {n}", self.span_count());
    }
}

pub struct Sink {
    pub grpc_port: u16,
    pub http_port: u16,
    pub state: Arc<SinkState>,
}

impl Sink {
    pub fn start() -> Sink {
        let state = Arc::new(SinkState::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send((
                    grpc.local_addr().unwrap().port(),
                    http.local_addr().unwrap().port(),
                ))
                .unwrap();
                let svc = TraceServiceServer::new(GrpcSink(st.clone()))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .max_decoding_message_size(64 * 1024 * 1024);
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(svc)
                        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(grpc)),
                );
                loop {
                    let Ok((stream, _)) = http.accept().await else {
                        continue;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { Ok::<_, Infallible>(http_sink(&st, req).await) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        let (grpc_port, http_port) = rx.recv().unwrap();
        Sink {
            grpc_port,
            http_port,
            state,
        }
    }

    /// Answers every gRPC export after `delay` (zero: at once).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

struct GrpcSink(Arc<SinkState>);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        let delay = self.0.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        *self.0.last_headers.lock().unwrap() = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        if request
            .metadata()
            .get("grpc-encoding")
            .is_some_and(|v| v == "gzip")
        {
            self.0.gzip_requests.fetch_add(1, Ordering::SeqCst);
        }
        if self.0.down.load(Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("sink is down"));
        }
        if let Some(msg) = self.0.tempo_refusal(request.get_ref().encoded_len()) {
            return Err(tonic::Status::resource_exhausted(msg));
        }
        let headers = self.0.last_headers.lock().unwrap().clone();
        self.0.request_headers.lock().unwrap().push(headers);
        self.0.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn http_sink(
    st: &SinkState,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    st.attempts.fetch_add(1, Ordering::SeqCst);
    *st.last_headers.lock().unwrap() = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let json = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if st.down.load(Ordering::SeqCst) {
        let mut r = http::Response::new(Full::new(Bytes::from_static(b"down")));
        *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    let raw = if gz {
        st.gzip_requests.fetch_add(1, Ordering::SeqCst);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let request = if json {
        spangate::data::json::decode_request(&raw).unwrap()
    } else {
        ExportTraceServiceRequest::decode(&raw[..]).unwrap()
    };
    if let Some(message) = st.tempo_refusal(raw.len()) {
        let status = spangate::data::rpc::RpcStatus {
            code: 8,
            message,
            details: vec![],
        };
        let mut r = http::Response::new(Full::new(Bytes::from(status.encode_to_vec())));
        *r.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        r.headers_mut()
            .insert("content-type", "application/x-protobuf".parse().unwrap());
        return r;
    }
    let headers = st.last_headers.lock().unwrap().clone();
    st.request_headers.lock().unwrap().push(headers);
    st.requests.lock().unwrap().push(request);
    let mut r = http::Response::new(Full::new(Bytes::from(
        ExportTraceServiceResponse::default().encode_to_vec(),
    )));
    r.headers_mut()
        .insert("content-type", "application/x-protobuf".parse().unwrap());
    r
}
