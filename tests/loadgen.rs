//! The load tool itself, end to end through spangate: its corpus passes spangate's validation,
//! every span it counts as accepted reaches its counting sink (gRPC, HTTP, gzip), and the corpus
//! has what the benchmarks claim (services, errors, PII, sessions, unique trace ids per pass).

mod common;

#[path = "../examples/loadgen/corpus.rs"]
mod corpus;
#[path = "../examples/loadgen/hist.rs"]
mod hist;
#[path = "../examples/loadgen/send.rs"]
mod send;
#[path = "../examples/loadgen/sink.rs"]
mod sink;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_span_reaches_the_sink_over_grpc_and_http() {
    let (sink_addr, stats) = sink::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (grpc, http) = (free_port(), free_port());
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ send_batch_size: 2000, timeout: 100ms }}
exporters:
  otlp: {{ endpoint: 127.0.0.1:{}, tls: {{ insecure: true }} }}
service:
  telemetry: {{ metrics: {{ address: ${{METRICS}} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
",
        sink_addr.port()
    ));
    let corpus = Arc::new(corpus::Corpus::generate(300, 50, 1));
    let mut accepted = 0;
    for (protocol, port, gzip, rate) in [
        (send::Protocol::Grpc, grpc, false, Some(5_000)),
        (send::Protocol::Http, http, true, Some(5_000)),
        (send::Protocol::Grpc, grpc, true, None),
    ] {
        let spec = send::Spec {
            protocol,
            endpoint: format!("127.0.0.1:{port}"),
            rate,
            concurrency: 4,
            duration: Duration::from_millis(1500),
            gzip,
        };
        let report = send::run(&spec, corpus.clone()).await;
        assert_eq!((report.refused, report.failed), (0, 0), "{protocol:?}");
        assert!(report.accepted > 0 && report.requests > 0, "{protocol:?}");
        assert!(report.elapsed >= spec.duration);
        assert!(report.latency.quantile_us(0.99) >= report.latency.quantile_us(0.5));
        assert!(report.latency.quantile_us(0.5) > 0);
        if let Some(rate) = rate {
            // The fixed rate holds: 1.5 s at `rate`, give or take one request.
            let want = rate as f64 * 1.5;
            assert!(
                (report.accepted as f64 - want).abs() <= 60.0,
                "{protocol:?}: {}",
                report.accepted
            );
        }
        accepted += report.accepted;
    }
    let t = Instant::now();
    while stats.spans.load(Ordering::Relaxed) < accepted && t.elapsed() < common::SETTLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.spans.load(Ordering::Relaxed), accepted);
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 0);
    let text = sg.scrape();
    assert_eq!(
        common::metric_sum(&text, "spangate_receiver_accepted_spans_total", &[]),
        accepted as f64
    );
    assert_eq!(
        common::metric_sum(&text, "spangate_receiver_refused_spans_total", &[]),
        0.0
    );
    // The sink counts a request when it arrives, the exporter when the answer is back: the
    // last batch's count can trail the sink's, so wait for it (this read raced before).
    let sent = || common::metric_sum(&sg.scrape(), "spangate_exporter_sent_spans_total", &[]);
    tokio::task::block_in_place(|| {
        common::eventually("the exporter counted every span the sink has", || {
            sent() == accepted as f64
        })
    });
}

#[test]
fn corpus_is_realistic_and_ids_renew_every_pass() {
    let corpus = corpus::Corpus::generate(500, 100, 3);
    let mut services = HashSet::new();
    let (mut spans, mut errors, mut pii, mut sessions, mut events) = (0, 0, 0, 0, 0);
    let mut types = HashSet::new();
    let mut ids = HashSet::new();
    for i in 0..corpus.len() as u64 * 2 {
        let (bytes, n) = corpus.request(i);
        let req = ExportTraceServiceRequest::decode(bytes).unwrap();
        assert_eq!(spangate::data::count_spans(&req.resource_spans) as u64, n);
        for rs in &req.resource_spans {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            services.insert(
                spangate::data::attrs::str_attr(attrs, "service.name")
                    .unwrap()
                    .to_string(),
            );
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                spans += 1;
                ids.insert((span.trace_id.clone(), span.span_id.clone()));
                errors += usize::from(span.status.as_ref().is_some_and(|s| s.code == 2));
                events += span.events.len();
                for kv in &span.attributes {
                    let v = kv.value.as_ref().and_then(|v| v.value.as_ref()).unwrap();
                    types.insert(std::mem::discriminant(v));
                    sessions += usize::from(kv.key == "session.id");
                    if let Value::StringValue(s) = v {
                        pii += usize::from(
                            s.contains('@')
                                || s.contains("4111")
                                || s.starts_with("203.0.113.")
                                || s.contains("Bearer")
                                || s.contains("token="),
                        );
                    }
                }
            }
        }
    }
    assert_eq!(spans as u64, corpus.spans * 2);
    assert_eq!(
        ids.len(),
        spans,
        "span (trace id, span id) pairs repeat across passes"
    );
    assert_eq!(services.len(), 6);
    assert!(types.len() >= 5, "string, int, double, bool, array");
    let share = |n: usize| n as f64 / spans as f64;
    assert!(
        (0.002..0.05).contains(&share(errors)),
        "errors {}",
        share(errors)
    );
    assert!((0.005..0.2).contains(&share(pii)), "pii {}", share(pii));
    assert!(share(sessions) > 0.1, "sessions {}", share(sessions));
    assert!(events > 0);
    let per_span = corpus.bytes / corpus.spans;
    assert!((200..2000).contains(&per_span), "{per_span} bytes per span");
}
