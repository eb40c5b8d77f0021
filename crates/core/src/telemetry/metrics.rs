//! Every `spangate_*` metric, in this one file, and a small Prometheus text-format registry.
//!
//! Components resolve their handles (an `Arc` of atomics) once when built, so the hot path is
//! one relaxed atomic add: no lookups, no locks. Series outlive reloads, so counters never
//! reset while the process runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds for export latency, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug)]
pub struct HistogramData {
    buckets: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramData>);

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Histogram(Arc::new(HistogramData {
            buckets,
            counts: buckets.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.0.buckets.iter().position(|b| secs <= *b) {
            self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.0
            .sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    series: BTreeMap<Labels, Series>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

macro_rules! series_fn {
    ($fn_name:ident, $variant:ident, $ty:ty, $make:expr) => {
        fn $fn_name(
            &self,
            name: &'static str,
            help: &'static str,
            labels: &[(&'static str, &str)],
        ) -> $ty {
            let labels: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
            let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
            let family = families.entry(name).or_insert_with(|| Family {
                help,
                kind: stringify!($fn_name),
                series: BTreeMap::new(),
            });
            match family
                .series
                .entry(labels)
                .or_insert_with(|| Series::$variant($make))
            {
                Series::$variant(s) => s.clone(),
                // A name is registered with one kind only, in this file.
                _ => unreachable!("metric {name} registered with two kinds"),
            }
        }
    };
}

impl Metrics {
    series_fn!(counter, Counter, Counter, Counter::default());
    series_fn!(gauge, Gauge, Gauge, Gauge::default());
    series_fn!(
        histogram,
        Histogram,
        Histogram,
        Histogram::new(&LATENCY_BUCKETS)
    );

    pub fn receiver_accepted(&self, receiver: &str, transport: &str) -> Counter {
        self.counter(
            "spangate_receiver_accepted_spans_total",
            "Spans accepted by a receiver into its pipelines.",
            &[("receiver", receiver), ("transport", transport)],
        )
    }

    pub fn receiver_refused(&self, receiver: &str, transport: &str, reason: &str) -> Counter {
        self.counter(
            "spangate_receiver_refused_spans_total",
            "Spans a receiver refused, by reason.",
            &[
                ("receiver", receiver),
                ("transport", transport),
                ("reason", reason),
            ],
        )
    }

    pub fn receiver_refused_requests(
        &self,
        receiver: &str,
        transport: &str,
        reason: &str,
    ) -> Counter {
        self.counter(
            "spangate_receiver_refused_requests_total",
            "Requests a receiver refused, by reason (also those whose spans could not be counted).",
            &[
                ("receiver", receiver),
                ("transport", transport),
                ("reason", reason),
            ],
        )
    }

    pub fn processor_dropped(&self, processor: &str, reason: &str) -> Counter {
        self.counter(
            "spangate_processor_dropped_spans_total",
            "Spans a processor dropped, by reason.",
            &[("processor", processor), ("reason", reason)],
        )
    }

    pub fn processor_removed_attributes(&self, processor: &str, scope: &str) -> Counter {
        self.counter(
            "spangate_processor_removed_attributes_total",
            "Attributes a processor removed (allowlist), by where they were (resource, scope, span, event, link).",
            &[("processor", processor), ("scope", scope)],
        )
    }

    pub fn processor_redactions(&self, processor: &str, kind: &str) -> Counter {
        self.counter(
            "spangate_processor_redactions_total",
            "Values a redaction processor masked or removed, by what found them (a built-in, blocked_value, blocked_key, url_param, removed_key).",
            &[("processor", processor), ("kind", kind)],
        )
    }

    pub fn exporter_sent(&self, exporter: &str) -> Counter {
        self.counter(
            "spangate_exporter_sent_spans_total",
            "Spans an exporter delivered to its backend.",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_send_failed(&self, exporter: &str) -> Counter {
        self.counter(
            "spangate_exporter_send_failed_spans_total",
            "Spans an exporter gave up on (permanent error, retries exhausted, shutdown deadline).",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_queue_size(&self, exporter: &str) -> Gauge {
        self.gauge(
            "spangate_exporter_queue_size",
            "What an exporter's sending queue holds, in units of its sizer (batches by default).",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_queue_capacity(&self, exporter: &str) -> Gauge {
        self.gauge(
            "spangate_exporter_queue_capacity",
            "Capacity of an exporter's sending queue, in units of its sizer (batches by default).",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_queue_bytes(&self, exporter: &str) -> Gauge {
        self.gauge(
            "spangate_exporter_queue_bytes",
            "Bytes an exporter's queue holds: encoded batches in memory, or on disk with sending_queue.storage.",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_queue_batches(&self, exporter: &str) -> Gauge {
        self.gauge(
            "spangate_exporter_queue_batches",
            "Batches waiting in an exporter's in-memory sending queue, whatever its sizer.",
            &[("exporter", exporter)],
        )
    }

    pub fn exporter_latency(&self, exporter: &str) -> Histogram {
        self.histogram(
            "spangate_exporter_latency_seconds",
            "Duration of one export attempt.",
            &[("exporter", exporter)],
        )
    }

    pub fn receiver_limited_attributes(&self, receiver: &str, action: &str) -> Counter {
        self.counter(
            "spangate_receiver_limited_attributes_total",
            "Attributes a receiver dropped (max_attributes_per_span) or values it truncated (max_attribute_value_length).",
            &[("receiver", receiver), ("action", action)],
        )
    }

    pub fn kafka_client_errors(&self, component: &str, kind: &str) -> Counter {
        self.counter(
            "spangate_kafka_client_errors_total",
            "Errors and warnings librdkafka reported, by kind (error code or facility); repeats are logged at most every 10 s.",
            &[("component", component), ("kind", kind)],
        )
    }

    pub fn process_rss(&self) -> Gauge {
        self.gauge(
            "spangate_process_resident_memory_bytes",
            "Resident memory of the process (what service.memory_limit_mib is checked against).",
            &[],
        )
    }

    pub fn memory_limit(&self) -> Gauge {
        self.gauge(
            "spangate_memory_limit_bytes",
            "The memory limit in force: service.memory_limit_mib, or a share of the cgroup's limit; 0 when none.",
            &[],
        )
    }

    pub fn memory_cgroup_limit(&self) -> Gauge {
        self.gauge(
            "spangate_memory_cgroup_limit_bytes",
            "The process's cgroup memory limit as read at (re)load; 0 when unlimited or not read.",
            &[],
        )
    }

    pub fn pipeline_inflight(&self, pipeline: &str) -> Gauge {
        self.gauge(
            "spangate_pipeline_inflight_spans",
            "Spans accepted into a pipeline and not yet sent or dropped.",
            &[("pipeline", pipeline)],
        )
    }

    pub fn tail_sampling_policy_decisions(
        &self,
        processor: &str,
        policy: &str,
        decision: &str,
    ) -> Counter {
        self.counter(
            "spangate_tail_sampling_policy_decisions_total",
            "Traces evaluated by a tail sampling policy, by that policy's decision.",
            &[
                ("processor", processor),
                ("policy", policy),
                ("decision", decision),
            ],
        )
    }

    pub fn tail_sampling_traces(&self, processor: &str, decision: &str) -> Counter {
        self.counter(
            "spangate_tail_sampling_traces_total",
            "Traces a tail sampler decided, by final decision (kept or dropped).",
            &[("processor", processor), ("decision", decision)],
        )
    }

    pub fn tail_sampling_late_spans(&self, processor: &str, decision: &str) -> Counter {
        self.counter(
            "spangate_tail_sampling_late_spans_total",
            "Spans that arrived after their trace was decided, by the cached decision they followed.",
            &[("processor", processor), ("decision", decision)],
        )
    }

    pub fn tail_sampling_early_decisions(&self, processor: &str, reason: &str) -> Counter {
        self.counter(
            "spangate_tail_sampling_early_decisions_total",
            "Traces decided before their wait ended to bound memory (num_traces, max_buffered_bytes, maximum_trace_size_bytes).",
            &[("processor", processor), ("reason", reason)],
        )
    }

    pub fn tail_sampling_traces_buffered(&self, processor: &str) -> Gauge {
        self.gauge(
            "spangate_tail_sampling_traces_buffered",
            "Traces waiting for a tail sampling decision.",
            &[("processor", processor)],
        )
    }

    pub fn tail_sampling_bytes_buffered(&self, processor: &str) -> Gauge {
        self.gauge(
            "spangate_tail_sampling_bytes_buffered",
            "Bytes held by spans waiting for a tail sampling decision.",
            &[("processor", processor)],
        )
    }

    pub fn build_info(&self) -> Gauge {
        self.gauge(
            "spangate_build_info",
            "Always 1; the version label says which spangate runs.",
            &[("version", env!("CARGO_PKG_VERSION"))],
        )
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::with_capacity(4096);
        for (name, family) in families.iter() {
            let kind = match family.kind {
                "counter" => "counter",
                "gauge" => "gauge",
                _ => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, series) in &family.series {
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", fmt_labels(labels, None), c.get());
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{name}{} {}", fmt_labels(labels, None), g.get());
                    }
                    Series::Histogram(h) => render_histogram(&mut out, name, labels, h),
                }
            }
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &Labels, h: &Histogram) {
    let mut cumulative = 0;
    for (i, bound) in h.0.buckets.iter().enumerate() {
        cumulative += h.0.counts[i].load(Ordering::Relaxed);
        let le = format!("{bound}");
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            fmt_labels(labels, Some(&le))
        );
    }
    let count = h.0.count.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name}_bucket{} {count}",
        fmt_labels(labels, Some("+Inf"))
    );
    let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{} {sum}", fmt_labels(labels, None));
    let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(labels, None));
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(le.map(|l| ("le", l)))
    {
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_text_format() {
        let m = Metrics::default();
        m.receiver_accepted("otlp", "grpc").inc_by(5);
        m.receiver_accepted("otlp", "grpc").inc_by(2);
        m.exporter_queue_size("otlp/x").set(3);
        m.exporter_latency("debug")
            .observe(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains(
            "spangate_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 7\n"
        ));
        assert!(text.contains("# TYPE spangate_receiver_accepted_spans_total counter\n"));
        assert!(text.contains("spangate_exporter_queue_size{exporter=\"otlp/x\"} 3\n"));
        assert!(text.contains(
            "spangate_exporter_latency_seconds_bucket{exporter=\"debug\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "spangate_exporter_latency_seconds_bucket{exporter=\"debug\",le=\"0.0025\"} 0\n"
        ));
        assert!(text.contains("spangate_exporter_latency_seconds_count{exporter=\"debug\"} 1\n"));
    }
}
