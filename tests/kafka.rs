//! Kafka against a real broker (Tansu).

mod common;

use std::collections::{HashMap, HashSet};

use common::client::http_post;
use common::{encode_spans, free_port, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[test]
fn exporter_keys_by_trace_id_so_each_trace_is_in_one_partition() {
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
        30,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "kafka/json")],
        150.0,
        30,
    );

    for (topic, json) in [("spans-proto", false), ("spans-json", true)] {
        let messages = common::kafka::read_all(topic, 4, 150, 30);
        let mut partitions_of: HashMap<Vec<u8>, HashSet<i32>> = HashMap::new();
        let mut spans = 0;
        for (partition, key, payload) in &messages {
            let req = if json {
                spangate::data::json::decode_request(payload).unwrap()
            } else {
                ExportTraceServiceRequest::decode(payload.as_slice()).unwrap()
            };
            for s in req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                assert_eq!(&s.trace_id, key, "message key = trace id");
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
