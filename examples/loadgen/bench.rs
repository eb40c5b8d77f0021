//! `loadgen bench`: the comparison table. In one run, on the same corpus and load:
//! the ceiling (prost decode + encode on one core, in this process), spangate passthrough,
//! spangate with the full processor chain, and the peer collector (rotel), each started fresh
//! for a max-rate run (throughput with zero loss, CPU per span) and again for a fixed-rate run
//! (peak RSS, p99 request latency). Collectors can be pinned to cores with taskset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::corpus::Corpus;
use crate::procstat;
#[path = "../../tests/common/cgroup.rs"]
mod cgroup;
use crate::send::{self, Protocol, Spec};
use crate::sink::{self, SinkStats};

#[derive(clap::Args)]
pub struct Options {
    /// The spangate binary to measure.
    #[arg(long, default_value = "target/release/spangate")]
    pub spangate: PathBuf,
    /// The rotel-agent binary (the peer); without it the peer columns stay empty.
    #[arg(long)]
    pub rotel: Option<PathBuf>,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The fixed rate (spans/s) for the RSS and latency runs.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// Pin the collectors to these CPUs (taskset list, e.g. "1"); unset = not pinned.
    #[arg(long)]
    pub collector_cpus: Option<String>,
    /// Also write the table here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Passthrough,
    FullChain,
    Rotel,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Passthrough => "spangate passthrough",
            Target::FullChain => "spangate full chain",
            Target::Rotel => "rotel 0.0.1a8 (peer)",
        }
    }

    /// How long the collector holds a span on purpose (tail sampling's decision_wait).
    fn wait(self) -> f64 {
        match self {
            Target::FullChain => 5.0,
            _ => 0.0,
        }
    }
}

/// One collector under one load.
#[derive(Default, Clone, Copy)]
struct Run {
    accepted: u64,
    refused: u64,
    failed: u64,
    received: u64,
    /// Dropped on purpose by the collector (sampling), from its own metrics.
    dropped: u64,
    spans_per_s: f64,
    cpu_per_million: f64,
    /// RSS after start-up, before any load.
    idle_rss_mib: f64,
    peak_rss_mib: f64,
    p99_ms: f64,
}

impl Run {
    fn lost(&self) -> i64 {
        self.accepted as i64 - self.received as i64 - self.dropped as i64
    }
}

struct Row {
    name: String,
    max: Option<Run>,
    fixed: Option<Run>,
    /// For the ceiling rows: (spans/s on one core, CPU-s per million).
    ceiling: Option<(f64, f64)>,
}

pub async fn run(opts: Options, corpus: Arc<Corpus>) -> Result<(), String> {
    let per_span = corpus.bytes / corpus.spans.max(1);
    println!(
        "bench: corpus {} requests, {} spans, {} bytes/span; {:?}, {}s per run, fixed rate {} spans/s, collectors pinned to {}",
        corpus.len(),
        corpus.spans,
        per_span,
        opts.protocol,
        opts.seconds,
        opts.rate,
        opts.collector_cpus.as_deref().unwrap_or("(not pinned)")
    );
    let mut rows = vec![
        Row {
            name: "ceiling: prost decode+encode, 1 core".into(),
            max: None,
            fixed: None,
            ceiling: Some(ceiling(&corpus, false)),
        },
        Row {
            name: "ceiling + gzip level 1 (zlib-rs)".into(),
            max: None,
            fixed: None,
            ceiling: Some(ceiling(&corpus, true)),
        },
    ];
    let mut runs = vec![Target::Passthrough, Target::FullChain];
    if opts.rotel.is_some() {
        runs.push(Target::Rotel);
    }
    for target in runs {
        let max = measure(&opts, target, None, corpus.clone()).await?;
        let fixed = measure(&opts, target, Some(opts.rate), corpus.clone()).await?;
        rows.push(Row {
            name: target.name().into(),
            max: Some(max),
            fixed: Some(fixed),
            ceiling: None,
        });
    }
    if opts.rotel.is_none() {
        println!("bench: no peer: rotel was not given (--rotel), its column is empty");
    }
    let over = overload(&opts, corpus.clone()).await?;
    let mut table = table(&rows, opts.rate);
    if let Some(o) = over {
        table += &format!(
            "\n| overload: passthrough defaults, {OVERLOAD_CGROUP_MIB} MiB cgroup, backend {OVERLOAD_BACKEND_MS} ms, {OVERLOAD_CLIENTS} clients at max | accepted | refused (retryable) | failed | received after recovery | lost | cgroup peak | OOM kills | alive |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n| spangate passthrough | {} | {} | {} | {} | {} | {} MiB | {} | {} |\n",
            o.accepted,
            o.refused,
            o.failed,
            o.received,
            o.lost(),
            o.cgroup_peak_mib,
            o.oom_kills,
            if o.alive { "yes" } else { "no" },
        );
    }
    table += &targets(&rows, over, opts.rate, per_span);
    println!("\n{table}");
    if let Some(path) = &opts.markdown {
        std::fs::write(path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut lossy: Vec<&str> = rows
        .iter()
        .filter(|r| [r.max, r.fixed].iter().flatten().any(|run| run.lost() != 0))
        .map(|r| r.name.as_str())
        .collect();
    if over.is_some_and(|o| o.lost() != 0 || o.oom_kills > 0 || !o.alive) {
        lossy.push("overload");
    }
    if !lossy.is_empty() {
        return Err(format!("spans were lost in: {}", lossy.join(", ")));
    }
    Ok(())
}

/// Spans per second and CPU-seconds per million spans of decode + encode (+ gzip) on this thread.
fn ceiling(corpus: &Corpus, gzip: bool) -> (f64, f64) {
    let cpu0 = procstat::thread_cpu_seconds();
    let t0 = Instant::now();
    let mut spans = 0u64;
    while t0.elapsed() < Duration::from_secs(3) {
        for bytes in corpus.encoded() {
            let req = ExportTraceServiceRequest::decode(bytes).expect("corpus decodes");
            let out = req.encode_to_vec();
            if gzip {
                std::hint::black_box(spangate::data::gzip::compress(&out));
            } else {
                std::hint::black_box(out);
            }
        }
        spans += corpus.spans;
    }
    let cpu = procstat::thread_cpu_seconds() - cpu0;
    (spans as f64 / cpu, cpu / spans as f64 * 1e6)
}

async fn measure(
    opts: &Options,
    target: Target,
    rate: Option<u64>,
    corpus: Arc<Corpus>,
) -> Result<Run, String> {
    let (sink_addr, stats) = sink::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .map_err(|e| format!("sink: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut collector = Collector::start(opts, target, sink_addr.port(), dir.path(), None)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_mib = procstat::rss_kib(collector.pid()) as f64 / 1024.0;
    let endpoint = match opts.protocol {
        Protocol::Grpc => format!("127.0.0.1:{}", collector.grpc),
        Protocol::Http => format!("127.0.0.1:{}", collector.http),
    };
    // Warm-up: connections, allocator arenas, the first batches.
    let warm = send::run(
        &Spec {
            protocol: opts.protocol,
            endpoint: endpoint.clone(),
            rate: Some(rate.unwrap_or(20_000)),
            concurrency: opts.concurrency,
            duration: Duration::from_secs(1),
            gzip: false,
        },
        corpus.clone(),
    )
    .await;
    drain(&stats, &collector, warm.accepted, 0).await;
    let (received0, dropped0) = (stats.spans.load(Ordering::Relaxed), collector.dropped());
    let cpu0 = procstat::cpu_seconds(collector.pid());
    let t0 = Instant::now();
    let report = send::run(
        &Spec {
            protocol: opts.protocol,
            endpoint,
            rate,
            concurrency: opts.concurrency,
            duration: Duration::from_secs(opts.seconds),
            gzip: false,
        },
        corpus,
    )
    .await;
    drain(&stats, &collector, received0 + report.accepted, dropped0).await;
    let done = t0.elapsed().as_secs_f64();
    let cpu = procstat::cpu_seconds(collector.pid()) - cpu0;
    let received = stats.spans.load(Ordering::Relaxed) - received0;
    let run = Run {
        accepted: report.accepted,
        refused: report.refused,
        failed: report.failed,
        received,
        dropped: collector.dropped() - dropped0,
        // Until the last span is out, less the decision wait a tail sampler holds spans on
        // purpose (a latency, not a cost of throughput); its CPU is counted all the same.
        spans_per_s: report.accepted as f64
            / (done - target.wait())
                .max(report.elapsed.as_secs_f64())
                .max(1e-9),
        cpu_per_million: cpu / report.accepted.max(1) as f64 * 1e6,
        idle_rss_mib,
        peak_rss_mib: procstat::peak_rss_kib(collector.pid()) as f64 / 1024.0,
        p99_ms: report.latency.quantile_us(0.99) as f64 / 1000.0,
    };
    collector.stop();
    println!(
        "bench: {:<24} {:>9}: accepted {} refused {} failed {} received {} dropped {} lost {} | {:.0} spans/s, {:.2} CPU-s/M, peak RSS {:.1} MiB, p50 {:.2} ms p99 {:.2} ms",
        target.name(),
        rate.map_or("max".into(), |r| format!("{r}/s")),
        run.accepted,
        run.refused,
        run.failed,
        run.received,
        run.dropped,
        run.lost(),
        run.spans_per_s,
        run.cpu_per_million,
        run.peak_rss_mib,
        report.latency.quantile_us(0.5) as f64 / 1000.0,
        run.p99_ms
    );
    if stats.malformed.load(Ordering::Relaxed) > 0 {
        return Err(format!(
            "{}: the sink got malformed requests",
            target.name()
        ));
    }
    Ok(run)
}

/// The overload run: what the issue that made spangate lean measured as a user would.
#[derive(Clone, Copy)]
struct Overload {
    accepted: u64,
    refused: u64,
    failed: u64,
    received: u64,
    cgroup_peak_mib: u64,
    peak_rss_mib: f64,
    oom_kills: u64,
    alive: bool,
}

impl Overload {
    fn lost(&self) -> i64 {
        self.accepted as i64 - self.received as i64
    }
}

/// Memory of the container the overload run imitates.
const OVERLOAD_CGROUP_MIB: u64 = 256;
const OVERLOAD_BACKEND_MS: u64 = 200;
const OVERLOAD_CLIENTS: usize = 32;

/// spangate passthrough with its defaults (no `memory_limit_mib`) in a 256 MiB memory cgroup,
/// a backend answering after 200 ms, 32 clients at full speed; then the backend recovers and
/// everything accepted must arrive. `None` (said) when this machine cannot make a cgroup.
async fn overload(opts: &Options, corpus: Arc<Corpus>) -> Result<Option<Overload>, String> {
    let Some(cg) = cgroup::MemoryCgroup::new(OVERLOAD_CGROUP_MIB << 20) else {
        println!("bench: no overload row: a memory cgroup needs root and a cgroup filesystem");
        return Ok(None);
    };
    let (sink_addr, stats) = sink::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .map_err(|e| format!("sink: {e}"))?;
    stats.delay_ms.store(OVERLOAD_BACKEND_MS, Ordering::Relaxed);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut collector = Collector::start(
        opts,
        Target::Passthrough,
        sink_addr.port(),
        dir.path(),
        Some(&cg.procs()),
    )?;
    let endpoint = match opts.protocol {
        Protocol::Grpc => format!("127.0.0.1:{}", collector.grpc),
        Protocol::Http => format!("127.0.0.1:{}", collector.http),
    };
    let report = send::run(
        &Spec {
            protocol: opts.protocol,
            endpoint,
            rate: None,
            concurrency: OVERLOAD_CLIENTS,
            duration: Duration::from_secs(opts.seconds),
            gzip: false,
        },
        corpus,
    )
    .await;
    let peak_rss_mib = procstat::peak_rss_kib(collector.pid()) as f64 / 1024.0;
    stats.delay_ms.store(0, Ordering::Relaxed);
    drain(&stats, &collector, report.accepted, collector.dropped()).await;
    let alive = matches!(collector.child.try_wait(), Ok(None));
    let run = Overload {
        accepted: report.accepted,
        refused: report.refused,
        failed: report.failed,
        received: stats.spans.load(Ordering::Relaxed),
        cgroup_peak_mib: cg.peak_mib(),
        peak_rss_mib,
        oom_kills: cg.oom_kills(),
        alive,
    };
    collector.stop();
    println!(
        "bench: overload ({OVERLOAD_CGROUP_MIB} MiB cgroup, backend {OVERLOAD_BACKEND_MS} ms, {OVERLOAD_CLIENTS} clients at max): accepted {} refused {} failed {} received {} lost {} | cgroup peak {} MiB, peak RSS {:.1} MiB, OOM kills {}, {}",
        run.accepted,
        run.refused,
        run.failed,
        run.received,
        run.lost(),
        run.cgroup_peak_mib,
        run.peak_rss_mib,
        run.oom_kills,
        if run.alive { "alive" } else { "DEAD" }
    );
    Ok(Some(run))
}

/// Waits until the sink has `received` spans beyond what the collector dropped since
/// `dropped0`, or 30 s without progress.
async fn drain(stats: &SinkStats, collector: &Collector, received: u64, dropped0: u64) {
    let mut last = (0, Instant::now());
    loop {
        let got = stats.spans.load(Ordering::Relaxed) + collector.dropped() - dropped0;
        if got >= received {
            return;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Collector {
    child: Child,
    grpc: u16,
    http: u16,
    /// spangate's metrics port, for the dropped-span count.
    metrics: Option<u16>,
}

impl Collector {
    /// Starts `target`; in the memory cgroup whose `cgroup.procs` is `cgroup` when given (the
    /// shell joins it, then execs the collector, so nothing else is charged to it).
    fn start(
        opts: &Options,
        target: Target,
        sink: u16,
        dir: &Path,
        cgroup: Option<&Path>,
    ) -> Result<Collector, String> {
        let (grpc, http, metrics) = (free_port(), free_port(), free_port());
        let mut cmd = match cgroup {
            Some(procs) => {
                let mut c = Command::new("sh");
                c.args(["-c", "echo $$ > \"$0\" && exec \"$@\""]).arg(procs);
                c
            }
            None => Command::new("env"),
        };
        match &opts.collector_cpus {
            Some(cpus) => cmd.args(["taskset", "-c", cpus]),
            None => &mut cmd,
        };
        match target {
            Target::Rotel => {
                let bin = opts.rotel.as_ref().expect("rotel path");
                cmd.arg(bin).args([
                    "start",
                    "--otlp-grpc-endpoint",
                    &format!("127.0.0.1:{grpc}"),
                    "--otlp-http-endpoint",
                    &format!("127.0.0.1:{http}"),
                    "--otlp-grpc-max-recv-msg-size-mib",
                    "64",
                    "--exporter",
                    "otlp",
                    "--otlp-exporter-endpoint",
                    &format!("http://127.0.0.1:{sink}"),
                    "--otlp-exporter-compression",
                    "gzip",
                    "--otlp-exporter-batch-max-size",
                    "8192",
                    "--otlp-exporter-batch-timeout",
                    "200ms",
                    "--log-level",
                    "warn",
                    "--pid-file",
                ]);
                cmd.arg(dir.join("rotel.pid"))
                    .arg("--log-file")
                    .arg(dir.join("rotel.log"));
            }
            Target::Passthrough | Target::FullChain => {
                let config = dir.join("pipelines.yaml");
                std::fs::write(&config, spangate_config(target, grpc, http, metrics, sink))
                    .map_err(|e| e.to_string())?;
                cmd.arg(&opts.spangate).arg("--config").arg(&config);
                cmd.env("SPANGATE_LOG", "warn");
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", target.name()))?;
        let collector = Collector {
            child,
            grpc,
            http,
            metrics: (target != Target::Rotel).then_some(metrics),
        };
        collector.wait_ready(target)?;
        Ok(collector)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&self, target: Target) -> Result<(), String> {
        for _ in 0..400 {
            let ready = match self.metrics {
                Some(port) => http_get(port, "/readyz").starts_with("HTTP/1.1 200"),
                None => {
                    std::net::TcpStream::connect(("127.0.0.1", self.grpc)).is_ok()
                        && std::net::TcpStream::connect(("127.0.0.1", self.http)).is_ok()
                }
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{} did not become ready in 20 s", target.name()))
    }

    /// Spans the collector dropped on purpose (spangate's `spangate_processor_dropped_spans_total`).
    fn dropped(&self) -> u64 {
        let Some(port) = self.metrics else { return 0 };
        http_get(port, "/metrics")
            .lines()
            .filter(|l| l.starts_with("spangate_processor_dropped_spans_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn spangate_config(target: Target, grpc: u16, http: u16, metrics: u16, sink: u16) -> String {
    let (processors, list) = match target {
        Target::FullChain => (
            "  rate_limiting: { spans_per_second: 100000000, key: service.name }
  redaction:
    builtin: [email, credit_card, us_ssn, ipv4, ipv6, jwt, bearer_token, phone]
    url_query_params: [session, token]
  allowlist:
    resource: [service.*, deployment.*, k8s.*, host.name, cloud.*, telemetry.sdk.*]
    span: [http.*, url.*, server.*, client.*, network.*, user_agent.*, rpc.*, db.*, session.id, enduser.id, app.*]
    event: [exception.*, cache.*]
  session: { key_attributes: [session.id] }
  tail_sampling:
    decision_wait: 5s # Target::wait
    num_traces: 200000
    policies:
      - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
      - { name: slow, type: latency, latency: { threshold_ms: 90 } }
      - { name: base, type: probabilistic, probabilistic: { sampling_percentage: 25 } }
",
            "[rate_limiting, redaction, allowlist, session, tail_sampling, batch]",
        ),
        _ => ("", "[batch]"),
    };
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
{processors}  batch: {{ send_batch_size: 8192, timeout: 200ms }}
exporters:
  otlp: {{ endpoint: 127.0.0.1:{sink}, tls: {{ insecure: true }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: {list}, exporters: [otlp] }}
"
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The raw answer to GET `path` on 127.0.0.1:`port` (HTTP/1.1, connection closed).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The markdown table: one row per run, each figure with its ratio to the ceiling and the peer.
fn table(rows: &[Row], rate: u64) -> String {
    let ceiling = rows.first().and_then(|r| r.ceiling);
    let peer = rows
        .iter()
        .find(|r| r.name.starts_with("rotel"))
        .and_then(|r| Some((r.max?, r.fixed?)));
    let ratio = |v: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "—".into(),
    };
    let k = rate / 1000;
    let mut out = format!(
        "| run | max spans/s, zero loss | vs ceiling | vs peer | CPU-s per M spans | vs ceiling | vs peer | idle RSS | peak RSS at max | vs peer | peak RSS at {k}k spans/s | vs peer | p99 latency at {k}k spans/s | vs peer |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let (tput, cpu) = match (r.ceiling, r.max) {
            (Some(c), _) => c,
            (None, Some(m)) => (m.spans_per_s, m.cpu_per_million),
            _ => continue,
        };
        let fixed = r.fixed;
        out += &format!(
            "| {} | {:.0} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            tput,
            ratio(tput, ceiling.map(|c| c.0)),
            ratio(tput, peer.map(|p| p.0.spans_per_s)),
            cpu,
            ratio(cpu, ceiling.map(|c| c.1)),
            ratio(cpu, peer.map(|p| p.0.cpu_per_million)),
            r.max
                .map_or("—".into(), |m| format!("{:.1} MiB", m.idle_rss_mib)),
            r.max
                .map_or("—".into(), |m| format!("{:.1} MiB", m.peak_rss_mib)),
            r.max.map_or("—".into(), |m| ratio(
                m.peak_rss_mib,
                peer.map(|p| p.0.peak_rss_mib)
            )),
            fixed.map_or("—".into(), |f| format!("{:.1} MiB", f.peak_rss_mib)),
            fixed.map_or("—".into(), |f| ratio(
                f.peak_rss_mib,
                peer.map(|p| p.1.peak_rss_mib)
            )),
            fixed.map_or("—".into(), |f| format!("{:.2} ms", f.p99_ms)),
            fixed.map_or("—".into(), |f| ratio(f.p99_ms, peer.map(|p| p.1.p99_ms))),
        );
    }
    out
}

/// Every target of the issue that made spangate lean, as measured in this run.
fn targets(rows: &[Row], over: Option<Overload>, rate: u64, per_span: u64) -> String {
    let find = |name: &str| rows.iter().find(|r| r.name.starts_with(name));
    let (pass, full, peer) = (
        find("spangate passthrough"),
        find("spangate full chain"),
        find("rotel"),
    );
    let mut out = String::from("\n| target | goal | measured | met |\n|---|---:|---:|---|\n");
    let mut line =
        |what: &str, goal: String, measured: Option<(f64, String)>, ok: &dyn Fn(f64) -> bool| {
            let (m, met) = match measured {
                Some((v, text)) => (text, if ok(v) { "yes" } else { "**no**" }),
                None => ("—".into(), "—"),
            };
            out += &format!("| {what} | {goal} | {m} | {met} |\n");
        };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b, format!("{:.2}×", a / b))),
        _ => None,
    };
    let max = |r: Option<&Row>| r.and_then(|r| r.max);
    let fixed = |r: Option<&Row>| r.and_then(|r| r.fixed);
    let k = rate / 1000;
    line(
        "passthrough peak RSS at max rate vs rotel",
        "≤ 0.5×".into(),
        ratio(
            max(pass).map(|r| r.peak_rss_mib),
            max(peer).map(|r| r.peak_rss_mib),
        ),
        &|v| v <= 0.5,
    );
    line(
        &format!("passthrough peak RSS at {k}k spans/s vs rotel"),
        "≤ 0.5×".into(),
        ratio(
            fixed(pass).map(|r| r.peak_rss_mib),
            fixed(peer).map(|r| r.peak_rss_mib),
        ),
        &|v| v <= 0.5,
    );
    line(
        "passthrough idle RSS",
        "≤ 12 MiB".into(),
        max(pass).map(|r| (r.idle_rss_mib, format!("{:.1} MiB", r.idle_rss_mib))),
        &|v| v <= 12.0,
    );
    line(
        "passthrough CPU per span vs rotel",
        "≤ 0.33×".into(),
        ratio(
            max(pass).map(|r| r.cpu_per_million),
            max(peer).map(|r| r.cpu_per_million),
        ),
        &|v| v <= 0.33,
    );
    line(
        "full chain throughput vs passthrough",
        "≥ 0.7×".into(),
        ratio(
            max(full).map(|r| r.spans_per_s),
            max(pass).map(|r| r.spans_per_s),
        ),
        &|v| v >= 0.7,
    );
    line(
        "full chain CPU per span vs rotel passthrough",
        "≤ 0.6×".into(),
        ratio(
            max(full).map(|r| r.cpu_per_million),
            max(peer).map(|r| r.cpu_per_million),
        ),
        &|v| v <= 0.6,
    );
    // What tail sampling holds at `rate`: decision_wait (5 s) of spans, as wire bytes.
    let waiting = (rate * 5 * per_span) as f64 / (1 << 20) as f64;
    let budget = 1.2 * waiting + 25.0;
    line(
        &format!("full chain peak RSS at {k}k spans/s, decision_wait 5s"),
        format!("≤ 1.2 × {waiting:.1} MiB waiting + 25 = {budget:.1} MiB"),
        fixed(full).map(|r| (r.peak_rss_mib, format!("{:.1} MiB", r.peak_rss_mib))),
        &|v| v <= budget,
    );
    for (name, row) in [("passthrough", pass), ("full chain", full)] {
        line(
            &format!("{name} p99 request latency at {k}k spans/s"),
            "< 5 ms".into(),
            fixed(row).map(|r| (r.p99_ms, format!("{:.2} ms", r.p99_ms))),
            &|v| v < 5.0,
        );
    }
    line(
        &format!(
            "overload in {OVERLOAD_CGROUP_MIB} MiB: not OOM-killed, alive, nothing accepted lost"
        ),
        "0 kills, 0 lost".into(),
        over.map(|o| {
            let bad =
                o.oom_kills as f64 + o.lost().unsigned_abs() as f64 + f64::from(u8::from(!o.alive));
            (
                bad,
                format!(
                    "{} kills, {} lost, peak {} MiB",
                    o.oom_kills,
                    o.lost(),
                    o.cgroup_peak_mib
                ),
            )
        }),
        &|v| v == 0.0,
    );
    out
}
