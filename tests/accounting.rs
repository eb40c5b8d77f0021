//! The books balance: across random pipelines (fan-out, batch and sampling processors), batch
//! sizes and exporter failure schedules, every span a pipeline accepted ends up sent, failed or
//! dropped with a reason, exactly once, and nothing is left in flight. Built through the real
//! config loader and graph, with a receiver that hands the test its fan-out and an exporter that
//! fails on a schedule (fault injection).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use proptest::prelude::*;
use spangate::component::listeners::ListenerPool;
use spangate::component::registry::{Problems, Registry};
use spangate::component::StateRegistry;
use spangate::component::{
    BoxFuture, BuildError, Consumer, ExportError, Exporter, ExporterConfig, ExporterContext,
    ReceiverConfig, ReceiverContext, RunningReceiver,
};
use spangate::components::Builtin;
use spangate::data::SpanBatch;
use spangate::pipeline::config::{load_sources, Source};
use spangate::telemetry::Telemetry;

/// Fan-outs handed over by `inject` receivers, by their `key`.
fn fanouts() -> &'static Mutex<HashMap<String, Arc<dyn Consumer>>> {
    static F: OnceLock<Mutex<HashMap<String, Arc<dyn Consumer>>>> = OnceLock::new();
    F.get_or_init(Default::default)
}

#[derive(Debug)]
struct Inject(String);

impl ReceiverConfig for Inject {
    fn endpoints(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    fn start(&self, ctx: ReceiverContext) -> BoxFuture<'_, Result<RunningReceiver, BuildError>> {
        fanouts().lock().unwrap().insert(self.0.clone(), ctx.fanout);
        Box::pin(async {
            Ok(RunningReceiver {
                stop: tokio::sync::watch::channel(false).0,
                tasks: Vec::new(),
            })
        })
    }
}

fn parse_inject(v: &serde_json::Value) -> Result<Arc<dyn ReceiverConfig>, Problems> {
    Ok(Arc::new(Inject(v["key"].as_str().unwrap_or("").into())))
}

/// Answers export attempts from `schedule`, in a loop.
#[derive(Debug, Clone)]
struct FaultConfig {
    schedule: Vec<String>,
}

struct Fault {
    schedule: Vec<String>,
    calls: AtomicUsize,
}

impl Exporter for Fault {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.schedule[i % self.schedule.len()].as_str();
        let n = batch.len() as u64;
        Box::pin(async move {
            match step {
                "ok" => Ok(()),
                "retry" => Err(ExportError::Retryable {
                    reason: "down".into(),
                    retry_after: None,
                }),
                "half" => Err(ExportError::Permanent {
                    reason: "half rejected".into(),
                    rejected: Some(n / 2),
                }),
                _ => Err(ExportError::Permanent {
                    reason: "bad".into(),
                    rejected: None,
                }),
            }
        })
    }
}

impl ExporterConfig for FaultConfig {
    fn build(&self, _: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        Ok(Arc::new(Fault {
            schedule: self.schedule.clone(),
            calls: AtomicUsize::new(0),
        }))
    }
}

fn parse_fault(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    let schedule = v["schedule"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Arc::new(FaultConfig { schedule }))
}

#[derive(Debug, Clone)]
struct PipelineSpec {
    /// batch size (None: no batch processor)
    batch: Option<u32>,
    /// sampling percentage (None: no sampler)
    sample: Option<u32>,
    /// Whether the sampler comes after the batch processor.
    sample_last: bool,
    /// One failure schedule per exporter.
    exporters: Vec<Vec<&'static str>>,
    queue_size: usize,
}

fn pipeline_spec() -> impl Strategy<Value = PipelineSpec> {
    let step = prop::sample::select(vec!["ok", "ok", "ok", "retry", "fail", "half"]);
    (
        prop::option::of(1u32..40),
        prop::option::of(0u32..=100),
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(step, 1..5), 1..3),
        prop::sample::select(vec![2usize, 5, 1000]),
    )
        .prop_map(
            |(batch, sample, sample_last, exporters, queue_size)| PipelineSpec {
                batch,
                sample,
                sample_last,
                exporters,
                queue_size,
            },
        )
}

fn yaml(key: &str, pipelines: &[PipelineSpec]) -> String {
    let mut processors = String::new();
    let mut exporters = String::new();
    let mut service = String::new();
    for (i, p) in pipelines.iter().enumerate() {
        let mut chain = Vec::new();
        if let Some(n) = p.batch {
            processors.push_str(&format!(
                "  batch/p{i}: {{ send_batch_size: {n}, send_batch_max_size: {}, timeout: 5ms }}\n",
                n * 2
            ));
            chain.push(format!("batch/p{i}"));
        }
        if let Some(pct) = p.sample {
            processors.push_str(&format!(
                "  probabilistic_sampler/p{i}: {{ sampling_percentage: {pct} }}\n"
            ));
            let s = format!("probabilistic_sampler/p{i}");
            if p.sample_last {
                chain.push(s);
            } else {
                chain.insert(0, s);
            }
        }
        let mut ids = Vec::new();
        for (j, schedule) in p.exporters.iter().enumerate() {
            let id = format!("fault/p{i}e{j}");
            exporters.push_str(&format!(
                "  {id}: {{ schedule: [{}], timeout: 1s, retry_on_failure: {{ initial_interval: 1ms, max_interval: 2ms, max_elapsed_time: 15ms }}, sending_queue: {{ queue_size: {}, num_consumers: 2 }} }}\n",
                schedule.join(", "),
                p.queue_size
            ));
            ids.push(id);
        }
        service.push_str(&format!(
            "    traces/p{i}: {{ receivers: [inject], processors: [{}], exporters: [{}] }}\n",
            chain.join(", "),
            ids.join(", ")
        ));
    }
    if processors.is_empty() {
        processors = "  {}\n".into();
    }
    format!(
        "receivers:\n  inject: {{ key: {key} }}\nprocessors:\n{processors}exporters:\n{exporters}service:\n  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}\n  pipelines:\n{service}"
    )
}

/// Sum of a counter over the series whose `label` value ends with `suffix`.
fn sum_where(text: &str, name: &str, label: &str, suffix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            l.split_once(&format!("{label}=\""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .is_some_and(|(v, _)| v.ends_with(suffix))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn batch(first: u32, n: u32) -> SpanBatch {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    SpanBatch::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (first..first + n)
                .map(|i| Span {
                    trace_id: [i.to_be_bytes(); 4].concat(),
                    span_id: [i.to_be_bytes(); 2].concat(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }])
}

static CASE: AtomicUsize = AtomicUsize::new(0);

fn run_case(pipelines: Vec<PipelineSpec>, requests: Vec<u32>) -> Result<(), TestCaseError> {
    let key = format!("case{}", CASE.fetch_add(1, Ordering::SeqCst));
    let mut registry = Registry::builtin();
    registry.add_receiver("inject", parse_inject);
    registry.add_exporter("fault", parse_fault);
    let text = yaml(&key, &pipelines);
    let config = load_sources(
        &[Source {
            name: "case.yaml".into(),
            text: text.clone(),
        }],
        &registry,
        |_| None,
    )
    .map_err(|d| TestCaseError::fail(format!("{d}\n{text}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let telemetry = Arc::new(Telemetry::new());
    let accepted = rt.block_on(async {
        let running = spangate::pipeline::start(
            &config,
            &telemetry,
            &Arc::new(ListenerPool::default()),
            &Arc::new(StateRegistry::default()),
        )
        .await
        .expect("graph starts");
        let fanout = fanouts().lock().unwrap().remove(&key).expect("fan-out");
        let mut accepted = 0u64;
        let mut next = 0u32;
        for n in requests {
            if fanout.consume(batch(next, n)).await.is_ok() {
                accepted += n as u64;
            }
            next += n;
        }
        drop(fanout);
        running.shutdown(Duration::from_secs(10)).await;
        accepted
    });
    let text = telemetry.metrics.render();
    for (i, p) in pipelines.iter().enumerate() {
        let pipeline = format!("traces/p{i}");
        let dropped = sum_where(
            &text,
            "spangate_processor_dropped_spans_total",
            "processor",
            &format!("/p{i}"),
        );
        prop_assert!(
            dropped <= accepted,
            "{pipeline}: dropped {dropped} of {accepted}"
        );
        for j in 0..p.exporters.len() {
            let e = format!("fault/p{i}e{j}");
            let sent = telemetry.metrics.exporter_sent(&e).get();
            let failed = telemetry.metrics.exporter_send_failed(&e).get();
            prop_assert_eq!(
                sent + failed,
                accepted - dropped,
                "{}: sent {} + failed {} != accepted {} - dropped {}\n{}",
                e,
                sent,
                failed,
                accepted,
                dropped,
                yaml(&key, &pipelines)
            );
        }
        prop_assert_eq!(telemetry.metrics.pipeline_inflight(&pipeline).get(), 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_span_is_sent_failed_or_dropped_exactly_once(
        pipelines in prop::collection::vec(pipeline_spec(), 1..4),
        requests in prop::collection::vec(1u32..30, 1..25),
    ) {
        run_case(pipelines, requests)?;
    }
}
