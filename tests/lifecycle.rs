//! Delivery under trouble and over the process's life: retry while the backend is down,
//! backpressure when the pipeline is full, SIGTERM under load, SIGHUP reloads, and the books
//! (accepted == sent + failed) balancing after each.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::client::{grpc_call, grpc_frame, http_post};
use common::sink::Sink;
use common::{encode_spans, free_port, metric_sum, Spangate};
use opentelemetry_proto::tonic::trace::v1::Span;

const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");

/// A request of `n` valid spans; `seq` makes ids unique across requests.
fn spans(seq: u64, n: usize) -> Vec<u8> {
    encode_spans(
        (0..n)
            .map(|i| {
                let mut trace_id = [1u8; 16];
                trace_id[..8].copy_from_slice(&seq.to_be_bytes());
                let mut span_id = [2u8; 8];
                span_id[..4].copy_from_slice(&(i as u32).to_be_bytes());
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    name: "op".into(),
                    ..Default::default()
                }
            })
            .collect(),
    )
}

fn otlp_exporter(sink: &Sink, extra: &str) -> String {
    format!(
        "  otlp/sink:\n    endpoint: 127.0.0.1:{}\n    tls: {{ insecure: true }}\n    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}\n{extra}",
        sink.grpc_port
    )
}

/// Asserts accepted == sent + failed for every exporter, and nothing in flight.
fn books_balance(sg: &Spangate, exporters: &[&str]) {
    sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
    let text = sg.scrape();
    let accepted = metric_sum(&text, "spangate_receiver_accepted_spans_total", &[]);
    for e in exporters {
        let sent = metric_sum(
            &text,
            "spangate_exporter_sent_spans_total",
            &[("exporter", e)],
        );
        let failed = metric_sum(
            &text,
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", e)],
        );
        assert_eq!(accepted, sent + failed, "exporter {e}:\n{text}");
    }
}

#[test]
fn backend_down_then_back_receives_everything() {
    let sink = Sink::start();
    sink.set_down(true);
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  batch: {{ timeout: 20ms }}
exporters:
{}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/sink] }}
",
        otlp_exporter(&sink, "")
    ));
    for seq in 0..20 {
        let (s, _, _) = http_post(http, "/v1/traces", &[PROTO], &spans(seq, 5));
        assert_eq!(s, 200);
    }
    // Down: attempts fail and are retried, nothing is lost.
    common::eventually("a second export attempt", || {
        sink.state.attempts.load(Ordering::SeqCst) >= 2
    });
    assert_eq!(sink.state.span_count(), 0);
    assert!(
        sg.metric(
            "spangate_pipeline_inflight_spans",
            &[("pipeline", "traces")]
        ) > 0.0
    );
    sink.set_down(false);
    sink.state.wait_spans(100);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "otlp/sink")],
        100.0,
    );
    assert_eq!(
        sg.metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", "otlp/sink")]
        ),
        0.0
    );
    assert!(
        sg.metric(
            "spangate_exporter_latency_seconds_count",
            &[("exporter", "otlp/sink")]
        ) >= 3.0
    );
    books_balance(&sg, &["otlp/sink"]);
}

#[test]
fn full_pipeline_refuses_with_retry_hints_then_delivers() {
    let sink = Sink::start();
    sink.set_down(true);
    let (grpc, http) = (free_port(), free_port());
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
exporters:
{}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/sink] }}
",
        otlp_exporter(
            &sink,
            "    sending_queue: { queue_size: 2, num_consumers: 1 }\n"
        )
    ));
    // One batch in the consumer, two queued; then the queue is full.
    let mut accepted = 0;
    let mut refused = None;
    for seq in 0..10 {
        let (s, h, _) = http_post(http, "/v1/traces", &[PROTO], &spans(seq, 3));
        if s == 200 {
            accepted += 3;
        } else {
            refused = Some((s, h));
            break;
        }
        if seq == 0 {
            // The consumer holds the first batch (retrying) before the queue fills behind it;
            // otherwise it could take one later and make room under the gRPC check below.
            common::eventually("the consumer's first attempt", || {
                sink.state.attempts.load(Ordering::SeqCst) >= 1
            });
        }
    }
    let (status, headers) = refused.expect("a full queue must refuse");
    assert_eq!(status, 503);
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
        "{headers:?}"
    );
    assert_eq!(
        sg.metric("spangate_exporter_queue_size", &[("exporter", "otlp/sink")]),
        2.0
    );
    assert_eq!(
        sg.metric(
            "spangate_exporter_queue_capacity",
            &[("exporter", "otlp/sink")]
        ),
        2.0
    );
    // gRPC: UNAVAILABLE with RetryInfo details.
    let (code, _, _, details) = grpc_call(
        grpc,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        &[],
        grpc_frame(false, &spans(99, 3)),
    );
    assert_eq!(code, 14);
    assert!(details, "RetryInfo in grpc-status-details-bin");
    let refused = metric_sum(
        &sg.scrape(),
        "spangate_receiver_refused_spans_total",
        &[("reason", "pipeline_full")],
    );
    assert_eq!(refused, 6.0, "3 spans refused over HTTP, 3 over gRPC");
    sink.set_down(false);
    sink.state.wait_spans(accepted);
    books_balance(&sg, &["otlp/sink"]);
    assert_eq!(sink.state.span_count(), accepted);
}

#[test]
fn sigterm_under_load_delivers_everything_accepted() {
    let sink = Sink::start();
    let http = free_port();
    let mut sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
processors:
  batch: {{ timeout: 5s, send_batch_size: 100000 }}
exporters:
{}
service:
  shutdown_timeout: 20s
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp/sink] }}
",
        otlp_exporter(&sink, "")
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                let mut seq = t * 1_000_000;
                while !stop.load(Ordering::SeqCst) {
                    seq += 1;
                    let body = spans(seq, 10);
                    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", http)) else { break };
                    drop(s.set_read_timeout(Some(Duration::from_secs(10))));
                    use std::io::{Read, Write};
                    let head = format!("POST /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n", body.len());
                    if s.write_all(head.as_bytes()).and_then(|_| s.write_all(&body)).is_err() { continue; }
                    let mut resp = String::new();
                    let _ = s.read_to_string(&mut resp);
                    if resp.starts_with("HTTP/1.1 200") {
                        accepted.fetch_add(10, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    common::eventually("100 spans accepted before the stop", || {
        accepted.load(Ordering::SeqCst) > 100
    });
    // The batch timeout is 5s: what was accepted so far sits in the batch processor.
    sg.signal("TERM");
    let status = sg.wait_exit(30);
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    assert!(status.success(), "exit {status:?}\n{}", sg.logs());
    let accepted = accepted.load(Ordering::SeqCst) as usize;
    assert!(accepted > 100, "load too small: {accepted}");
    assert_eq!(sink.state.span_count(), accepted, "log:\n{}", sg.logs());
}

fn two_file_config(http: u16, exporters: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  file/a: {{ path: ./a.jsonl }}
  file/b: {{ path: ./b.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [{exporters}] }}
"
    )
}

#[test]
fn sighup_bad_reload_keeps_old_good_reload_loses_nothing() {
    let http = free_port();
    let sg = Spangate::start(&two_file_config(http, "file/a"));
    let (s, _, _) = http_post(http, "/v1/traces", &[PROTO], &spans(1, 4));
    assert_eq!(s, 200);

    // An invalid config: logged, old pipelines keep running.
    sg.rewrite_config("receivers: {otlp: {protocols: {http: {endpoint: nope}}}}\nservice: {}\n");
    sg.signal("HUP");
    common::eventually("the failed reload logged", || {
        sg.logs()
            .contains("reload failed, keeping the running configuration")
    });
    let (s, _, _) = http_post(http, "/v1/traces", &[PROTO], &spans(2, 4));
    assert_eq!(s, 200);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file/a")],
        8.0,
    );

    // A good reload under load: fan out to a second file; nothing accepted is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let loader = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut seq = 100;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                let (s, _, _) = http_post(http, "/v1/traces", &[PROTO], &spans(seq, 2));
                assert_eq!(s, 200, "no request may fail during a reload");
                accepted.fetch_add(2, Ordering::SeqCst);
            }
        })
    };
    common::eventually("load before the reload", || {
        accepted.load(Ordering::SeqCst) >= 20
    });
    sg.rewrite_config(&two_file_config(http, "file/a, file/b"));
    sg.signal("HUP");
    // Load goes on until the new pipeline has delivered to file/b.
    common::eventually("file/b written after the reload", || {
        sg.metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "file/b")],
        ) > 0.0
    });
    stop.store(true, Ordering::SeqCst);
    loader.join().unwrap();
    assert!(
        sg.logs().contains("configuration reloaded"),
        "{}",
        sg.logs()
    );
    let total = 8.0 + accepted.load(Ordering::SeqCst) as f64;
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file/a")],
        total,
    );
    // file/b's last batches may still be in its queue: both files are final once none is.
    sg.wait_metric("spangate_pipeline_inflight_spans", &[], 0.0);
    let lines = |f: &str| {
        assert!(sg.path(f).exists(), "{f}");
        common::file_spans(&sg.path(f)).len()
    };
    assert_eq!(lines("a.jsonl") as f64, total);
    assert_eq!(
        lines("b.jsonl") as f64,
        sg.metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "file/b")]
        )
    );
}

#[test]
fn fan_in_fan_out_and_two_pipelines() {
    let (h1, h2, g) = (free_port(), free_port(), free_port());
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp/a:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{h1} }} }}
  otlp/b:
    protocols:
      http: {{ endpoint: 127.0.0.1:{h2} }}
      grpc: {{ endpoint: 127.0.0.1:{g} }}
processors:
  batch: {{ timeout: 20ms }}
exporters:
  file/all: {{ path: ./all.jsonl }}
  file/copy: {{ path: ./copy.jsonl }}
  file/a_only: {{ path: ./a_only.jsonl }}
service:
  pipelines:
    traces:
      receivers: [otlp/a, otlp/b]
      processors: [batch]
      exporters: [file/all, file/copy]
    traces/a:
      receivers: [otlp/a]
      exporters: [file/a_only]
"
    ));
    assert_eq!(http_post(h1, "/v1/traces", &[PROTO], &spans(1, 3)).0, 200);
    assert_eq!(http_post(h2, "/v1/traces", &[PROTO], &spans(2, 4)).0, 200);
    let (code, _, _, _) = grpc_call(
        g,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        &[],
        grpc_frame(false, &spans(3, 5)),
    );
    assert_eq!(code, 0);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file/all")],
        12.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file/copy")],
        12.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "file/a_only")],
        3.0,
    );
    assert_eq!(
        sg.metric(
            "spangate_receiver_accepted_spans_total",
            &[("receiver", "otlp/a"), ("transport", "http")]
        ),
        3.0
    );
    assert_eq!(
        sg.metric(
            "spangate_receiver_accepted_spans_total",
            &[("receiver", "otlp/b"), ("transport", "grpc")]
        ),
        5.0
    );
    sg.wait_metric(
        "spangate_pipeline_inflight_spans",
        &[("pipeline", "traces")],
        0.0,
    );
    sg.wait_metric(
        "spangate_pipeline_inflight_spans",
        &[("pipeline", "traces/a")],
        0.0,
    );
}
