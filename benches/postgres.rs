//! The postgres exporter's write path against a local PostgreSQL server: spans/s through the
//! exporter (binary COPY into staging, INSERT ... ON CONFLICT, service_edges) next to a plain
//! row-by-row INSERT of the same rows, measured in the same run.
//! Run: `cargo bench --bench postgres` (`-- --spans N`). Uses `$SPANGATE_BENCH_DSN`, else
//! starts a throwaway server with initdb/pg_ctl.

mod common;
// The tests' harness, for its Postgres server.
#[path = "../tests/common/mod.rs"]
mod harness;

use std::time::Instant;

use spangate::data::SpanBatch;
use spangate::exporters::postgres::encode::{Attrs, Events, Hex, Jsonb, Links, Ts};

const BATCH: usize = 5000;

fn main() {
    // `cargo test --benches` runs this without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("postgres: run with `cargo bench --bench postgres`");
        return;
    }
    let total = common::arg("--spans", 200_000) as usize;
    let server;
    let dsn = match std::env::var("SPANGATE_BENCH_DSN") {
        Ok(d) => d,
        Err(_) => {
            server = harness::postgres::PgServer::start();
            server.dsn()
        }
    };
    // Batches of BATCH spans, distinct trace ids across the run.
    let batches: Vec<SpanBatch> = (0..total / BATCH)
        .map(|b| {
            SpanBatch::new(
                (0..BATCH / 100)
                    .flat_map(|r| common::request((b * BATCH / 100 + r) as u64, 100).resource_spans)
                    .collect(),
            )
        })
        .collect();
    let n: usize = batches.iter().map(|b| b.len()).sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute("DROP SCHEMA IF EXISTS bench_copy CASCADE; DROP SCHEMA IF EXISTS bench_rows CASCADE")
            .await
            .unwrap();

        // 1. The exporter, one batch at a time (as one sending-queue consumer does).
        let cfg = serde_json::json!({ "dsn": dsn, "schema": "bench_copy", "batch_size": BATCH });
        let exporter = spangate::exporters::postgres::config::parse(&cfg)
            .expect("config")
            .build(&spangate::component::ExporterContext {
                id: spangate::config::id::ComponentId::parse("postgres").unwrap(),
                telemetry: std::sync::Arc::new(spangate::telemetry::Telemetry::default()),
                timeout: spangate::settings::queue::default_timeout(),
            })
            .expect("exporter");
        exporter.export(&batches[0]).await.expect("warm-up");
        let t = Instant::now();
        for b in &batches[1..] {
            exporter.export(b).await.expect("export");
        }
        let copy_rate = (n - BATCH) as f64 / t.elapsed().as_secs_f64();

        // 2. The same rows with one INSERT statement per span, a transaction per batch.
        let mut client = client;
        spangate::exporters::postgres::schema::migrate(&mut client, "bench_rows")
            .await
            .unwrap();
        let insert = client
            .prepare(&format!(
                "INSERT INTO bench_rows.spans ({}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) ON CONFLICT DO NOTHING",
                spangate::exporters::postgres::schema::COLUMNS
            ))
            .await
            .unwrap();
        let t = Instant::now();
        for b in &batches[1..] {
            let tx = client.transaction().await.unwrap();
            for rs in b.resource_spans() {
                let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
                for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                    let parent = (!s.parent_span_id.is_empty()).then_some(Hex(&s.parent_span_id));
                    tx.execute(
                        &insert,
                        &[
                            &Hex(&s.trace_id),
                            &Hex(&s.span_id),
                            &parent,
                            &"svc",
                            &s.name.as_str(),
                            &"server",
                            &Ts(s.start_time_unix_nano),
                            &Ts(s.end_time_unix_nano),
                            &(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as i64),
                            &"unset",
                            &None::<&str>,
                            &None::<&str>,
                            &None::<&str>,
                            &None::<&str>,
                            &None::<&str>,
                            &Jsonb(Attrs(&s.attributes)),
                            &Jsonb(Attrs(resource)),
                            &Jsonb(Events(&s.events)),
                            &Jsonb(Links(&s.links)),
                        ],
                    )
                    .await
                    .unwrap();
                }
            }
            tx.commit().await.unwrap();
        }
        let row_rate = (n - BATCH) as f64 / t.elapsed().as_secs_f64();
        println!(
            "postgres: {} spans in batches of {BATCH}: exporter (COPY) {:.0} spans/s, row-by-row INSERT {:.0} spans/s, ratio {:.1}x",
            n - BATCH,
            copy_rate,
            row_rate,
            copy_rate / row_rate
        );
    });
}
