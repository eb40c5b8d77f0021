//! Hostile and malformed input on both transports: each gets the contract's status, is counted
//! as refused, and the process keeps serving good requests.

mod common;

use common::client::{grpc_call, grpc_frame, http_post};
use common::{encode_spans, free_port, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use spangate::data::{gzip, rpc::RpcStatus};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One span per (trace id length, span id length).
fn request(ids: &[(usize, usize)]) -> Vec<u8> {
    encode_spans(
        ids.iter()
            .enumerate()
            .map(|(i, &(t, s))| Span {
                trace_id: vec![0xab; t],
                span_id: vec![0xcd; s],
                name: format!("span-{i}"),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Default::default()
            })
            .collect(),
    )
}

fn gzip_best(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const AUTH: (&str, &str) = ("authorization", "Bearer t0ken");
const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

fn good_http(port: u16) {
    let (status, _, _) = http_post(port, "/v1/traces", &[AUTH, PROTO], &request(&[(16, 8)]));
    assert_eq!(
        status, 200,
        "a good request after a bad one must still work"
    );
}

#[test]
fn http_bad_inputs() {
    let (sg, _, http) = start_with_token();
    // Garbage protobuf: 400 with a google.rpc.Status protobuf body.
    let (s, h, body) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO],
        b"\xff\xff\xff\xff garbage",
    );
    assert_eq!(s, 400);
    assert!(h
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/x-protobuf"));
    let st = RpcStatus::decode(&body[..]).unwrap();
    assert_eq!(st.code, 3);
    assert!(st.message.contains("cannot decode"), "{}", st.message);
    good_http(http);

    // Bad JSON: 400 answered in JSON.
    let (s, h, body) = http_post(http, "/v1/traces", &[AUTH, JSON], b"{\"resourceSpans\": [");
    assert_eq!(s, 400);
    assert!(h
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/json"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], 3);
    good_http(http);

    // JSON with a bad hex id names the field.
    let (s, _, body) = http_post(http, "/v1/traces", &[AUTH, JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"0102030405060708"}]}]}]}"#);
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("traceId"));

    // Wrong content type: 415.
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[AUTH, ("content-type", "text/plain")],
        b"hello",
    );
    assert_eq!(s, 415);
    let (s, _, _) = http_post(http, "/v1/traces", &[AUTH], b"hello");
    assert_eq!(s, 415);
    // Unsupported content encoding: 415.
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO, ("content-encoding", "br")],
        b"x",
    );
    assert_eq!(s, 415);
    good_http(http);

    // Oversize body: 413; a gzip bomb under the limit compressed but over it decompressed: 413.
    let (s, _, _) = http_post(http, "/v1/traces", &[AUTH, PROTO], &vec![0u8; 5000]);
    assert_eq!(s, 413);
    let bomb = gzip_best(&vec![0u8; 1_000_000]);
    assert!(bomb.len() < 4096);
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO, ("content-encoding", "gzip")],
        &bomb,
    );
    assert_eq!(s, 413);
    // Truncated gzip: 400.
    let z = gzip::compress(&request(&[(16, 8)]));
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO, ("content-encoding", "gzip")],
        &z[..z.len() / 2],
    );
    assert_eq!(s, 400);
    // Whole gzip works.
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO, ("content-encoding", "gzip")],
        &z,
    );
    assert_eq!(s, 200);

    // Wrong id lengths: partial success, the good span is kept.
    let (s, _, body) = http_post(
        http,
        "/v1/traces",
        &[AUTH, PROTO],
        &request(&[(16, 8), (15, 8), (16, 7), (0, 8)]),
    );
    assert_eq!(s, 200);
    let resp = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let p = resp.partial_success.unwrap();
    assert_eq!(p.rejected_spans, 3);
    assert!(
        p.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        p.error_message
    );
    // The same in JSON.
    let (s, _, body) = http_post(http, "/v1/traces", &[AUTH, JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"0102030405060708","name":"short"}]}]}]}"#);
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1");

    // Missing and wrong token: 401.
    let (s, _, _) = http_post(http, "/v1/traces", &[PROTO], &request(&[(16, 8)]));
    assert_eq!(s, 401);
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[("authorization", "Bearer nope"), PROTO],
        &request(&[(16, 8)]),
    );
    assert_eq!(s, 401);

    // Other signals and methods.
    let (s, _, body) = http_post(http, "/v1/metrics", &[AUTH, PROTO], b"");
    assert_eq!(s, 404);
    assert!(RpcStatus::decode(&body[..])
        .unwrap()
        .message
        .contains("only the traces signal"));
    let (s, _) = common::http_get(http, "/v1/traces").unwrap();
    assert_eq!(s, 405);

    // OTLP/JSON with hex ids, snake_case and enum names decodes right and reaches the file.
    let (s, _, _) = http_post(http, "/v1/traces", &[AUTH, JSON],
        br#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"EEE19B7EC3C1B174","name":"json-span","kind":"SPAN_KIND_SERVER"}]}]}]}"#);
    assert_eq!(s, 200);

    // Accounting: 3 good + 1 gzip + 1 kept of the partial + 1 json = 6 accepted; 4 invalid spans.
    sg.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[("transport", "http")],
        6.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        6.0,
    );
    assert_eq!(
        sg.metric(
            "spangate_receiver_refused_spans_total",
            &[("transport", "http"), ("reason", "invalid_span")]
        ),
        4.0
    );
    for (reason, n) in [
        ("decode_error", 4.0),
        ("unsupported_media_type", 2.0),
        ("unsupported_encoding", 1.0),
        ("too_large", 2.0),
        ("unauthenticated", 2.0),
    ] {
        assert_eq!(
            sg.metric(
                "spangate_receiver_refused_requests_total",
                &[("transport", "http"), ("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
    let out = std::fs::read_to_string(sg.path("out.jsonl")).unwrap();
    assert!(
        out.contains(r#""traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174""#),
        "{out}"
    );
    assert!(out.contains(r#""name":"json-span","kind":2"#));
}

fn start_with_token() -> (Spangate, u16, u16) {
    let (grpc, http) = (free_port(), free_port());
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size_mib: 1 }}
      http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 4096 }}
    auth: {{ bearer_token: \"${{env:TEST_TOKEN}}\" }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
    );
    (
        Spangate::start_with(&yaml, &[("TEST_TOKEN", "t0ken")]),
        grpc,
        http,
    )
}

/// RFC 7235: the scheme is case-insensitive. `BEARER <token>` was refused before.
#[test]
fn the_bearer_scheme_is_case_insensitive_on_both_transports() {
    let (sg, grpc, http) = start_with_token();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let auth = format!("{scheme} t0ken");
        let (s, _, _) = http_post(
            http,
            "/v1/traces",
            &[("authorization", &auth), PROTO],
            &request(&[(16, 8)]),
        );
        assert_eq!(s, 200, "{auth}");
        let (code, _, _, _) = grpc_call(
            grpc,
            EXPORT,
            &[("authorization", &auth)],
            grpc_frame(false, &request(&[(16, 8)])),
        );
        assert_eq!(code, 0, "{auth}");
    }
    let (s, _, _) = http_post(
        http,
        "/v1/traces",
        &[("authorization", "Bearert0ken"), PROTO],
        &request(&[(16, 8)]),
    );
    assert_eq!(s, 401);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        6.0,
    );
}

#[test]
fn grpc_bad_inputs() {
    let (sg, grpc, _) = start_with_token();
    let good = || {
        let (code, msg, body, _) = grpc_call(
            grpc,
            EXPORT,
            &[AUTH],
            grpc_frame(false, &request(&[(16, 8)])),
        );
        assert_eq!(
            (code, msg.as_str()),
            (0, ""),
            "a good request after a bad one must still work"
        );
        assert!(ExportTraceServiceResponse::decode(body)
            .unwrap()
            .partial_success
            .is_none());
    };
    good();
    // Undecodable message: INVALID_ARGUMENT (not tonic's INTERNAL).
    let (code, msg, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH],
        grpc_frame(false, b"\xff\xff\xff garbage"),
    );
    assert_eq!(code, 3, "{msg}");
    good();
    // Truncated frame.
    let mut frame = grpc_frame(false, &request(&[(16, 8)]));
    frame.truncate(frame.len() - 3);
    let (code, _, _, _) = grpc_call(grpc, EXPORT, &[AUTH], frame);
    assert_eq!(code, 3);
    // Over max_recv_msg_size_mib: RESOURCE_EXHAUSTED (not tonic's OUT_OF_RANGE).
    let (code, _, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH],
        grpc_frame(false, &vec![0u8; 1024 * 1024 + 10]),
    );
    assert_eq!(code, 8);
    // A gzip bomb: small on the wire, over the limit expanded.
    let bomb = gzip::compress(&vec![0u8; 2 * 1024 * 1024]);
    let (code, _, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH, ("grpc-encoding", "gzip")],
        grpc_frame(true, &bomb),
    );
    assert_eq!(code, 8);
    // Corrupt gzip.
    let z = gzip::compress(&request(&[(16, 8)]));
    let (code, _, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH, ("grpc-encoding", "gzip")],
        grpc_frame(true, &z[..z.len() - 6]),
    );
    assert_eq!(code, 3);
    // A good gzip request.
    let (code, _, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH, ("grpc-encoding", "gzip")],
        grpc_frame(true, &z),
    );
    assert_eq!(code, 0);
    good();
    // Missing and wrong token: UNAUTHENTICATED.
    let (code, _, _, _) = grpc_call(grpc, EXPORT, &[], grpc_frame(false, &request(&[(16, 8)])));
    assert_eq!(code, 16);
    let (code, _, _, _) = grpc_call(
        grpc,
        EXPORT,
        &[("authorization", "Bearer x")],
        grpc_frame(false, &request(&[(16, 8)])),
    );
    assert_eq!(code, 16);
    // Metrics service: UNIMPLEMENTED with a clear message.
    let (code, msg, _, _) = grpc_call(
        grpc,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        &[AUTH],
        grpc_frame(false, b""),
    );
    assert_eq!(code, 12);
    assert!(msg.contains("only the traces signal"), "{msg}");
    // Wrong id lengths: OK with partial success.
    let (code, _, body, _) = grpc_call(
        grpc,
        EXPORT,
        &[AUTH],
        grpc_frame(false, &request(&[(16, 8), (16, 9), (32, 8)])),
    );
    assert_eq!(code, 0);
    assert_eq!(
        ExportTraceServiceResponse::decode(body)
            .unwrap()
            .partial_success
            .unwrap()
            .rejected_spans,
        2
    );
    good();

    sg.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[("transport", "grpc")],
        6.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        6.0,
    );
    for (reason, n) in [
        ("decode_error", 3.0),
        ("too_large", 2.0),
        ("unauthenticated", 2.0),
        ("unimplemented", 1.0),
    ] {
        assert_eq!(
            sg.metric(
                "spangate_receiver_refused_requests_total",
                &[("transport", "grpc"), ("reason", reason)]
            ),
            n,
            "{reason}"
        );
    }
}

#[test]
fn attribute_limits_drop_and_truncate_and_count() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
    max_attributes_per_span: 3
    max_attribute_value_length: 8
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
    ));
    let span = opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: vec![1; 16],
        span_id: vec![1; 8],
        name: "limited".into(),
        attributes: (0..5)
            .map(|i| common::str_kv(&format!("k{i}"), &"v".repeat(20)))
            .collect(),
        ..Default::default()
    };
    common::post_otlp(http, &common::encode_spans(vec![span]));
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        1.0,
    );
    let got = &common::file_spans(&sg.path("out.jsonl"))[0];
    assert_eq!(got.attributes.len(), 3);
    assert_eq!(got.dropped_attributes_count, 2);
    assert!(got.attributes.iter().all(|kv| {
        matches!(&kv.value.as_ref().unwrap().value,
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) if s == "vvvvvvvv")
    }));
    let m = |action| {
        sg.metric(
            "spangate_receiver_limited_attributes_total",
            &[("receiver", "otlp"), ("action", action)],
        )
    };
    assert_eq!((m("dropped"), m("truncated")), (2.0, 3.0));
}
