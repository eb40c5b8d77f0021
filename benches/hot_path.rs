//! The receive -> batch -> export hot path, next to a plain prost decode + encode of the same
//! bytes (the floor any OTLP collector pays). Compare the two as a ratio from one run:
//! `cargo bench --bench hot_path`.

mod common;
use common as data;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spangate::data::{json, validate, SpanBatch};

const SPANS_PER_REQUEST: usize = 100;
const REQUESTS: usize = 10;

fn inputs() -> Vec<Vec<u8>> {
    (0..REQUESTS as u64)
        .map(|i| data::request(i, SPANS_PER_REQUEST).encode_to_vec())
        .collect()
}

fn hot_path(c: &mut Criterion) {
    let wire = inputs();
    let bytes: usize = wire.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("otlp_1000_spans");
    g.throughput(Throughput::Elements((SPANS_PER_REQUEST * REQUESTS) as u64));

    g.bench_function("prost_decode_encode", |b| {
        b.iter(|| {
            let mut out = 0;
            for w in &wire {
                let req = ExportTraceServiceRequest::decode(&w[..]).unwrap();
                out += req.encode_to_vec().len();
            }
            black_box(out)
        })
    });

    // The bytes path's check: the validating walk over the same requests, no decode.
    g.bench_function("spangate_wire_walk", |b| {
        b.iter(|| {
            let mut spans = 0;
            for w in &wire {
                spans += spangate::data::wire::walk(&w[..]).unwrap().spans;
            }
            black_box(spans)
        })
    });

    // What an otlp -> batch -> otlp pipeline now does with a protobuf request: walk, keep
    // the bytes, concatenate them into the batch, send the concatenation.
    let shared: Vec<bytes::Bytes> = wire.iter().map(|w| bytes::Bytes::from(w.clone())).collect();
    g.bench_function("spangate_walk_batch_encode", |b| {
        b.iter(|| {
            let mut pending: Option<SpanBatch> = None;
            for w in &shared {
                let walked = spangate::data::wire::walk(w).unwrap();
                let batch = SpanBatch::from_wire(w.clone(), walked.spans);
                match pending.as_mut() {
                    Some(p) => p.absorb(batch),
                    None => pending = Some(batch),
                }
            }
            black_box(pending.unwrap().encoded().len())
        })
    });

    g.bench_function("prost_decode", |b| {
        b.iter(|| {
            let mut spans = 0;
            for w in &wire {
                spans += ExportTraceServiceRequest::decode(&w[..])
                    .unwrap()
                    .resource_spans
                    .len();
            }
            black_box(spans)
        })
    });

    g.bench_function("spangate_decode_validate_batch_encode", |b| {
        b.iter(|| {
            let mut pending: Option<SpanBatch> = None;
            for w in &wire {
                let mut req = ExportTraceServiceRequest::decode(&w[..]).unwrap();
                let rejected = validate::remove_invalid(&mut req.resource_spans);
                debug_assert_eq!(rejected.spans, 0);
                let batch = SpanBatch::new(req.resource_spans);
                match pending.as_mut() {
                    Some(p) => p.absorb(batch),
                    None => pending = Some(batch),
                }
            }
            let batch = pending.unwrap();
            black_box(batch.encoded().len())
        })
    });

    g.bench_function("spangate_json_decode", |b| {
        let text: Vec<Vec<u8>> = wire
            .iter()
            .map(|w| {
                json::encode_request(
                    &ExportTraceServiceRequest::decode(&w[..])
                        .unwrap()
                        .resource_spans,
                )
                .into_bytes()
            })
            .collect();
        b.iter_batched(
            || (),
            |_| {
                for t in &text {
                    black_box(json::decode_request(t).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    // The gzip every OTLP export does by default (level 1, as the exporters use it).
    g.bench_function("gzip_compress", |b| {
        let proto: Vec<u8> = wire.concat();
        b.iter(|| black_box(spangate::data::gzip::compress(&proto).len()))
    });
    g.finish();
    eprintln!("input: {REQUESTS} requests of {SPANS_PER_REQUEST} spans, {bytes} bytes of protobuf");
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
