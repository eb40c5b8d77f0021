//! tail_sampling: spans/s with 50,000 traces in flight, and the memory a buffered span costs
//! (counted by a wrapping allocator) next to its OTLP wire size.
//! Run: `cargo bench --bench tail_sampling`.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use spangate::component::registry::parse_config;
use spangate::data::wire::walk;
use spangate::data::SpanBatch;
use spangate::processors::tail_sampling::config::TailSamplingConfig;
use spangate::processors::tail_sampling::policy::Policies;
use spangate::processors::tail_sampling::store::{Limits, Sizing, Store};
use spangate::processors::tail_sampling::TsMetrics;
use spangate::telemetry::metrics::Metrics;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const POLICIES: &str = "
decision_wait: 30s
num_traces: 50000
max_buffered_bytes: 0
policies:
  - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
  - { name: slow, type: latency, latency: { threshold_ms: 500 } }
  - { name: vip, type: string_attribute, string_attribute: { key: app.tier, values: [gold] } }
  - { name: base, type: probabilistic, probabilistic: { sampling_percentage: 10 } }
";

fn store() -> Store {
    let (v, _) = spangate::config::yaml::parse(POLICIES, 0).unwrap();
    let cfg: TailSamplingConfig = parse_config(&v).unwrap();
    let policies = Policies::compile(&cfg.policies, false);
    let metrics = TsMetrics::new(&Metrics::default(), "tail_sampling", &policies.names);
    Store::new(
        policies,
        Limits {
            wait: cfg.decision_wait,
            after_root: None,
            num_traces: cfg.num_traces,
            max_bytes: 0,
            max_trace_bytes: 0,
            block_on_overflow: false,
        },
        Sizing {
            shards: 8,
            sampled_cache: 100_000,
            non_sampled_cache: 1_000_000,
            expected: 50_000,
        },
        metrics,
        Default::default(),
    )
}

/// Requests of 100 spans in traces of 8 spans (the bench data's shape), as the receivers hand
/// them on: encoded, checked by the wire walk.
fn requests(from: u64, n: u64) -> Vec<SpanBatch> {
    (from..from + n)
        .map(|i| {
            let bytes = common::request(i, 100).encode_to_vec();
            let spans = walk(&bytes).expect("valid request").spans;
            SpanBatch::from_wire(bytes.into(), spans)
        })
        .collect()
}

/// `cargo bench` passes `--bench`; `cargo test --benches` (a debug build) only smoke-tests, so
/// it gets small sizes.
fn full_size() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn memory_per_span() {
    let st = store();
    // Baseline before the input exists: each input batch is freed once buffered, so what
    // remains above the baseline is what the buffer holds.
    let before = LIVE.load(Ordering::Relaxed);
    let n = if full_size() { 4000 } else { 40 };
    let reqs = requests(0, n); // 400,000 spans, 50,000 traces at full size
    let wire: usize = reqs.iter().map(|r| r.encoded_len()).sum();
    let spans: usize = reqs.iter().map(|r| r.len()).sum();
    let now = Instant::now();
    for r in reqs {
        let _ = st.insert(&r, &[], now);
    }
    let held = (LIVE.load(Ordering::Relaxed) - before).max(0) as f64;
    println!(
        "tail_sampling memory: {} traces, {spans} spans buffered: {:.0} bytes/span held vs {:.0} bytes/span on the wire = {:.2}x",
        st.traces(),
        held / spans as f64,
        wire as f64 / spans as f64,
        held / wire as f64,
    );
}

fn throughput(c: &mut Criterion) {
    memory_per_span();
    let st = store();
    let now = Instant::now();
    // Fill to 50,000 traces in flight; afterwards each insert pushes the oldest out early
    // (decided and released), a steady state at the bound.
    let fill = if full_size() { 6250 } else { 10 };
    for r in requests(0, fill) {
        let _ = st.insert(&r, &[], now);
    }
    if full_size() {
        assert_eq!(st.traces(), 50_000);
    }
    let mut next = 100_000u64;
    let mut g = c.benchmark_group("tail_sampling");
    g.throughput(Throughput::Elements(1000));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("insert_1000_spans_at_50k_traces_in_flight", |b| {
        b.iter_batched(
            || {
                next += 10;
                requests(next, 10)
            },
            |reqs| {
                for r in reqs {
                    std::hint::black_box(st.insert(&r, &[], now));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
