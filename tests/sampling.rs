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
    // The exporter counts a batch sent just before it lets go of it.
    sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
}

fn tail_config(http: u16, wait: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  tail_sampling:
    decision_wait: {wait}
    policies:
      - {{ name: errors, type: status_code, status_code: {{ status_codes: [ERROR] }} }}
      - {{ name: slow, type: latency, latency: {{ threshold_ms: 500 }} }}
  batch: {{ timeout: 20ms }}
exporters:
  file: {{ path: ./kept.jsonl }}
service:
  shutdown_timeout: 10s
  pipelines:
    traces: {{ receivers: [otlp], processors: [tail_sampling, batch], exporters: [file] }}
"
    )
}

/// 300 traces of 3 spans (see `send_traces_offset`); returns how many traces the policies keep
/// (every 10th has an error, every 7th lasts 600 ms) and drop.
fn send_traces(http: u16) -> (usize, usize) {
    send_traces_offset(http, 0);
    let kept = (0..300u64).filter(|i| i % 10 == 0 || i % 7 == 0).count();
    (kept, 300 - kept)
}

fn kept_trace_spans(sg: &Spangate) -> std::collections::HashMap<Vec<u8>, usize> {
    let mut per_trace = std::collections::HashMap::new();
    for s in common::file_spans(&sg.path("kept.jsonl")) {
        *per_trace.entry(s.trace_id).or_insert(0) += 1;
    }
    per_trace
}

#[test]
fn tail_sampling_keeps_whole_matching_traces_and_counts_the_rest() {
    let http = free_port();
    // Each trace arrives in three requests: the wait must outlast them on a loaded machine.
    let sg = Spangate::start(&tail_config(http, "2s"));
    let (kept, dropped) = send_traces(http);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        (kept * 3) as f64,
    );
    sg.wait_metric(
        "spangate_processor_dropped_spans_total",
        &[("processor", "tail_sampling"), ("reason", "sampled_out")],
        (dropped * 3) as f64,
    );
    let per_trace = kept_trace_spans(&sg);
    assert_eq!(per_trace.len(), kept);
    assert!(
        per_trace.values().all(|n| *n == 3),
        "kept traces leave whole"
    );
    for i in 0..300u64 {
        assert_eq!(
            per_trace.contains_key(&trace_id(i)),
            i % 10 == 0 || i % 7 == 0,
            "trace {i}"
        );
    }
    let text = sg.scrape();
    assert_eq!(
        metric_sum(
            &text,
            "spangate_tail_sampling_traces_total",
            &[("decision", "kept")]
        ),
        kept as f64
    );
    assert_eq!(
        metric_sum(
            &text,
            "spangate_tail_sampling_policy_decisions_total",
            &[("policy", "errors"), ("decision", "sampled")]
        ),
        30.0
    );
    assert_eq!(
        metric_sum(&text, "spangate_tail_sampling_traces_buffered", &[]),
        0.0
    );
    sg.wait_metric(
        "spangate_pipeline_inflight_spans",
        &[("pipeline", "traces")],
        0.0,
    );
    // A late span of a kept trace is forwarded; of a dropped one, counted.
    let late = vec![
        Span {
            trace_id: trace_id(0),
            span_id: vec![9; 8],
            name: "late".into(),
            ..Default::default()
        },
        Span {
            trace_id: trace_id(1),
            span_id: vec![9; 8],
            name: "late".into(),
            ..Default::default()
        },
    ];
    assert_eq!(
        http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &encode_spans(late)
        )
        .0,
        200
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        (kept * 3 + 1) as f64,
    );
    sg.wait_metric(
        "spangate_tail_sampling_late_spans_total",
        &[("decision", "not_sampled")],
        1.0,
    );
}

#[test]
fn tail_sampling_decides_and_flushes_waiting_traces_on_sigterm() {
    let http = free_port();
    let mut sg = Spangate::start(&tail_config(http, "30s"));
    let (kept, _) = send_traces(http);
    sg.wait_metric("spangate_tail_sampling_traces_buffered", &[], 300.0);
    sg.signal("TERM");
    assert!(sg.wait_exit(20).success());
    let per_trace = kept_trace_spans(&sg);
    assert_eq!(
        per_trace.len(),
        kept,
        "waiting traces are decided at shutdown, not dropped"
    );
    assert!(per_trace.values().all(|n| *n == 3));
}

#[test]
fn tail_sampling_reload_keeps_or_decides_waiting_traces() {
    let http = free_port();
    // The checks between the sending and the decision must fit in the wait, loaded or not.
    let sg = Spangate::start(&tail_config(http, "8s"));
    let (kept, _) = send_traces(http);
    sg.wait_metric("spangate_tail_sampling_traces_buffered", &[], 300.0);
    // Same config: the waiting traces survive the reload undecided.
    sg.signal("HUP");
    common::eventually("the reload handed the buffer over", || {
        sg.logs()
            .contains("keeps its waiting traces across the reload")
    });
    sg.wait_metric("spangate_tail_sampling_traces_buffered", &[], 300.0);
    assert_eq!(kept_trace_spans(&sg).len(), 0);
    // ...and are decided once, when their wait ends.
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        (kept * 3) as f64,
    );
    assert_eq!(kept_trace_spans(&sg).len(), kept);

    // Changed config: the old sampler decides what waits, at the reload, instead of dropping it.
    send_traces_offset(http, 1000);
    sg.wait_metric("spangate_tail_sampling_traces_buffered", &[], 300.0);
    sg.rewrite_config(&tail_config(http, "9s"));
    sg.signal("HUP");
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        (kept * 6) as f64,
    );
    assert_eq!(kept_trace_spans(&sg).len(), kept * 2);
    assert_eq!(
        sg.metric("spangate_tail_sampling_traces_buffered", &[]),
        0.0
    );
}

/// 300 traces of 3 spans with ids shifted by `offset`: every 10th has an error on its last
/// span, every 7th lasts 600 ms.
fn send_traces_offset(http: u16, offset: u64) {
    // One request per span position, so each trace is assembled across three requests.
    for part in 0..3u8 {
        let spans = (0..300u64)
            .map(|i| Span {
                trace_id: trace_id(i + offset),
                span_id: vec![part + 1; 8],
                parent_span_id: if part == 0 { vec![] } else { vec![1; 8] },
                name: format!("t{i}"),
                start_time_unix_nano: 1_000_000_000,
                end_time_unix_nano: 1_000_000_000
                    + if i % 7 == 0 && part == 1 {
                        600_000_000
                    } else {
                        10_000_000
                    },
                status: (i % 10 == 0 && part == 2).then(|| {
                    opentelemetry_proto::tonic::trace::v1::Status {
                        code: 2,
                        message: String::new(),
                    }
                }),
                ..Default::default()
            })
            .collect();
        let (s, _, _) = http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &encode_spans(spans),
        );
        assert_eq!(s, 200);
    }
}

#[test]
fn session_stamps_early_spans_and_keeps_later_traces_of_a_kept_session() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  session: {{ key_attributes: [session.id], stamp_attribute: session.id, ttl: 1h, max_sessions: 1000 }}
  tail_sampling:
    decision_wait: 2s
    policies:
      - {{ name: errors, type: status_code, status_code: {{ status_codes: [ERROR] }} }}
exporters:
  file: {{ path: ./kept.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [session, tail_sampling], exporters: [file] }}
"
    ));
    let attr = |k: &str, v: &str| opentelemetry_proto::tonic::common::v1::KeyValue {
        key: k.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v.into()),
            ),
        }),
        ..Default::default()
    };
    let span = |t: u64, s: u8, attrs: Vec<_>, error: bool| Span {
        trace_id: trace_id(t),
        span_id: vec![s; 8],
        attributes: attrs,
        status: error.then(|| opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            message: String::new(),
        }),
        ..Default::default()
    };
    let post = |spans: Vec<Span>| {
        assert_eq!(
            http_post(
                http,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &encode_spans(spans)
            )
            .0,
            200
        );
    };
    // Trace 1: an early span without the key, then the span naming session s1, with an error.
    post(vec![span(1, 1, vec![], false)]);
    post(vec![span(1, 2, vec![attr("session.id", "s1")], true)]);
    // Trace 1 is decided (kept) before the next traces come.
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        2.0,
    );
    // Trace 2 (s1, no error) is kept because its session was; trace 3 (s2) is not.
    post(vec![
        span(2, 1, vec![attr("session.id", "s1")], false),
        span(3, 1, vec![attr("session.id", "s2")], false),
    ]);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        3.0,
    );
    sg.wait_metric(
        "spangate_processor_dropped_spans_total",
        &[("processor", "tail_sampling"), ("reason", "sampled_out")],
        1.0,
    );
    assert_eq!(
        sg.metric(
            "spangate_tail_sampling_policy_decisions_total",
            &[("policy", "session"), ("decision", "sampled")]
        ),
        1.0
    );
    assert!(sg.path("kept.jsonl").exists());
    let mut stamped = 0;
    for s in common::file_spans(&sg.path("kept.jsonl")) {
        assert_ne!(s.trace_id, trace_id(3));
        assert!(
            s.attributes.iter().any(|kv| kv.key == "session.id"),
            "span {:?} of trace {:?} unstamped",
            s.span_id,
            s.trace_id
        );
        stamped += 1;
    }
    assert_eq!(
        stamped, 3,
        "both spans of trace 1 (the early one too) and trace 2"
    );
}

#[test]
fn session_hold_stamps_early_spans_without_a_tail_sampler() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  session: {{ hold: 3s }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [session], exporters: [file] }}
"
    ));
    let key = opentelemetry_proto::tonic::common::v1::KeyValue {
        key: "session.id".into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("s9".into()),
            ),
        }),
        ..Default::default()
    };
    let early = Span {
        trace_id: trace_id(7),
        span_id: vec![1; 8],
        ..Default::default()
    };
    let keyed = Span {
        trace_id: trace_id(7),
        span_id: vec![2; 8],
        attributes: vec![key],
        ..Default::default()
    };
    for s in [early, keyed] {
        assert_eq!(
            http_post(
                http,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &encode_spans(vec![s])
            )
            .0,
            200
        );
    }
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        2.0,
    );
    let out = std::fs::read_to_string(sg.path("out.jsonl")).unwrap();
    assert_eq!(
        out.matches(r#""key":"session.id","value":{"stringValue":"s9"}"#)
            .count(),
        2,
        "{out}"
    );
}
