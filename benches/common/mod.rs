//! Realistic OTLP requests for benches and the load tool: spans shaped like an instrumented
//! HTTP service (resource with a dozen attributes, ~10 span attributes, an event on some).
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// One request of `spans` spans from one service; `seed` varies the ids.
pub fn request(seed: u64, spans: usize) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            kv("service.name", s("checkout")),
            kv("service.version", s("1.42.0")),
            kv("service.namespace", s("shop")),
            kv("deployment.environment", s("production")),
            kv("host.name", s("ip-10-0-12-34.eu-west-1.compute.internal")),
            kv("k8s.pod.name", s("checkout-7d9f8b6c5-x2x9k")),
            kv("k8s.namespace.name", s("shop")),
            kv("k8s.node.name", s("node-17")),
            kv("cloud.provider", s("aws")),
            kv("cloud.region", s("eu-west-1")),
            kv("telemetry.sdk.name", s("opentelemetry")),
            kv("telemetry.sdk.language", s("rust")),
        ],
        ..Default::default()
    };
    let spans = (0..spans)
        .map(|i| {
            let n = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(n / 8 + 1).to_le_bytes());
            trace_id[8..].copy_from_slice(&seed.to_be_bytes());
            let mut span_id = [0u8; 8];
            span_id.copy_from_slice(&(n + 1).to_be_bytes());
            let start = 1_700_000_000_000_000_000 + n * 1_000;
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: if i % 8 == 0 {
                    vec![]
                } else {
                    (n).to_be_bytes().to_vec()
                },
                name: format!("GET /api/v1/cart/{}", i % 50),
                kind: 2,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_500_000 + (n % 1000) * 1000,
                attributes: vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s("/api/v1/cart/{id}")),
                    kv(
                        "url.full",
                        s("https://shop.example.com/api/v1/cart/123?session=abc"),
                    ),
                    kv("http.response.status_code", Value::IntValue(200)),
                    kv("server.address", s("shop.example.com")),
                    kv("server.port", Value::IntValue(443)),
                    kv("network.protocol.version", s("1.1")),
                    kv(
                        "user_agent.original",
                        s("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
                    ),
                    kv("session.id", s("5f0c2a1e-9a43-4c1b-8f62-0d3b7e2c9a10")),
                    kv("app.cart.items", Value::IntValue((n % 7) as i64)),
                ],
                events: if i % 4 == 0 {
                    vec![Event {
                        time_unix_nano: start + 1000,
                        name: "cache.miss".into(),
                        attributes: vec![kv("cache.key", s("cart:123"))],
                        ..Default::default()
                    }]
                } else {
                    vec![]
                },
                status: Some(Status {
                    code: if n.is_multiple_of(50) { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "opentelemetry-instrumentation-http".into(),
                    version: "0.50.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The number after `name` on the command line, else `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}
