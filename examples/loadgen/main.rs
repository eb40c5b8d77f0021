//! spangate's load tool. `cargo run --release --example loadgen -- <command>`:
//! - `send`: realistic traces to a collector over OTLP/gRPC or HTTP, at a fixed or maximum rate;
//!   with `--sink`, also runs the counting sink and reports loss end to end.
//! - `sink`: only the counting sink (gRPC and HTTP on one port), printing counts every second.
//! - `bench`: the comparison table (see `scripts/bench`).

mod bench;
mod corpus;
mod hist;
mod procstat;
mod send;
mod sink;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

// The same allocator as the spangate binary, so the ceiling is measured like for like.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load generator, counting sink and benchmark driver for OTLP trace collectors")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct CorpusArgs {
    /// Traces in the generated corpus (13 spans each); ids are renewed on every pass.
    #[arg(long, default_value_t = 2000)]
    traces: usize,
    /// Spans per request at most (one service's SDK batch).
    #[arg(long, default_value_t = 100)]
    spans_per_request: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send load to a collector.
    Send {
        /// The collector's OTLP receiver (host:port) for --protocol.
        #[arg(long)]
        endpoint: String,
        #[arg(long, value_enum, default_value_t = send::Protocol::Grpc)]
        protocol: send::Protocol,
        /// Spans per second; omit for as fast as the collector answers.
        #[arg(long)]
        rate: Option<u64>,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// gzip request bodies.
        #[arg(long)]
        gzip: bool,
        /// Also run the counting sink here (the collector exports to it) and report loss.
        #[arg(long)]
        sink: Option<SocketAddr>,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Count what arrives over OTLP/gRPC and OTLP/HTTP on one address.
    Sink {
        #[arg(long, default_value = "127.0.0.1:4319")]
        listen: SocketAddr,
    },
    /// Ceiling, spangate passthrough, spangate full chain and rotel, in one table.
    Bench {
        #[command(flatten)]
        opts: bench::Options,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
}

fn corpus(args: &CorpusArgs) -> Arc<corpus::Corpus> {
    Arc::new(corpus::Corpus::generate(
        args.traces,
        args.spans_per_request,
        42,
    ))
}

fn main() -> Result<(), String> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        match cli.command {
            Cmd::Send {
                endpoint,
                protocol,
                rate,
                concurrency,
                seconds,
                gzip,
                sink,
                corpus: c,
            } => {
                let corpus = corpus(&c);
                let sink = match sink {
                    Some(addr) => Some(sink::start(addr).await.map_err(|e| format!("sink {addr}: {e}"))?.1),
                    None => None,
                };
                let spec = send::Spec {
                    protocol,
                    endpoint,
                    rate,
                    concurrency,
                    duration: Duration::from_secs(seconds),
                    gzip,
                };
                let r = send::run(&spec, corpus).await;
                println!(
                    "sent {} requests in {:.1}s: accepted {} spans ({:.0}/s), refused {}, failed {}; latency p50 {:.2} ms p99 {:.2} ms p999 {:.2} ms",
                    r.requests,
                    r.elapsed.as_secs_f64(),
                    r.accepted,
                    r.accepted as f64 / r.elapsed.as_secs_f64(),
                    r.refused,
                    r.failed,
                    r.latency.quantile_us(0.5) as f64 / 1e3,
                    r.latency.quantile_us(0.99) as f64 / 1e3,
                    r.latency.quantile_us(0.999) as f64 / 1e3,
                );
                if let Some(stats) = sink {
                    // Give the collector's batches and retries time to arrive.
                    let t = Instant::now();
                    while stats.spans.load(Ordering::Relaxed) < r.accepted && t.elapsed() < Duration::from_secs(30) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let got = stats.spans.load(Ordering::Relaxed);
                    println!(
                        "sink received {got} spans: {} not arrived (a sampling collector drops some on purpose)",
                        r.accepted as i64 - got as i64
                    );
                }
                Ok(())
            }
            Cmd::Sink { listen } => {
                let (addr, stats) = sink::start(listen).await.map_err(|e| format!("sink {listen}: {e}"))?;
                println!("sink: counting OTLP/gRPC and OTLP/HTTP (POST /v1/traces) on {addr}");
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let n = stats.spans.load(Ordering::Relaxed);
                    println!(
                        "sink: {n} spans ({} /s), {} requests, {} malformed",
                        n - last,
                        stats.requests.load(Ordering::Relaxed),
                        stats.malformed.load(Ordering::Relaxed)
                    );
                    last = n;
                }
            }
            Cmd::Bench { opts, corpus: c } => bench::run(opts, corpus(&c)).await,
        }
    })
}
