//! The `jaeger` exporter: Jaeger's own gRPC API checked field by field, with our prost types and
//! independently with Jaeger's published descriptors (tests/support/jaeger_decode.py); the
//! OTLP modes at an OTLP sink.

mod common;

use std::convert::Infallible;
use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::client::http_post;
use common::sink::Sink;
use common::{free_port, kv, Spangate};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use spangate::exporters::jaeger::model;

/// A Jaeger collector's gRPC endpoint as far as PostSpans goes: records each request message.
fn jaeger_sink() -> (u16, Arc<Mutex<Vec<Vec<u8>>>>) {
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let g = got.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let g = g.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let g = g.clone();
                            async move {
                                assert_eq!(req.uri().path(), model::POST_SPANS_PATH);
                                let gzip = req
                                    .headers()
                                    .get("grpc-encoding")
                                    .is_some_and(|v| v == "gzip");
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let mut message = body[5..].to_vec();
                                if body[0] == 1 && gzip {
                                    let mut out = Vec::new();
                                    flate2::read::GzDecoder::new(&message[..])
                                        .read_to_end(&mut out)
                                        .unwrap();
                                    message = out;
                                }
                                g.lock().unwrap().push(message);
                                // Trailers-only answer: OK, empty PostSpansResponse.
                                let mut r = http::Response::new(Full::new(Bytes::new()));
                                r.headers_mut()
                                    .insert("content-type", "application/grpc".parse().unwrap());
                                r.headers_mut().insert("grpc-status", "0".parse().unwrap());
                                Ok::<_, Infallible>(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (port, got)
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

const T: [u8; 16] = [0xa1; 16];
const LINKED: [u8; 16] = [0xb2; 16];

fn otlp_request() -> Vec<u8> {
    let root = Span {
        trace_id: T.to_vec(),
        span_id: vec![1; 8],
        name: "GET /checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_123_456_789,
        end_time_unix_nano: 1_700_000_001_123_456_789,
        trace_state: "vendor=x".into(),
        attributes: vec![
            kv("http.method", s("GET")),
            kv("retry", any_value::Value::BoolValue(true)),
            kv("http.status_code", any_value::Value::IntValue(503)),
            kv("ratio", any_value::Value::DoubleValue(0.25)),
            kv("raw", any_value::Value::BytesValue(vec![1, 2, 3])),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue {
                            value: Some(any_value::Value::IntValue(2)),
                        },
                    ],
                }),
            ),
            kv(
                "user",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("id", s("u1"))],
                }),
            ),
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_500_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.message", s("boom"))],
            ..Default::default()
        }],
        links: vec![
            span::Link {
                trace_id: LINKED.to_vec(),
                span_id: vec![9; 8],
                ..Default::default()
            },
            span::Link {
                trace_id: LINKED.to_vec(),
                span_id: vec![8; 8],
                attributes: vec![kv("opentracing.ref_type", s("child_of"))],
                ..Default::default()
            },
        ],
        status: Some(Status {
            code: status::StatusCode::Error as i32,
            message: "upstream down".into(),
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: T.to_vec(),
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "SELECT cart".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_700_000_000_200_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        status: Some(Status {
            code: status::StatusCode::Ok as i32,
            message: String::new(),
        }),
        ..Default::default()
    };
    let orphan = Span {
        trace_id: [0xc3; 16].to_vec(),
        span_id: vec![3; 8],
        name: "tick".into(),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("checkout")),
                        kv("host.name", s("node-1")),
                        kv("process.pid", any_value::Value::IntValue(42)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.http".into(),
                        version: "1.2.3".into(),
                        ..Default::default()
                    }),
                    spans: vec![root, child],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![orphan],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
    .encode_to_vec()
}

fn tag(key: &str, t: model::ValueType) -> model::KeyValue {
    model::KeyValue {
        key: key.into(),
        v_type: t as i32,
        ..Default::default()
    }
}

fn str_tag(key: &str, v: &str) -> model::KeyValue {
    model::KeyValue {
        v_str: v.into(),
        ..tag(key, model::ValueType::String)
    }
}

#[test]
fn grpc_sends_jaeger_batches_translated_like_jaeger_does() {
    let (port, got) = jaeger_sink();
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  jaeger: {{ endpoint: 127.0.0.1:{port}, protocol: grpc, tls: {{ insecure: true }} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [jaeger] }}
"
    ));
    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &otlp_request(),
    );
    assert_eq!(status, 200);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "jaeger")],
        3.0,
    );
    let messages = got.lock().unwrap().clone();
    assert_eq!(messages.len(), 2, "one PostSpans per resource");
    let batches: Vec<model::Batch> = messages
        .iter()
        .map(|m| {
            model::PostSpansRequest::decode(m.as_slice())
                .unwrap()
                .batch
                .unwrap()
        })
        .collect();

    // Process: service.name, the rest as typed tags; none at all gives Jaeger's placeholder.
    let p = batches[0].process.as_ref().unwrap();
    assert_eq!(p.service_name, "checkout");
    assert_eq!(
        p.tags,
        [
            str_tag("host.name", "node-1"),
            model::KeyValue {
                v_int64: 42,
                ..tag("process.pid", model::ValueType::Int64)
            }
        ]
    );
    assert_eq!(
        batches[1].process.as_ref().unwrap().service_name,
        "OTLPResourceNoServiceName"
    );

    let root = &batches[0].spans[0];
    assert_eq!(root.trace_id, T);
    assert_eq!(root.span_id, [1; 8]);
    assert_eq!(root.operation_name, "GET /checkout");
    assert_eq!(
        root.start_time,
        Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789
        })
    );
    assert_eq!(
        root.duration,
        Some(prost_types::Duration {
            seconds: 1,
            nanos: 0
        })
    );
    let want_tags = vec![
        str_tag("http.method", "GET"),
        model::KeyValue {
            v_bool: true,
            ..tag("retry", model::ValueType::Bool)
        },
        model::KeyValue {
            v_int64: 503,
            ..tag("http.status_code", model::ValueType::Int64)
        },
        model::KeyValue {
            v_float64: 0.25,
            ..tag("ratio", model::ValueType::Float64)
        },
        model::KeyValue {
            v_binary: vec![1, 2, 3],
            ..tag("raw", model::ValueType::Binary)
        },
        str_tag("tags", r#"["a",2]"#),
        str_tag("user", r#"{"id":"u1"}"#),
        str_tag("otel.scope.name", "io.opentelemetry.http"),
        str_tag("otel.library.name", "io.opentelemetry.http"),
        str_tag("otel.scope.version", "1.2.3"),
        str_tag("otel.library.version", "1.2.3"),
        str_tag("span.kind", "server"),
        str_tag("otel.status_code", "ERROR"),
        model::KeyValue {
            v_bool: true,
            ..tag("error", model::ValueType::Bool)
        },
        str_tag("otel.status_description", "upstream down"),
        str_tag("w3c.tracestate", "vendor=x"),
    ];
    assert_eq!(root.tags, want_tags);
    assert_eq!(
        root.references,
        [
            model::SpanRef {
                trace_id: LINKED.to_vec(),
                span_id: vec![9; 8],
                ref_type: model::SpanRefType::FollowsFrom as i32
            },
            model::SpanRef {
                trace_id: LINKED.to_vec(),
                span_id: vec![8; 8],
                ref_type: model::SpanRefType::ChildOf as i32
            },
        ]
    );
    assert_eq!(
        root.logs,
        [model::Log {
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000
            }),
            fields: vec![
                str_tag("event", "exception"),
                str_tag("exception.message", "boom")
            ],
        }]
    );
    let child = &batches[0].spans[1];
    assert_eq!(
        child.references,
        [model::SpanRef {
            trace_id: T.to_vec(),
            span_id: vec![1; 8],
            ref_type: model::SpanRefType::ChildOf as i32
        }]
    );
    assert_eq!(
        child.tags[child.tags.len() - 2..],
        [
            str_tag("span.kind", "client"),
            str_tag("otel.status_code", "OK")
        ]
    );
    assert!(batches[1].spans[0].tags.is_empty());

    // The same bytes through Jaeger's own descriptors.
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.path().join(format!("m{i}.bin"));
            std::fs::write(&p, m).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    let lib = std::env::var("SPANGATE_PYLIB")
        .unwrap_or_else(|_| format!("{}/.tools/py", env!("CARGO_MANIFEST_DIR")));
    assert!(
        std::path::Path::new(&lib).join("opentelemetry/exporter/jaeger").exists(),
        "the Jaeger descriptors are missing from {lib}: run ./scripts/test.sh, which provisions them"
    );
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/jaeger_decode.py"
        ))
        .arg(&lib)
        .args(&files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoded: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let b = &decoded[0]["batch"];
    assert_eq!(b["process"]["service_name"], "checkout");
    assert_eq!(b["process"]["tags"][1]["v_type"], "INT64");
    assert_eq!(b["process"]["tags"][1]["v_int64"], "42");
    let r = &b["spans"][0];
    assert_eq!(r["operation_name"], "GET /checkout");
    assert_eq!(r["trace_id"], "oaGhoaGhoaGhoaGhoaGhoQ==");
    assert_eq!(r["start_time"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(r["duration"], "1s");
    let types: Vec<&str> = r["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["v_type"].as_str().unwrap_or("STRING"))
        .collect();
    assert_eq!(
        &types[..5],
        ["STRING", "BOOL", "INT64", "FLOAT64", "BINARY"]
    );
    assert_eq!(r["tags"][3]["v_float64"], 0.25);
    assert_eq!(r["references"][0]["ref_type"], "FOLLOWS_FROM");
    assert_eq!(
        r["references"][1].get("ref_type"),
        None,
        "CHILD_OF is the default"
    );
    assert_eq!(r["logs"][0]["fields"][0]["v_str"], "exception");
    assert_eq!(b["spans"][1]["references"][0]["span_id"], "AQEBAQEBAQE=");
    assert_eq!(
        decoded[1]["batch"]["process"]["service_name"],
        "OTLPResourceNoServiceName"
    );
}

#[test]
fn otlp_modes_reach_an_otlp_endpoint() {
    let sink = Sink::start();
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  jaeger/grpc: {{ endpoint: 127.0.0.1:{}, tls: {{ insecure: true }} }}
  jaeger/http: {{ endpoint: http://127.0.0.1:{}, protocol: otlp_http }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [jaeger/grpc, jaeger/http] }}
",
        sink.grpc_port, sink.http_port
    ));
    let (status, _, _) = http_post(
        http,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &otlp_request(),
    );
    assert_eq!(status, 200);
    sink.state.wait_spans(6);
    for e in ["jaeger/grpc", "jaeger/http"] {
        sg.wait_metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", e)],
            3.0,
        );
    }
}
