//! The `tempo` exporter at an OTLP sink: tenant header (fixed and per resource attribute),
//! basic auth, and Tempo's RESOURCE_EXHAUSTED for a request too large (split) versus rate
//! limiting (retried), over gRPC and HTTP.

mod common;

use std::sync::atomic::Ordering;

use common::sink::Sink;
use common::{free_port, post_otlp, str_kv, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// One resource per (tenant, span count); `pad` bytes of attribute per span.
fn request(resources: &[(Option<&str>, u8)], pad: usize) -> Vec<u8> {
    let mut n = 0u8;
    ExportTraceServiceRequest {
        resource_spans: resources
            .iter()
            .map(|(tenant, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: tenant.iter().map(|t| str_kv("tenant", t)).collect(),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..*spans)
                        .map(|_| {
                            n += 1;
                            Span {
                                trace_id: vec![n; 16],
                                span_id: vec![n; 8],
                                name: "op".into(),
                                attributes: vec![str_kv("pad", &"x".repeat(pad))],
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

/// A sink and a spangate sending to it through a `tempo` exporter over `protocol`, with
/// `settings` (YAML lines at the exporter's indentation) added; returns the HTTP receiver port.
fn start(protocol: &str, settings: &str) -> (Sink, u16, Spangate) {
    let sink = Sink::start();
    let http = free_port();
    let endpoint = if protocol == "grpc" {
        format!("127.0.0.1:{}", sink.grpc_port)
    } else {
        format!("http://127.0.0.1:{}", sink.http_port)
    };
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  tempo:
    endpoint: {endpoint}
    protocol: {protocol}
    tls: {{ insecure: true }}
{settings}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [tempo] }}
"
    ));
    (sink, http, sg)
}

#[test]
fn fixed_tenant_and_basic_auth_over_grpc_and_http() {
    for protocol in ["grpc", "http"] {
        let (sink, http, sg) = start(
            protocol,
            "    tenant: team-a
    auth: { username: '12345', password: glc_token }",
        );
        post_otlp(http, &request(&[(None, 3)], 10));
        sink.state.wait_spans(3);
        let auth = format!(
            "Basic {}",
            spangate::data::json::encode_base64(b"12345:glc_token")
        );
        assert_eq!(
            sink.state.header_per_request("x-scope-orgid"),
            [Some("team-a".to_string())],
            "{protocol}"
        );
        assert_eq!(
            sink.state.header_per_request("authorization"),
            [Some(auth)],
            "{protocol}"
        );
        assert!(!sg.logs().contains("glc_token"));
    }
}

#[test]
fn tenant_from_attribute_sends_one_request_per_tenant() {
    let (sink, http, sg) = start(
        "grpc",
        "    tenant_from_attribute: tenant
    tenant: shared",
    );
    post_otlp(
        http,
        &request(
            &[(Some("a"), 2), (Some("b"), 3), (None, 1), (Some("a"), 4)],
            10,
        ),
    );
    sink.state.wait_spans(10);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "tempo")],
        10.0,
    );
    let requests = sink.state.requests.lock().unwrap().clone();
    let tenants = sink.state.header_per_request("x-scope-orgid");
    let mut per_tenant: Vec<(String, usize)> = tenants
        .iter()
        .zip(&requests)
        .map(|(t, r)| {
            let spans = r
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            (t.clone().unwrap_or_default(), spans)
        })
        .collect();
    per_tenant.sort();
    assert_eq!(
        per_tenant,
        [("a".into(), 6), ("b".into(), 3), ("shared".into(), 1)]
    );
}

#[test]
fn a_request_tempo_finds_too_large_is_split_and_rate_limits_are_retried() {
    for protocol in ["grpc", "http"] {
        let (sink, http, sg) = start(
            protocol,
            "    retry_on_failure: { initial_interval: 50ms, max_interval: 100ms }",
        );
        // 40 spans of ~300 bytes in one request; Tempo takes at most 3000 bytes at once.
        sink.state.limit_bytes.store(3000, Ordering::SeqCst);
        post_otlp(http, &request(&[(None, 40)], 300));
        sg.wait_metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "tempo")],
            40.0,
        );
        assert_eq!(sink.state.span_count(), 40, "{protocol}");
        assert!(sink.state.requests.lock().unwrap().len() >= 4);
        // One span alone bigger than the limit can never land: failed, with Tempo's reason.
        post_otlp(http, &request(&[(None, 1)], 5000));
        sg.wait_metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", "tempo")],
            1.0,
        );
        assert!(sg.logs().contains("ingestion rate limit"), "{}", sg.logs());
        // Plain rate limiting is retried, not split.
        let before = sink.state.requests.lock().unwrap().len();
        sink.state.rate_limit_next.store(2, Ordering::SeqCst);
        post_otlp(http, &request(&[(None, 5)], 10));
        sg.wait_metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "tempo")],
            45.0,
        );
        assert_eq!(
            sink.state.requests.lock().unwrap().len(),
            before + 1,
            "{protocol}"
        );
        assert_eq!(
            sg.metric(
                "spangate_exporter_send_failed_spans_total",
                &[("exporter", "tempo")]
            ),
            1.0
        );
    }
}
