//! Kafka security settings against a real broker (Tansu): SASL/SCRAM with a broker that requires
//! authentication, and TLS with client certificates. Tansu serves plaintext only, so the TLS
//! test puts a TLS front (rustls) before it and has the broker advertise the front.

mod common;

use common::kafka::{start_tansu, tls_front, Broker};
use common::{encode_spans, file_spans, free_port, make_certs, post_otlp, Spangate};
use opentelemetry_proto::tonic::trace::v1::Span;

const SPANS: usize = 20;

fn send(http: u16) {
    let spans = (0..SPANS as u8)
        .map(|i| Span {
            trace_id: vec![i + 1; 16],
            span_id: vec![i + 1; 8],
            name: format!("s{i}"),
            ..Default::default()
        })
        .collect();
    post_otlp(http, &encode_spans(spans));
}

fn sent(sg: &Spangate, exporter: &str) -> f64 {
    sg.metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", exporter)],
    )
}

fn failed(sg: &Spangate, exporter: &str) -> f64 {
    sg.metric(
        "spangate_exporter_send_failed_spans_total",
        &[("exporter", exporter)],
    )
}

/// Tansu 0.6 offers SCRAM only, and accepts new SCRAM users only from clients already
/// authenticated (and keeps them in memory), so no test client can ever log in: what is checked
/// here is that the SASL settings reach the broker (the SCRAM exchange runs with our user and
/// is answered), that failures are counted, and that no password is logged.
#[test]
fn sasl_scram_is_negotiated_and_refusals_are_counted() {
    let port = free_port();
    start_tansu(port, port, &["--authentication"]);
    let broker = format!("127.0.0.1:{port}");
    let http = free_port();
    let fail_fast = "timeout: 5s, retry_on_failure: { enabled: false }";
    let sg = Spangate::start_with(
        &format!(
            "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  kafka/scram512:
    brokers: [{broker}]
    auth: {{ sasl: {{ mechanism: SCRAM-SHA-512, username: agent, password: '${{env:KAFKA_PASSWORD}}' }} }}
    timeout: 5s
    retry_on_failure: {{ enabled: false }}
  kafka/scram256:
    brokers: [{broker}]
    auth: {{ sasl: {{ mechanism: SCRAM-SHA-256, username: agent, password: '${{env:KAFKA_PASSWORD}}' }} }}
    timeout: 5s
    retry_on_failure: {{ enabled: false }}
  kafka/none: {{ brokers: [{broker}], {fail_fast} }}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [kafka/scram512, kafka/scram256, kafka/none]
"
        ),
        &[("KAFKA_PASSWORD", "agent-secret")],
    );
    send(http);
    for bad in ["kafka/scram512", "kafka/scram256", "kafka/none"] {
        sg.wait_metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", bad)],
            SPANS as f64,
        );
        assert_eq!(sent(&sg, bad), 0.0, "{bad}");
    }
    // librdkafka logs from its own threads: the line may trail the failure count.
    common::eventually("the SASL failure logged", || {
        let logs = sg.logs();
        logs.contains("SASL SCRAM authentication failed: broker responded with unknown-user")
            && logs.contains("sasl_plaintext://")
    });
    let logs = sg.logs();
    assert!(
        !logs.contains("agent-secret"),
        "the password was logged: {logs}"
    );
}

#[test]
fn tls_with_client_certificates_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let (inner, front) = (free_port(), free_port());
    start_tansu(inner, front, &[]);
    tls_front(front, inner, &certs, true);
    let broker = format!("127.0.0.1:{front}");
    let (ca, cert, key) = (
        certs.ca.to_str().unwrap(),
        certs.client_cert.to_str().unwrap(),
        certs.client_key.to_str().unwrap(),
    );
    let admin = Broker::at(
        broker.clone(),
        &[
            ("security.protocol", "ssl"),
            ("ssl.ca.location", ca),
            ("ssl.certificate.location", cert),
            ("ssl.key.location", key),
        ],
    );
    admin.create_topic("tls", 1);

    let http = free_port();
    let fail_fast = "timeout: 5s, retry_on_failure: { enabled: false }";
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
  kafka:
    brokers: [{broker}]
    topic: tls
    group_id: g-tls
    initial_offset: earliest
    tls: {{ ca_file: {ca}, cert_file: {cert}, key_file: {key} }}
exporters:
  kafka/mtls:
    brokers: [{broker}]
    topic: tls
    tls: {{ ca_file: {ca}, cert_file: {cert}, key_file: {key} }}
  kafka/skip_verify:
    brokers: [{broker}]
    topic: tls
    tls: {{ insecure_skip_verify: true, cert_file: {cert}, key_file: {key} }}
  kafka/no_client_cert:
    brokers: [{broker}]
    topic: tls
    tls: {{ ca_file: {ca} }}
    timeout: 5s
    retry_on_failure: {{ enabled: false }}
  kafka/untrusted:
    brokers: [{broker}]
    topic: tls
    tls: {{ cert_file: {cert}, key_file: {key} }}
    timeout: 5s
    retry_on_failure: {{ enabled: false }}
  kafka/plaintext: {{ brokers: [{broker}], topic: tls, {fail_fast} }}
  file: {{ path: ./in.jsonl }}
service:
  pipelines:
    traces/out:
      receivers: [otlp]
      exporters: [kafka/mtls, kafka/skip_verify, kafka/no_client_cert, kafka/untrusted, kafka/plaintext]
    traces/in: {{ receivers: [kafka], exporters: [file] }}
"
    ));
    send(http);
    let n = SPANS as f64;
    for ok in ["kafka/mtls", "kafka/skip_verify"] {
        sg.wait_metric("spangate_exporter_sent_spans_total", &[("exporter", ok)], n);
    }
    for bad in ["kafka/no_client_cert", "kafka/untrusted", "kafka/plaintext"] {
        sg.wait_metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", bad)],
            n,
        );
        assert_eq!(sent(&sg, bad), 0.0, "{bad}");
    }
    assert_eq!(failed(&sg, "kafka/mtls"), 0.0);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file")],
        2.0 * n,
    );
    assert_eq!(file_spans(&sg.path("in.jsonl")).len(), 2 * SPANS);
}
