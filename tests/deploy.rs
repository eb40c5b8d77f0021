//! The chart's alert rules and Grafana dashboard query only metrics a running spangate really
//! exports (names taken from its /metrics, not from a list kept by hand).

mod common;

use std::collections::BTreeSet;

use common::{free_port, Spangate};

fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("spangate_") {
        let start = i + at;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        // Only whole identifiers (not e.g. a uid like "spangate-overview").
        if start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn alerts_and_dashboard_use_only_exported_metric_names() {
    let storage = tempfile::tempdir().unwrap();
    let http = free_port();
    // Every kind of component whose metrics the dashboard or alerts read.
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  tail_sampling:
    decision_wait: 100ms
    policies: [{{ name: all, type: always_sample }}]
  probabilistic_sampler: {{ sampling_percentage: 50 }}
exporters:
  file: {{ path: ./out.jsonl, sending_queue: {{ storage: {} }} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [probabilistic_sampler, tail_sampling], exporters: [file] }}
",
        storage.path().display()
    ));
    let spans = (0..20u8)
        .map(|i| opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![i + 1; 16],
            span_id: vec![i + 1; 8],
            ..Default::default()
        })
        .collect();
    common::post_otlp(http, &common::encode_spans(spans));
    // A span with an all-zero trace id (refused as invalid), so refused-span series exist.
    let bad = opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![0; 16],
        span_id: vec![1; 8],
        ..Default::default()
    };
    common::post_otlp(http, &common::encode_spans(vec![bad]));
    // Some series appear only once the sampler decided and the export finished: both are
    // done when nothing is in flight.
    sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
    let exported: BTreeSet<String> = sg
        .scrape()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(String::from))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/spangate/files");
    for file in ["alerts.yaml", "dashboard.json", "alerts_test.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let names = referenced(&text);
        assert!(!names.is_empty(), "{file} references no metric");
        let unknown: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics spangate does not export: {unknown:?}\nexported: {exported:?}"
        );
    }
}
