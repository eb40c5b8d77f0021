//! The load generator: corpus requests over OTLP/gRPC or OTLP/HTTP, at a fixed rate (open loop,
//! latency measured from when each request was due to leave, so a stalled collector cannot hide its
//! queueing behind a full window) or as fast as `concurrency` requests in flight allow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http_body_util::Full;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::corpus::Corpus;
use crate::hist::Histogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub protocol: Protocol,
    /// host:port of the collector's OTLP receiver for `protocol`.
    pub endpoint: String,
    /// Spans per second; `None` = as fast as the collector answers.
    pub rate: Option<u64>,
    pub concurrency: usize,
    pub duration: Duration,
    /// gzip request bodies (SDKs send uncompressed by default).
    pub gzip: bool,
}

#[derive(Default)]
pub struct Report {
    pub requests: u64,
    /// Spans in requests the collector answered with success.
    pub accepted: u64,
    /// Spans in requests refused with a retryable status (backpressure).
    pub refused: u64,
    /// Spans in requests that failed otherwise (errors, timeouts: delivery unknown).
    pub failed: u64,
    pub latency: Histogram,
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

enum Outcome {
    Accepted,
    Refused,
    Failed,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends until `spec.duration` has passed and every request in flight has been answered.
pub async fn run(spec: &Spec, corpus: Arc<Corpus>) -> Report {
    let client = Client::new(spec).await;
    let counters = Arc::new(Counters::default());
    let latency = Arc::new(Mutex::new(Histogram::default()));
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + spec.duration;
    match spec.rate {
        None => {
            let stop = Arc::new(AtomicBool::new(false));
            let mut workers = Vec::new();
            for _ in 0..spec.concurrency.max(1) {
                let (client, corpus, counters, latency, next, stop) = (
                    client.clone(),
                    corpus.clone(),
                    counters.clone(),
                    latency.clone(),
                    next.clone(),
                    stop.clone(),
                );
                workers.push(tokio::spawn(async move {
                    let mut local = Histogram::default();
                    while !stop.load(Ordering::Relaxed) {
                        let (body, spans) = corpus.request(next.fetch_add(1, Ordering::Relaxed));
                        let t = Instant::now();
                        let outcome = client.send(body).await;
                        local.record(t.elapsed());
                        if let Outcome::Refused = counters.count(outcome, spans) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                    lock(&latency).merge(&local);
                }));
            }
            tokio::time::sleep_until(deadline.into()).await;
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                let _ = w.await;
            }
        }
        Some(rate) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(spec.concurrency.max(1)));
            let mut scheduled_spans = 0u64;
            let mut inflight = tokio::task::JoinSet::new();
            loop {
                let at = t0 + Duration::from_secs_f64(scheduled_spans as f64 / rate as f64);
                if at >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                // From the wake-up, not `at`: tokio's timer wakes up to 1 ms late, which is no
                // collector's doing; waiting for a permit below is, and is counted.
                let woke = Instant::now();
                let (body, spans) = corpus.request(next.fetch_add(1, Ordering::Relaxed));
                scheduled_spans += spans;
                let permit = permits.clone().acquire_owned().await;
                let (client, counters, latency) =
                    (client.clone(), counters.clone(), latency.clone());
                inflight.spawn(async move {
                    let outcome = client.send(body).await;
                    lock(&latency).record(woke.elapsed());
                    counters.count(outcome, spans);
                    drop(permit);
                });
                // Reap finished tasks so the set stays as small as the requests in flight.
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
            // The run lasts `duration` even when the last request left and returned early.
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
    let elapsed = t0.elapsed();
    let latency = std::mem::take(&mut *lock(&latency));
    Report {
        requests: counters.requests.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        refused: counters.refused.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        latency,
        elapsed,
    }
}

fn lock(h: &Mutex<Histogram>) -> std::sync::MutexGuard<'_, Histogram> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

impl Counters {
    fn count(&self, outcome: Outcome, spans: u64) -> Outcome {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let c = match outcome {
            Outcome::Accepted => &self.accepted,
            Outcome::Refused => &self.refused,
            Outcome::Failed => &self.failed,
        };
        c.fetch_add(spans, Ordering::Relaxed);
        outcome
    }
}

#[derive(Clone)]
enum Client {
    Grpc {
        channel: tonic::transport::Channel,
        gzip: bool,
    },
    Http {
        client: Box<
            hyper_util::client::legacy::Client<
                hyper_util::client::legacy::connect::HttpConnector,
                Full<Bytes>,
            >,
        >,
        uri: http::Uri,
        gzip: bool,
    },
}

impl Client {
    async fn new(spec: &Spec) -> Client {
        match spec.protocol {
            Protocol::Grpc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", spec.endpoint))
                        .expect("endpoint")
                        .tcp_nodelay(true)
                        .timeout(REQUEST_TIMEOUT)
                        .connect_lazy();
                Client::Grpc {
                    channel,
                    gzip: spec.gzip,
                }
            }
            Protocol::Http => {
                let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                connector.set_nodelay(true);
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .pool_max_idle_per_host(spec.concurrency.max(1))
                .build(connector);
                Client::Http {
                    client: Box::new(client),
                    uri: format!("http://{}/v1/traces", spec.endpoint)
                        .parse()
                        .expect("endpoint"),
                    gzip: spec.gzip,
                }
            }
        }
    }

    async fn send(&self, body: Bytes) -> Outcome {
        match self {
            Client::Grpc { channel, gzip } => {
                let mut client = tonic::client::Grpc::new(channel.clone());
                if *gzip {
                    client = client.send_compressed(CompressionEncoding::Gzip);
                }
                if client.ready().await.is_err() {
                    return Outcome::Failed;
                }
                let path = PathAndQuery::from_static(EXPORT);
                match client
                    .unary(tonic::Request::new(body), path, RawCodec)
                    .await
                {
                    Ok(_) => Outcome::Accepted,
                    Err(s) => match s.code() {
                        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
                            Outcome::Refused
                        }
                        _ => Outcome::Failed,
                    },
                }
            }
            Client::Http { client, uri, gzip } => {
                let mut req = http::Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf");
                let body = if *gzip {
                    req = req.header(http::header::CONTENT_ENCODING, "gzip");
                    Bytes::from(spangate::data::gzip::compress(&body))
                } else {
                    body
                };
                let Ok(req) = req.body(Full::new(body)) else {
                    return Outcome::Failed;
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, client.request(req)).await {
                    Ok(Ok(resp)) => {
                        let status = resp.status();
                        // Read the answer so the connection goes back to the pool.
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        match status.as_u16() {
                            200..=299 => Outcome::Accepted,
                            429 | 502 | 503 | 504 => Outcome::Refused,
                            _ => Outcome::Failed,
                        }
                    }
                    _ => Outcome::Failed,
                }
            }
        }
    }
}

/// Sends pre-encoded request bytes as they are; ignores the response message.
#[derive(Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
