//! Kafka against a real broker (Tansu).

mod common;

use std::collections::{HashMap, HashSet};

use common::client::http_post;
use common::{encode_spans, free_port, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[test]
fn exporter_puts_each_trace_in_its_murmur2_partition() {
    let broker = common::kafka::broker();
    common::kafka::create_topic("spans-proto", 4);
    common::kafka::create_topic("spans-json", 4);
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  kafka/proto: {{ brokers: [{broker}], topic: spans-proto }}
  kafka/json: {{ brokers: [{broker}], topic: spans-json, encoding: otlp_json }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [kafka/proto, kafka/json] }}
"
    ));
    // 50 traces of 3 spans, one span of each trace per request.
    for part in 0..3u8 {
        let spans = (0..50u8)
            .map(|t| Span {
                trace_id: [[t + 1; 8], [t; 8]].concat(),
                span_id: vec![part + 1; 8],
                name: format!("t{t}"),
                ..Default::default()
            })
            .collect();
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
    }
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "kafka/proto")],
        150.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "kafka/json")],
        150.0,
    );

    for (topic, json) in [("spans-proto", false), ("spans-json", true)] {
        let decode = |payload: &[u8]| {
            if json {
                spangate::data::json::decode_request(payload).unwrap()
            } else {
                ExportTraceServiceRequest::decode(payload).unwrap()
            }
        };
        let messages = common::kafka::read_spans(topic, 4, 150, |p| {
            spangate::data::count_spans(&decode(p).resource_spans)
        });
        let mut partitions_of: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
        let mut spans = 0;
        // Spans of one partition travel together: a message per partition per export.
        assert!(
            messages.len() <= 4 * 3 * 2,
            "{topic}: {} messages",
            messages.len()
        );
        for (partition, _, payload) in &messages {
            let req = decode(payload);
            for s in common::spans_of(&req.resource_spans) {
                // The partition a keyed Java/librdkafka producer would choose for the trace id.
                assert_eq!(
                    *partition,
                    spangate::exporters::kafka::partition_for(&s.trace_id, 4)
                );
                partitions_of
                    .entry(s.trace_id.clone())
                    .or_default()
                    .insert(*partition);
                spans += 1;
            }
        }
        assert_eq!(spans, 150, "{topic}");
        assert_eq!(partitions_of.len(), 50);
        assert!(
            partitions_of.values().all(|p| p.len() == 1),
            "{topic}: a trace spans partitions"
        );
        let used: HashSet<i32> = partitions_of.values().flatten().copied().collect();
        assert!(used.len() > 1, "{topic}: keys spread over partitions");
    }
}

fn request(seq: u32, spans: u8) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
            scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: [seq.to_be_bytes().to_vec(), vec![7; 12]].concat(),
                        span_id: vec![i + 1; 8],
                        name: format!("m{seq}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Unique (trace, span) ids in OTLP/JSON lines files.
fn unique_spans(files: &[std::path::PathBuf]) -> HashSet<(Vec<u8>, Vec<u8>)> {
    let mut set = HashSet::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let Ok(req) = spangate::data::json::decode_request(line.as_bytes()) else {
                continue;
            };
            for s in common::spans_of(&req.resource_spans) {
                set.insert((s.trace_id.clone(), s.span_id.clone()));
            }
        }
    }
    set
}

#[test]
fn receiver_consumes_proto_and_json_skips_poison_and_commits() {
    let broker = common::kafka::broker();
    common::kafka::create_topic("in-proto", 2);
    common::kafka::create_topic("in-json", 1);
    let mut proto: Vec<Vec<u8>> = (0..20).map(|i| request(i, 5)).collect();
    proto.insert(10, b"\x0a\xff\xff not protobuf".to_vec());
    common::kafka::produce("in-proto", &proto);
    // OTLP/JSON as another client writes it: hex ids, camelCase, enum names.
    let json: Vec<Vec<u8>> = (1..=10)
        .map(|i| {
            format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{i:032x}","spanId":"00000000000000{i:02x}","name":"j","kind":"SPAN_KIND_SERVER"}}]}}]}}]}}"#)
                .into_bytes()
        })
        .collect();
    common::kafka::produce("in-json", &json);
    let sg = Spangate::start(&format!(
        "
receivers:
  kafka/proto: {{ brokers: [{broker}], topic: in-proto, group_id: g-proto, initial_offset: earliest }}
  kafka/json: {{ brokers: [{broker}], group_id: g-json, initial_offset: earliest, traces: {{ topic: in-json, encoding: otlp_json }} }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [kafka/proto, kafka/json], exporters: [file] }}
"
    ));
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        110.0,
    );
    // No client waits for these answers: the poison message may be read after the last good
    // one, and a receiver counts its spans accepted after the pipeline took them.
    sg.wait_metric(
        "spangate_receiver_refused_requests_total",
        &[("receiver", "kafka/proto"), ("reason", "decode_error")],
        1.0,
    );
    sg.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[("receiver", "kafka/json"), ("transport", "kafka")],
        10.0,
    );
    assert!(
        sg.logs().contains("skipping undecodable message"),
        "{}",
        sg.logs()
    );
    // Every message (the poison one too) is committed.
    common::eventually("all 21 messages committed", || {
        let c = common::kafka::committed("g-proto", "in-proto", 2);
        c.iter().filter(|o| **o > 0).sum::<i64>() == 21
    });
}

#[test]
fn receiver_killed_mid_stream_loses_nothing_after_restart() {
    let broker = common::kafka::broker();
    common::kafka::create_topic("in-crash", 2);
    let messages: Vec<Vec<u8>> = (0..300).map(|i| request(10_000 + i, 2)).collect();
    common::kafka::produce("in-crash", &messages);
    let dir = tempfile::tempdir().unwrap();
    let config = |n: u32| {
        format!(
            "
receivers:
  kafka: {{ brokers: [{broker}], topic: in-crash, group_id: g-crash, initial_offset: earliest }}
processors:
  # Slow consumption down so the kill lands mid-stream (refusals pause the consumer).
  rate_limiting: {{ spans_per_second: 150, burst: 20, on_limit: refuse }}
exporters:
  file: {{ path: {}/run{n}.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [kafka], processors: [rate_limiting], exporters: [file] }}
",
            dir.path().display()
        )
    };
    let mut first = Spangate::start(&config(1));
    sg_wait_some(&first);
    first.signal("KILL");
    let _ = first.wait_exit(10);
    let after_kill = unique_spans(&[dir.path().join("run1.jsonl")]).len();
    assert!(
        after_kill < 600,
        "the kill came after everything was delivered ({after_kill})"
    );
    let second = Spangate::start(&config(2));
    let files = [dir.path().join("run1.jsonl"), dir.path().join("run2.jsonl")];
    let deadline = std::time::Instant::now() + common::SETTLE;
    while unique_spans(&files).len() < 600 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 600 spans after restart\n{}",
            unique_spans(&files).len(),
            second.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Waits until the first instance has exported some spans (after its group join).
fn sg_wait_some(sg: &Spangate) {
    let deadline = std::time::Instant::now() + common::SETTLE;
    while sg.metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
    ) < 60.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing consumed\n{}",
            sg.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The number of partitions in the last assignment a spangate instance logged.
fn assigned(sg: &Spangate) -> Option<usize> {
    sg.logs()
        .lines()
        .rev()
        .find(|l| l.contains("kafka partitions assigned"))
        .and_then(|l| {
            l.split("partitions=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

#[test]
fn two_samplers_in_a_group_keep_the_same_whole_traces_as_one() {
    let broker = common::kafka::broker();
    common::kafka::create_topic("scale", 4);
    let dir = tempfile::tempdir().unwrap();
    let sampler = |group: &str, out: &str| {
        format!(
            "
receivers:
  kafka: {{ brokers: [{broker}], topic: scale, group_id: {group}, initial_offset: earliest }}
processors:
  tail_sampling:
    # A trace comes in three messages: the wait must outlast them on a loaded machine.
    decision_wait: 5s
    policies:
      - {{ name: errors, type: status_code, status_code: {{ status_codes: [ERROR] }} }}
      - {{ name: base, type: probabilistic, probabilistic: {{ sampling_percentage: 20 }} }}
exporters:
  file: {{ path: {}/{out}.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [kafka], processors: [tail_sampling], exporters: [file] }}
",
            dir.path().display()
        )
    };
    let one = Spangate::start(&sampler("single", "one"));
    let a = Spangate::start(&sampler("duo", "a"));
    let b = Spangate::start(&sampler("duo", "b"));
    // Produce once both members of "duo" hold 2 partitions each (no rebalance mid-test).
    let deadline = std::time::Instant::now() + common::SETTLE;
    while !(assigned(&a) == Some(2) && assigned(&b) == Some(2) && assigned(&one) == Some(4)) {
        assert!(
            std::time::Instant::now() < deadline,
            "group not stable: {:?} {:?} {:?}",
            assigned(&a),
            assigned(&b),
            assigned(&one)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // 200 traces of 3 spans, one message per span, keyed by trace id (what an agent's kafka
    // exporter does), through a spangate agent.
    let agent_http = free_port();
    let agent = Spangate::start(&format!(
        "
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{agent_http} }} }} }}
exporters:
  kafka: {{ brokers: [{broker}], topic: scale }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [kafka] }}
"
    ));
    for part in 0..3u8 {
        let spans = (0..200u32)
            .map(|t| Span {
                trace_id: [t.to_be_bytes().to_vec(), vec![0x5c; 12]].concat(),
                span_id: vec![part + 1; 8],
                name: format!("t{t}"),
                status: (t % 9 == 0 && part == 1).then(|| {
                    opentelemetry_proto::tonic::trace::v1::Status {
                        code: 2,
                        message: String::new(),
                    }
                }),
                ..Default::default()
            })
            .collect();
        assert_eq!(
            http_post(
                agent_http,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &encode_spans(spans)
            )
            .0,
            200
        );
    }
    agent.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "kafka")],
        600.0,
    );
    let decided = |sg: &Spangate| {
        common::metric_sum(&sg.scrape(), "spangate_tail_sampling_traces_total", &[])
    };
    let deadline = std::time::Instant::now() + common::SETTLE;
    while decided(&one) < 200.0 || decided(&a) + decided(&b) < 200.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "decided {} / {} + {}",
            decided(&one),
            decided(&a),
            decided(&b)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(decided(&one), 200.0);
    assert_eq!(decided(&a) + decided(&b), 200.0);
    for sg in [&one, &a, &b] {
        sg.wait_metric("spangate_exporter_queue_size", &[("exporter", "file")], 0.0);
        sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
    }
    assert!(
        decided(&a) > 0.0 && decided(&b) > 0.0,
        "both samplers worked"
    );
    let traces = |files: &[&str]| {
        let mut per: HashMap<Vec<u8>, usize> = HashMap::new();
        for f in files {
            for (t, _) in unique_spans(&[dir.path().join(format!("{f}.jsonl"))]) {
                *per.entry(t).or_default() += 1;
            }
        }
        per
    };
    let single = traces(&["one"]);
    let duo = traces(&["a", "b"]);
    assert!(!single.is_empty());
    assert_eq!(
        single.keys().collect::<HashSet<_>>(),
        duo.keys().collect::<HashSet<_>>(),
        "same kept traces"
    );
    assert!(
        single.values().chain(duo.values()).all(|n| *n == 3),
        "kept traces are complete"
    );
    // A trace kept by the pair is wholly in one sampler's output.
    let (ta, tb) = (traces(&["a"]), traces(&["b"]));
    assert!(ta.keys().all(|t| !tb.contains_key(t)));
}

#[test]
fn exporter_partition_by_session_keeps_a_session_in_one_partition() {
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    let broker = common::kafka::broker();
    common::kafka::create_topic("by-session", 4);
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  kafka: {{ brokers: [{broker}], topic: by-session, partition_by: session, session_attribute: user.session }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [kafka] }}
"
    ));
    // 12 sessions, each with 5 traces; the session id is on every span.
    let spans: Vec<Span> = (0..60u8)
        .map(|t| Span {
            trace_id: [[t + 1; 8], [9; 8]].concat(),
            span_id: vec![1; 8],
            attributes: vec![KeyValue {
                key: "user.session".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(format!("s{}", t % 12))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
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
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "kafka")],
        60.0,
    );
    let messages = common::kafka::read_spans("by-session", 4, 60, |p| {
        spangate::data::count_spans(&ExportTraceServiceRequest::decode(p).unwrap().resource_spans)
    });
    let mut partitions_of: HashMap<String, HashSet<i32>> = HashMap::new();
    let mut spans = 0;
    for (partition, _, payload) in &messages {
        let req = ExportTraceServiceRequest::decode(payload.as_slice()).unwrap();
        for s in common::spans_of(&req.resource_spans) {
            let Some(Value::StringValue(session)) =
                s.attributes[0].value.as_ref().and_then(|v| v.value.clone())
            else {
                panic!("session attribute")
            };
            // The partition a producer keyed by the session id would choose.
            assert_eq!(
                *partition,
                spangate::exporters::kafka::partition_for(session.as_bytes(), 4)
            );
            partitions_of.entry(session).or_default().insert(*partition);
            spans += 1;
        }
    }
    assert_eq!(spans, 60);
    assert_eq!(partitions_of.len(), 12);
    assert!(
        partitions_of.values().all(|p| p.len() == 1),
        "a session's traces share one partition"
    );
}
