//! Each exporter's encoding of one batch of the load tool's corpus (six services, mixed
//! attributes, events, errors, PII): what an export costs before the network. The OTLP (and
//! Tempo) body with gzip, the JSON of `file`/`debug` and Kafka's `otlp_json`, Kafka's per-key
//! split and messages, Jaeger's model translation + protobuf, Postgres's COPY row values.
//! `cargo bench --bench exporters`.

#[path = "../examples/loadgen/corpus.rs"]
mod corpus;

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spangate::data::{json, SpanBatch};
use spangate::exporters::jaeger::{model::PostSpansRequest, translate};
use spangate::exporters::kafka::{partition_for, split_by_key};
use spangate::exporters::postgres::encode::{
    kind_name, status_name, Attrs, Events, Hex, Jsonb, Links, Ts,
};
use tokio_postgres::types::{ToSql, Type};

fn batch() -> SpanBatch {
    let rs = corpus::decoded(500, 100, 7)
        .into_iter()
        .flat_map(|r| r.resource_spans)
        .collect();
    SpanBatch::new(rs)
}

fn bench(c: &mut Criterion) {
    let data = batch();
    let mut g = c.benchmark_group(format!("exporters_{}_spans", data.len()));
    g.throughput(Throughput::Elements(data.len() as u64));

    g.bench_function("otlp_proto_encode", |b| {
        b.iter_batched(
            || data.duplicate(),
            |batch| black_box(batch.encoded().len()),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("otlp_proto_gzip", |b| {
        let proto = data.encoded();
        b.iter(|| black_box(spangate::data::gzip::compress(&proto).len()))
    });
    g.bench_function("otlp_json_encode", |b| {
        b.iter(|| black_box(json::encode_request(data.resource_spans()).len()))
    });
    g.bench_function("kafka_split_by_trace_id_and_encode", |b| {
        b.iter(|| {
            let groups = split_by_key(data.resource_spans(), |_, span| span.trace_id.clone());
            let mut bytes = 0;
            for (key, rs) in groups {
                black_box(partition_for(&key, 12));
                bytes += ExportTraceServiceRequest { resource_spans: rs }
                    .encode_to_vec()
                    .len();
            }
            black_box(bytes)
        })
    });
    g.bench_function("jaeger_translate_encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for rs in data.resource_spans() {
                let request = PostSpansRequest {
                    batch: Some(translate::batch(rs)),
                };
                bytes += request.encode_to_vec().len();
            }
            black_box(bytes)
        })
    });
    g.bench_function("postgres_copy_values", |b| {
        let mut out = BytesMut::with_capacity(4 << 20);
        b.iter(|| {
            out.clear();
            for rs in data.resource_spans() {
                let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        let parent =
                            (!s.parent_span_id.is_empty()).then_some(Hex(&s.parent_span_id));
                        let values: [(&(dyn ToSql + Sync), Type); 12] = [
                            (&Hex(&s.trace_id), Type::TEXT),
                            (&Hex(&s.span_id), Type::TEXT),
                            (&parent, Type::TEXT),
                            (&s.name.as_str(), Type::TEXT),
                            (&kind_name(s.kind), Type::TEXT),
                            (&Ts(s.start_time_unix_nano), Type::TIMESTAMPTZ),
                            (&Ts(s.end_time_unix_nano), Type::TIMESTAMPTZ),
                            (
                                &status_name(s.status.as_ref().map_or(0, |st| st.code)),
                                Type::TEXT,
                            ),
                            (&Jsonb(Attrs(&s.attributes)), Type::JSONB),
                            (&Jsonb(Attrs(resource)), Type::JSONB),
                            (&Jsonb(Events(&s.events)), Type::JSONB),
                            (&Jsonb(Links(&s.links)), Type::JSONB),
                        ];
                        for (v, ty) in values {
                            v.to_sql_checked(&ty, &mut out).expect("encodes");
                        }
                    }
                }
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
