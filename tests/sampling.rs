//! Sampling processors through the real binary: decisions, counts, and the books.

mod common;

use common::client::http_post;
use common::{encode_spans, free_port, metric_sum, Spangate};
use opentelemetry_proto::tonic::trace::v1::Span;

fn trace_id(i: u64) -> Vec<u8> {
    let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = a.rotate_left(17) ^ 0xD6E8_FEB8_6659_FD93;
    [a.to_be_bytes(), b.to_be_bytes()].concat()
}

/// contrib hash_seed mode, written out independently of spangate's implementation.
fn contrib_keeps(seed: u32, pct: f32, tid: &[u8]) -> bool {
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.to_le_bytes().iter().chain(tid) {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x3FFF) < (pct * 163.84) as u32
}

#[test]
fn probabilistic_sampler_keeps_whole_traces_by_hash() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  probabilistic_sampler: {{ sampling_percentage: 30, hash_seed: 1234 }}
exporters:
  file: {{ path: ./kept.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [probabilistic_sampler], exporters: [file] }}
"
    ));
    let mut expected_kept = 0;
    for chunk in 0..10u64 {
        let mut spans = Vec::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            for s in 0..2u8 {
                spans.push(Span {
                    trace_id: trace_id(i),
                    span_id: vec![s + 1; 8],
                    name: format!("t{i}"),
                    ..Default::default()
                });
            }
            if contrib_keeps(1234, 30.0, &trace_id(i)) {
                expected_kept += 2;
            }
        }
        let (s, _, _) = http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &encode_spans(spans),
        );
        assert_eq!(s, 200);
    }
    assert!((500..700).contains(&expected_kept), "{expected_kept}");
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        expected_kept as f64,
        10,
    );
    let text = sg.scrape();
    assert_eq!(
        metric_sum(
            &text,
            "spangate_processor_dropped_spans_total",
            &[
                ("processor", "probabilistic_sampler"),
                ("reason", "sampled_out")
            ]
        ),
        (2000 - expected_kept) as f64
    );
    assert_eq!(
        metric_sum(&text, "spangate_receiver_accepted_spans_total", &[]),
        2000.0
    );
    assert_eq!(
        metric_sum(&text, "spangate_pipeline_inflight_spans", &[]),
        0.0
    );
}
