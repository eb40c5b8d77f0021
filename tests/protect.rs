//! Processors that protect backends and data, through the real binary.

mod common;

use common::client::{grpc_call, grpc_frame, http_post};
use common::{encode_spans, free_port, metric_sum, Spangate};
use opentelemetry_proto::tonic::trace::v1::Span;

fn spans(seq: u64, n: usize) -> Vec<u8> {
    encode_spans(
        (0..n)
            .map(|i| Span {
                trace_id: [seq.to_be_bytes(), (i as u64 + 1).to_be_bytes()].concat(),
                span_id: vec![1; 8],
                name: "op".into(),
                ..Default::default()
            })
            .collect(),
    )
}

#[test]
fn rate_limiting_refuse_makes_a_real_client_back_off_and_retry() {
    let (a_http, a_grpc) = (free_port(), free_port());
    let a = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{a_http} }}
      grpc: {{ endpoint: 127.0.0.1:{a_grpc} }}
processors:
  rate_limiting: {{ spans_per_second: 100, burst: 100, on_limit: refuse }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [rate_limiting], exporters: [file] }}
"
    ));
    // Raw: the burst passes, the next request gets 429 with Retry-After, gRPC gets
    // RESOURCE_EXHAUSTED with RetryInfo. Each refused request is a whole burst, so it would
    // only pass a full second after the last (refused requests take no tokens).
    assert_eq!(
        http_post(
            a_http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &spans(1, 100)
        )
        .0,
        200
    );
    let (s, headers, _) = http_post(
        a_http,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &spans(2, 100),
    );
    assert_eq!(s, 429);
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
        "{headers:?}"
    );
    let (code, _, _, details) = grpc_call(
        a_grpc,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        &[],
        grpc_frame(false, &spans(3, 100)),
    );
    assert_eq!((code, details), (8, true));

    // A real client: spangate B's otlphttp exporter retries on 429, honouring Retry-After.
    let b_http = free_port();
    let b = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{b_http} }} }}
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{a_http}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 1s }}
    sending_queue: {{ num_consumers: 2 }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp] }}
"
    ));
    for seq in 10..16 {
        assert_eq!(
            http_post(
                b_http,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &spans(seq, 50)
            )
            .0,
            200
        );
    }
    b.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "otlphttp")],
        300.0,
    );
    assert_eq!(
        b.metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", "otlphttp")]
        ),
        0.0
    );
    let text = a.scrape();
    assert_eq!(
        metric_sum(&text, "spangate_receiver_accepted_spans_total", &[]),
        400.0
    );
    assert!(
        metric_sum(
            &text,
            "spangate_receiver_refused_spans_total",
            &[("reason", "refused_by_processor")]
        ) >= 200.0,
        "{text}"
    );
    a.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        400.0,
    );
}

#[test]
fn rate_limiting_drop_counts_exactly_what_it_drops() {
    let http = free_port();
    let started = std::time::Instant::now();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  rate_limiting: {{ spans_per_second: 1, burst: 250, key: service.name }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [rate_limiting], exporters: [file] }}
"
    ));
    for seq in 0..5 {
        assert_eq!(
            http_post(
                http,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &spans(seq, 100)
            )
            .0,
            200
        );
    }
    // 500 one-span traces against a burst of 250, refilled at 1/s since the bucket was made.
    let refill = started.elapsed().as_secs_f64().ceil();
    let text = sg.scrape();
    let dropped = metric_sum(
        &text,
        "spangate_processor_dropped_spans_total",
        &[("reason", "rate_limited")],
    );
    assert!(
        (250.0 - refill..=250.0).contains(&dropped),
        "{dropped} dropped, {refill} tokens refilled"
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        500.0 - dropped,
    );
    sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
}

#[test]
fn span_name_normalizer_plugin_runs_like_a_builtin() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  span_name_normalizer:
    rules: [ {{ pattern: '^SELECT .* FROM (\\w+).*$', replacement: 'SELECT $1' }} ]
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [span_name_normalizer], exporters: [file] }}
"
    ));
    let names = [
        "GET /users/8812/orders/9",
        "GET /carts/5f0c2a1e-9a43-4c1b-8f62-0d3b7e2c9a10?x=1",
        "SELECT id FROM orders WHERE id = 7",
    ];
    let body = encode_spans(
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Span {
                trace_id: vec![i as u8 + 1; 16],
                span_id: vec![1; 8],
                name: n.to_string(),
                ..Default::default()
            })
            .collect(),
    );
    assert_eq!(
        http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &body
        )
        .0,
        200
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        3.0,
    );
    let out = std::fs::read_to_string(sg.path("out.jsonl")).unwrap();
    for want in [
        "GET /users/{id}/orders/{id}",
        "GET /carts/{id}",
        "SELECT orders",
    ] {
        assert!(
            out.contains(&format!("\"name\":\"{want}\"")),
            "{want} in {out}"
        );
    }
    // Its config is checked by `validate` like any component's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:1}}}}\nprocessors:\n  span_name_normalizer:\n    rules: [ { pattern: '(', replacement: x } ]\nexporters: {debug: }\nservice: {pipelines: {traces: {receivers: [otlp], processors: [span_name_normalizer], exporters: [debug]}}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spangate"))
        .args(["validate", "--config", "bad.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: processors.span_name_normalizer.rules[0].pattern: invalid regex"),
        "{err}"
    );
}

/// A plugin implements the built-ins' traits, so its config errors carry the field path and
/// the line like theirs. Before, through the plugin interface, a serde error had no path
/// (`processors.span_name_normalizer: unknown field ...`) and a type error no line.
#[test]
fn plugin_config_errors_carry_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:1}}}}\nprocessors:\n  span_name_normalizer:\n    placeholder: \"{id}\"\n    rules:\n      - { pattern: x, replacement: y, extra: 1 }\nexporters: {debug: }\nservice: {pipelines: {traces: {receivers: [otlp], processors: [span_name_normalizer], exporters: [debug]}}}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spangate"))
        .args(["validate", "--config", "bad.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "error: processors.span_name_normalizer.rules[0].extra: unknown field `extra`, expected `pattern` or `replacement` (line 6)"
    );
}

#[test]
fn redaction_and_allowlist_scrub_what_leaves() {
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    let http = free_port();
    let sg = Spangate::start_with(
        &format!(
            "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  allowlist: {{ span: [http.*, user.*, card] }}
  redaction:
    builtin: [email, credit_card]
    url_query_params: [token]
    action: hash
    hash_key: ${{env:REDACTION_KEY}}
    summary: info
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [allowlist, redaction], exporters: [file] }}
"
        ),
        &[("REDACTION_KEY", "k1")],
    );
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let body = encode_spans(vec![Span {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        name: "checkout".into(),
        attributes: vec![
            kv("user.email", "jane@example.com"),
            kv("card", "4111111111111111"),
            kv("http.url", "https://x.io/pay?token=abc&step=2"),
            kv("db.statement", "SELECT * FROM cards"),
        ],
        ..Default::default()
    }]);
    assert_eq!(
        http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &body
        )
        .0,
        200
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        1.0,
    );
    let out = std::fs::read_to_string(sg.path("out.jsonl")).unwrap();
    for secret in [
        "jane@example.com",
        "4111111111111111",
        "token=abc",
        "db.statement",
    ] {
        assert!(!out.contains(secret), "{secret} in {out}");
    }
    assert!(
        out.contains("step=2") && out.contains("redaction.masked.count"),
        "{out}"
    );
    let text = sg.scrape();
    assert_eq!(
        metric_sum(
            &text,
            "spangate_processor_redactions_total",
            &[("kind", "email")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "spangate_processor_redactions_total",
            &[("kind", "credit_card")]
        ),
        1.0
    );
    assert_eq!(
        metric_sum(
            &text,
            "spangate_processor_removed_attributes_total",
            &[("scope", "span")]
        ),
        1.0
    );
}
