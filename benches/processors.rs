//! Inline processors on the realistic bench spans: redaction with every built-in detector over a
//! corpus where ~5% of attribute values hold PII, the allowlist, and rate limiting (with a rate
//! high enough that nothing is dropped: the cost of admitting), head sampling at 25%, and session
//! stamping. Each on the batch as received bytes (what the pipeline hands them: views and
//! one-pass byte edits) and as decoded structs, both followed by the encoding an exporter sends.
//! `cargo bench --bench processors` (batch: `hot_path`; tail sampling: `tail_sampling`).

mod common;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use spangate::component::{InlineProcessor, Processor, ProcessorConfig, ProcessorContext};
use spangate::config::ComponentId;
use spangate::data::SpanBatch;

const PII: [&str; 6] = [
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "call +44 20 7946 0958",
    "from 203.0.113.195",
    "ssn 078-05-1120",
    "Bearer 8f14e45fceea167a5a36dedd4bea2543",
];

/// 1000 spans; every 20th string attribute value replaced by a PII sample (~5%): as structs,
/// and as the encoded request a receiver keeps.
fn corpus() -> (SpanBatch, SpanBatch) {
    let mut rs = Vec::new();
    let mut n = 0usize;
    for i in 0..10 {
        let mut req = common::request(i, 100);
        for span in req
            .resource_spans
            .iter_mut()
            .flat_map(|r| &mut r.scope_spans)
            .flat_map(|s| &mut s.spans)
        {
            for kv in &mut span.attributes {
                if let Some(Value::StringValue(s)) =
                    kv.value.as_mut().and_then(|v| v.value.as_mut())
                {
                    n += 1;
                    if n.is_multiple_of(20) {
                        *s = PII[n / 20 % PII.len()].to_string();
                    }
                }
            }
        }
        rs.extend(req.resource_spans);
    }
    let bytes = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: rs.clone(),
    }
    .encode_to_vec();
    let spans = spangate::data::wire::walk(&bytes).unwrap().spans;
    (
        SpanBatch::new(rs),
        SpanBatch::from_wire(bytes.into(), spans),
    )
}

fn inline(yaml: &str, kind: &str) -> Box<dyn InlineProcessor> {
    let (v, _) = spangate::config::yaml::parse(yaml, 0).unwrap();
    use spangate::components::Builtin;
    let registry = spangate::component::registry::Registry::builtin();
    let cfg: Arc<dyn ProcessorConfig> = (registry.processor(kind).unwrap().parse)(&v).unwrap();
    let ctx = ProcessorContext {
        id: ComponentId::parse(kind).unwrap(),
        pipeline: ComponentId::parse("traces").unwrap(),
        telemetry: Arc::new(spangate::telemetry::Telemetry::default()),
        state: Default::default(),
        session: Default::default(),
    };
    match cfg.build(&ctx).unwrap() {
        Processor::Inline(p) => p,
        Processor::Staged(_) => panic!("{kind} is inline"),
    }
}

fn bench(c: &mut Criterion) {
    let (structs, bytes) = corpus();
    let mut g = c.benchmark_group("processors_1000_spans");
    g.throughput(Throughput::Elements(structs.len() as u64));
    let cases = [
        ("redaction_all_builtins", "redaction", "builtin: [email, credit_card, us_ssn, ipv4, ipv6, jwt, bearer_token, phone]\nurl_query_params: [session, token]\n"),
        ("allowlist", "allowlist", "resource: [service.*, deployment.*]\nspan: [http.*, url.*, session.id]\n"),
        ("rate_limiting_whole_traces", "rate_limiting", "spans_per_second: 1000000000\nkey: service.name\n"),
        ("probabilistic_sampler_25pct", "probabilistic_sampler", "sampling_percentage: 25\n"),
        ("session_stamp", "session", "key_attributes: [session.id]\n"),
    ];
    for (name, kind, yaml) in cases {
        let p = inline(yaml, kind);
        for (form, data) in [("bytes", &bytes), ("structs", &structs)] {
            g.bench_function(format!("{name}/{form}"), |b| {
                b.iter_batched(
                    || data.duplicate(),
                    |mut batch| {
                        p.process(&mut batch);
                        let _ = batch.encoded();
                        batch
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
