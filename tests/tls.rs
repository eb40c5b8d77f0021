//! TLS and mTLS end to end: spangate B exports over gRPC and HTTPS with a client certificate
//! and a bearer token into spangate A, which requires both.

mod common;

use std::time::Duration;

use common::client::http_post;
use common::{free_port, make_certs, Spangate};

/// Posts `n` spans called `name` to an OTLP/HTTP receiver; the body sent.
fn post_spans(port: u16, name: &str, n: usize) -> Vec<u8> {
    let body = common::encode_spans(vec![
        opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            name: name.into(),
            ..Default::default()
        };
        n
    ]);
    let (s, _, _) = http_post(
        port,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(s, 200);
    body
}

#[test]
fn mtls_and_token_between_two_spangates() {
    let dir = tempfile::tempdir().unwrap();
    let c = make_certs(dir.path());
    let (a_grpc, a_http) = (free_port(), free_port());
    let a = Spangate::start_with(
        &format!(
            "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{a_grpc} }}
      http: {{ endpoint: 127.0.0.1:{a_http} }}
    auth: {{ bearer_token: ${{env:TOKEN}} }}
    tls: {{ cert_file: {}, key_file: {}, client_ca_file: {} }}
exporters:
  file: {{ path: ./received.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
            c.server_cert.display(),
            c.server_key.display(),
            c.ca.display()
        ),
        &[("TOKEN", "s3cret")],
    );
    let b_http = free_port();
    let client_tls = format!(
        "{{ ca_file: {}, cert_file: {}, key_file: {} }}",
        c.ca.display(),
        c.client_cert.display(),
        c.client_key.display()
    );
    let b = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{b_http} }} }}
exporters:
  otlp/grpc_tls:
    endpoint: 127.0.0.1:{a_grpc}
    tls: {client_tls}
    headers: {{ authorization: Bearer s3cret }}
  otlphttp/https:
    endpoint: https://127.0.0.1:{a_http}
    tls: {client_tls}
    headers: {{ authorization: Bearer s3cret }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/grpc_tls, otlphttp/https] }}
"
    ));
    let body = post_spans(b_http, "secure", 3);
    b.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "otlp/grpc_tls")],
        3.0,
    );
    b.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "otlphttp/https")],
        3.0,
    );
    a.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[("transport", "grpc")],
        3.0,
    );
    a.wait_metric(
        "spangate_receiver_accepted_spans_total",
        &[("transport", "http")],
        3.0,
    );
    a.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        6.0,
    );

    // Without a client certificate the handshake fails; with one but no token: 401.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let post = |client: reqwest::Client| {
            let body = body.clone();
            async move {
                client
                    .post(format!("https://127.0.0.1:{a_http}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
            }
        };
        let no_cert = spangate::settings::tls::client_config(
            Some(c.ca.to_str().unwrap()),
            None,
            None,
            &[b"http/1.1"],
        )
        .unwrap();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(no_cert)
            .build()
            .unwrap();
        assert!(
            post(client).await.is_err(),
            "mTLS must refuse a client without a certificate"
        );
        let with_cert = spangate::settings::tls::client_config(
            Some(c.ca.to_str().unwrap()),
            Some(c.client_cert.to_str().unwrap()),
            Some(c.client_key.to_str().unwrap()),
            &[b"http/1.1"],
        )
        .unwrap();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(with_cert)
            .build()
            .unwrap();
        assert_eq!(post(client).await.unwrap().status().as_u16(), 401);
    });
    let out = std::fs::read_to_string(a.path("received.jsonl")).unwrap();
    assert_eq!(out.matches("\"name\":\"secure\"").count(), 6);
}

/// A bare gRPC endpoint and an `https://` one are verified against the system roots unless a
/// CA is given; `insecure_skip_verify` encrypts without checking (the contrib key), on both
/// transports.
#[test]
fn server_certificates_are_verified_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let c = make_certs(dir.path());
    let (a_grpc, a_http) = (free_port(), free_port());
    let a = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{a_grpc} }}
      http: {{ endpoint: 127.0.0.1:{a_http} }}
    tls: {{ cert_file: {}, key_file: {} }}
exporters:
  debug: {{}}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
",
        c.server_cert.display(),
        c.server_key.display(),
    ));
    let b_http = free_port();
    let b = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{b_http} }} }}
exporters:
  otlp/skip:
    endpoint: 127.0.0.1:{a_grpc}
    tls: {{ insecure_skip_verify: true }}
  otlphttp/skip:
    endpoint: https://127.0.0.1:{a_http}
    tls: {{ insecure_skip_verify: true }}
  otlp/verify:
    endpoint: 127.0.0.1:{a_grpc}
    retry_on_failure: {{ enabled: false }}
  otlphttp/verify:
    endpoint: https://127.0.0.1:{a_http}
    retry_on_failure: {{ enabled: false }}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/skip, otlphttp/skip, otlp/verify, otlphttp/verify]
"
    ));
    post_spans(b_http, "unverified", 2);
    for skip in ["otlp/skip", "otlphttp/skip"] {
        b.wait_metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", skip)],
            2.0,
        );
    }
    // The test CA is not a system root: the verifying exporters never deliver.
    for verify in ["otlp/verify", "otlphttp/verify"] {
        b.wait_metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", verify)],
            2.0,
        );
    }
    for transport in ["grpc", "http"] {
        a.wait_metric(
            "spangate_receiver_accepted_spans_total",
            &[("transport", transport)],
            2.0,
        );
    }
    assert_eq!(
        b.metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "otlp/verify")]
        ),
        0.0
    );
}
