//! The `postgres` exporter and `spangate traces` against a real PostgreSQL server.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::client::{send_with_sdk, Otlp};
use common::postgres::{shared, PgServer};
use common::{free_port, post_otlp, str_kv, Spangate};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn config(http: u16, grpc: u16, dsn: &str, schema: &str, extra: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
exporters:
  postgres:
    dsn: {dsn}
    schema: {schema}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0 }}
{extra}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [postgres] }}
"
    )
}

fn count(pg: &PgServer, sql: &str) -> i64 {
    pg.query(sql)[0].get(0)
}

/// Polls until `sql` counts `want`.
fn wait_count(pg: &PgServer, sql: &str, want: i64) {
    let deadline = Instant::now() + common::SETTLE;
    loop {
        let n = count(pg, sql);
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n}, want {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One request with one resource (service) per span.
fn request(spans: Vec<(&str, Span)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: spans
            .into_iter()
            .map(|(service, span)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![str_kv("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

#[test]
fn rows_equal_what_the_sdk_sent_and_a_replay_adds_nothing() {
    let pg = shared();
    let (http, grpc) = (free_port(), free_port());
    let sg = Spangate::start(&config(http, grpc, &pg.dsn(), "sdk", ""));
    let sent = send_with_sdk(Otlp::Grpc, grpc, 25, None);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        50.0,
    );
    assert_eq!(count(pg, "SELECT count(*) FROM sdk.spans"), 50);
    for t in &sent {
        let rows = pg.query(&format!(
            "SELECT span_id, parent_span_id, service_name, kind, status_code, duration_ns,
                    attributes, resource_attributes, events, links, scope_name
               FROM sdk.spans WHERE trace_id = '{}' ORDER BY parent_span_id NULLS FIRST",
            hex(&t.trace_id)
        ));
        assert_eq!(rows.len(), 2);
        let (root, child) = (&rows[0], &rows[1]);
        assert_eq!(root.get::<_, String>(0), hex(&t.root_span_id));
        assert_eq!(root.get::<_, Option<String>>(1), None);
        assert_eq!(child.get::<_, String>(0), hex(&t.child_span_id));
        assert_eq!(
            child.get::<_, Option<String>>(1),
            Some(hex(&t.root_span_id))
        );
        assert_eq!(root.get::<_, String>(2), "checkout");
        assert_eq!(root.get::<_, String>(3), "server");
        assert!(root.get::<_, i64>(5) >= 0);
        assert_eq!(
            root.get::<_, Option<String>>(10).as_deref(),
            Some("spangate-tests")
        );
    }
    // Attribute values keep their JSON types.
    let typed = pg.query(
        "SELECT jsonb_typeof(attributes->'http.response.status_code'), jsonb_typeof(attributes->'ratio'),
                jsonb_typeof(attributes->'cached'), attributes->>'http.request.method',
                resource_attributes->>'deployment.environment'
           FROM sdk.spans WHERE kind = 'server' LIMIT 1",
    );
    let row = &typed[0];
    let got: Vec<String> = (0..5).map(|i| row.get(i)).collect();
    assert_eq!(got, ["number", "number", "boolean", "GET", "test"]);
    // Each child has an event; each but the first links to the previous trace.
    assert_eq!(
        count(
            pg,
            "SELECT count(*) FROM sdk.spans WHERE jsonb_array_length(events) = 1"
        ),
        25
    );
    assert_eq!(
        count(
            pg,
            "SELECT count(*) FROM sdk.spans WHERE jsonb_array_length(links) = 1"
        ),
        24
    );

    // The same spans again (a replay after a lost acknowledgement) store nothing new.
    let span = |i: u8| Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: "replayed".into(),
        ..Default::default()
    };
    let body = request((1..=10).map(|i| ("svc", span(i))).collect());
    post_otlp(http, &body);
    post_otlp(http, &body);
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        70.0,
    );
    assert_eq!(count(pg, "SELECT count(*) FROM sdk.spans"), 60);
}

fn chain_span(trace: u8, id: u8, parent: u8, error: bool) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
        name: format!("op{id}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + id as u64 * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + 100_000_000 - id as u64 * 1_000_000,
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            message: "card declined".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn service_edges_follow_a_four_service_chain_and_the_tree_prints() {
    let pg = shared();
    let (http, grpc) = (free_port(), free_port());
    let sg = Spangate::start(&config(http, grpc, &pg.dsn(), "edges", ""));
    // frontend -> checkout -> (checkout internal) -> payment -> ledger; ledger errors.
    // Ten traces; the children arrive first and the parents in a later request, so edges
    // must be found across batches.
    for t in 1..=10u8 {
        post_otlp(
            http,
            &request(vec![
                ("payment", chain_span(t, 4, 3, false)),
                ("ledger", chain_span(t, 5, 4, true)),
            ]),
        );
        post_otlp(
            http,
            &request(vec![
                ("frontend", chain_span(t, 1, 0, false)),
                ("checkout", chain_span(t, 2, 1, false)),
                ("checkout", chain_span(t, 3, 2, false)),
            ]),
        );
    }
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        50.0,
    );
    // A replay of one request changes no count.
    post_otlp(
        http,
        &request(vec![
            ("payment", chain_span(1, 4, 3, false)),
            ("ledger", chain_span(1, 5, 4, true)),
        ]),
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        52.0,
    );
    let edges: Vec<(String, String, i64, i64)> = pg
        .query(
            "SELECT parent_service, child_service, call_count, error_count
               FROM edges.service_edges ORDER BY parent_service",
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let want = [
        ("checkout", "payment", 10, 0),
        ("frontend", "checkout", 10, 0),
        ("payment", "ledger", 10, 10),
    ];
    assert_eq!(
        edges,
        want.map(|(a, b, c, e)| (a.to_string(), b.to_string(), c, e))
    );

    // The query commands read it back.
    let bin = env!("CARGO_BIN_EXE_spangate");
    let out = Command::new(bin)
        .args(["traces", "get", &hex(&[3; 16]), "--schema", "edges"])
        .env("SPANGATE_DSN", pg.dsn())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let want_tree = format!(
        "trace {}: 5 spans, 4 services, 1 errors
frontend  op1  98.0ms
  checkout  op2  96.0ms
    checkout  op3  94.0ms
      payment  op4  92.0ms
        ledger  op5  90.0ms  [error: card declined]
",
        hex(&[3; 16])
    );
    assert_eq!(tree, want_tree);
    let out = Command::new(bin)
        .args([
            "traces",
            "list",
            "--service",
            "ledger",
            "--since",
            "100000d",
            "--schema",
            "edges",
            "--dsn",
        ])
        .arg(pg.dsn())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 11, "{list}");
    assert!(lines[0].starts_with("TRACE_ID"), "{list}");
    assert!(
        lines[1..].iter().all(|l| l.contains("2023-11-14 22:13:20")
            && l.contains("    5       1")
            && l.ends_with("frontend op1")),
        "{list}"
    );
    // A trace that is not there, and a malformed id, are clear errors.
    for (id, msg) in [
        (hex(&[0xee; 16]), "not found"),
        ("xyz".to_string(), "is not a trace id"),
    ] {
        let out = Command::new(bin)
            .args(["traces", "get", &id, "--schema", "edges", "--dsn"])
            .arg(pg.dsn())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(msg));
    }
}

#[test]
fn a_span_postgres_refuses_fails_alone() {
    let pg = shared();
    let (http, grpc) = (free_port(), free_port());
    let sg = Spangate::start(&config(http, grpc, &pg.dsn(), "bad", ""));
    let mut spans: Vec<(&str, Span)> = (1..=9u8)
        .map(|i| ("svc", chain_span(i, i, 0, false)))
        .collect();
    // Postgres text cannot hold NUL.
    spans[4].1.name = "nul\0byte".into();
    post_otlp(http, &request(spans));
    sg.wait_metric(
        "spangate_exporter_send_failed_spans_total",
        &[("exporter", "postgres")],
        1.0,
    );
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        8.0,
    );
    assert_eq!(count(pg, "SELECT count(*) FROM bad.spans"), 8);
    assert!(
        sg.logs().contains("postgres refused a span"),
        "{}",
        sg.logs()
    );
}

#[test]
fn migrations_are_idempotent_and_safe_concurrently() {
    let pg = shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let applied: Vec<usize> = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let dsn = pg.dsn();
            tasks.push(tokio::spawn(async move {
                let (mut client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                spangate::exporters::postgres::schema::migrate(&mut client, "concurrent")
                    .await
                    .unwrap()
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert_eq!(applied.iter().sum::<usize>(), 1, "{applied:?}");
    assert_eq!(
        count(pg, "SELECT count(*) FROM concurrent.spangate_migrations"),
        1
    );
    // Indexes for the common queries exist.
    let indexes: Vec<String> = pg
        .query("SELECT indexname FROM pg_indexes WHERE schemaname = 'concurrent' ORDER BY 1")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexes,
        [
            "service_edges_pkey",
            "spangate_migrations_pkey",
            "spans_pkey",
            "spans_service_time",
            "spans_session",
            "spans_start_time"
        ]
    );
}

#[test]
fn database_down_mid_run_loses_nothing() {
    // Its own server: this test stops it.
    let pg = PgServer::start();
    let (http, grpc) = (free_port(), free_port());
    let sg = Spangate::start(&config(http, grpc, &pg.dsn(), "down", ""));
    let batch = |from: u8| {
        request(
            (from..from + 10)
                .map(|i| ("svc", chain_span(i, i, 0, false)))
                .collect(),
        )
    };
    post_otlp(http, &batch(1));
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        10.0,
    );
    pg.stop();
    post_otlp(http, &batch(11));
    post_otlp(http, &batch(21));
    // Held and retried while the database is away.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sg.metric(
            "spangate_exporter_sent_spans_total",
            &[("exporter", "postgres")]
        ),
        10.0
    );
    assert_eq!(
        sg.metric(
            "spangate_exporter_send_failed_spans_total",
            &[("exporter", "postgres")]
        ),
        0.0
    );
    pg.start_again();
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        30.0,
    );
    wait_count(&pg, "SELECT count(*) FROM down.spans", 30);
    assert!(sg.logs().contains("postgres"), "{}", sg.logs());
}

#[test]
fn retention_deletes_old_spans_in_the_background() {
    let pg = shared();
    let (http, grpc) = (free_port(), free_port());
    let sg = Spangate::start(&config(
        http,
        grpc,
        &pg.dsn(),
        "retained",
        "    retention: 1h",
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let at = |i: u8, start: u64| Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: "op".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1000,
        ..Default::default()
    };
    // Three spans from 2023, two from now.
    let spans = vec![
        ("svc", at(1, 1_700_000_000_000_000_000)),
        ("svc", at(2, 1_700_000_000_000_000_000)),
        ("svc", at(3, 1_700_000_000_000_000_000)),
        ("svc", at(4, now)),
        ("svc", at(5, now)),
    ];
    post_otlp(http, &request(spans));
    sg.wait_metric(
        "spangate_exporter_sent_spans_total",
        &[("exporter", "postgres")],
        5.0,
    );
    wait_count(pg, "SELECT count(*) FROM retained.spans", 2);
    assert!(
        sg.logs().contains("postgres retention removed old spans"),
        "{}",
        sg.logs()
    );
}
