//! Real OpenTelemetry SDK -> spangate (OTLP gRPC/HTTP receiver -> batch -> OTLP exporter) ->
//! reference sink: every span arrives with ids, attributes, events, links and resource intact.

mod common;

use common::client::{send_with_sdk, Otlp};
use common::sink::Sink;
use common::{free_port, Spangate};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

fn config(grpc: u16, http: u16, id: &str, exporter: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 50ms, send_batch_size: 100 }}
exporters:
  {id}:
{exporter}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [{id}]
"
    )
}

fn check_round_trip(via: Otlp, id: &str, exporter_yaml: &str, sink: &Sink) {
    let (grpc, http) = (free_port(), free_port());
    let sg = Spangate::start(&config(grpc, http, id, exporter_yaml));
    let port = if via == Otlp::Grpc { grpc } else { http };
    let sent = send_with_sdk(via, port, 20, None);
    sink.state.wait_spans(40);
    let reqs = sink.state.requests.lock().unwrap().clone();
    let rs = &reqs[0].resource_spans[0];
    let res_attrs = &rs.resource.as_ref().unwrap().attributes;
    assert!(res_attrs.iter().any(|kv| kv.key == "service.name"
        && kv.value.as_ref().unwrap().value == Some(Value::StringValue("checkout".into()))));
    assert!(res_attrs
        .iter()
        .any(|kv| kv.key == "deployment.environment"));
    assert_eq!(
        rs.scope_spans[0].scope.as_ref().unwrap().name,
        "spangate-tests"
    );
    let spans = sink.state.spans();
    assert_eq!(spans.len(), 40);
    for (i, t) in sent.iter().enumerate() {
        let root = spans
            .iter()
            .find(|s| s.span_id == t.root_span_id)
            .unwrap_or_else(|| panic!("root span {i} missing"));
        let child = spans.iter().find(|s| s.span_id == t.child_span_id).unwrap();
        assert_eq!(root.trace_id, t.trace_id);
        assert_eq!(child.trace_id, t.trace_id);
        assert_eq!(child.parent_span_id, t.root_span_id);
        assert_eq!(root.kind, 2, "server");
        assert_eq!(child.kind, 3, "client");
        assert_eq!(root.name, format!("GET /cart/{i}"));
        let attr = |k: &str| {
            root.attributes
                .iter()
                .find(|kv| kv.key == k)
                .unwrap()
                .value
                .clone()
                .unwrap()
                .value
                .unwrap()
        };
        assert_eq!(
            attr("http.request.method"),
            Value::StringValue("GET".into())
        );
        assert_eq!(attr("index"), Value::IntValue(i as i64));
        assert_eq!(attr("ratio"), Value::DoubleValue(0.5));
        assert_eq!(attr("cached"), Value::BoolValue(true));
        assert_eq!(child.events.len(), 1);
        assert_eq!(child.events[0].name, "cache.miss");
        assert_eq!(child.status.as_ref().unwrap().code, 2);
        assert_eq!(child.status.as_ref().unwrap().message, "db timeout");
        if i > 0 {
            assert_eq!(child.links.len(), 1);
            assert_eq!(child.links[0].trace_id, sent[i - 1].trace_id);
            assert_eq!(child.links[0].span_id, sent[i - 1].child_span_id);
            assert_eq!(child.links[0].attributes[0].key, "link.kind");
        }
        assert!(
            root.end_time_unix_nano >= root.start_time_unix_nano && root.start_time_unix_nano > 0
        );
    }
    sg.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[
            ("receiver", "otlp"),
            ("transport", if via == Otlp::Grpc { "grpc" } else { "http" }),
        ],
        40.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", id)],
        40.0,
    );
    sg.wait_metric(
        "spangate_pipeline_inflight_spans",
        &[("pipeline", "traces")],
        0.0,
    );
}

fn header(sink: &Sink, name: &str) -> Option<String> {
    sink.state
        .last_headers
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn sdk_grpc_in_otlp_grpc_out() {
    let sink = Sink::start();
    let exp = format!(
        "    endpoint: 127.0.0.1:{}\n    tls: {{ insecure: true }}\n    headers: {{ x-api-key: k1 }}\n",
        sink.grpc_port
    );
    check_round_trip(Otlp::Grpc, "otlp/out", &exp, &sink);
    assert_eq!(header(&sink, "x-api-key").as_deref(), Some("k1"));
    assert!(
        sink.state
            .gzip_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "gzip by default"
    );
}

#[test]
fn sdk_http_in_otlphttp_out() {
    let sink = Sink::start();
    let exp = format!(
        "    endpoint: http://127.0.0.1:{}\n    headers: {{ x-api-key: k2 }}\n",
        sink.http_port
    );
    check_round_trip(Otlp::Http, "otlphttp/out", &exp, &sink);
    assert_eq!(header(&sink, "x-api-key").as_deref(), Some("k2"));
    assert_eq!(header(&sink, "content-encoding").as_deref(), Some("gzip"));
}

#[test]
fn sdk_grpc_in_http_json_out_uncompressed() {
    let sink = Sink::start();
    let exp = format!(
        "    endpoint: http://127.0.0.1:{}\n    protocol: http\n    encoding: json\n    compression: none\n",
        sink.http_port
    );
    check_round_trip(Otlp::Grpc, "otlp/json", &exp, &sink);
    assert_eq!(
        header(&sink, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        sink.state
            .gzip_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
