//! The `postgres` exporter: spans into `<schema>.spans`, the cross-service call graph into
//! `<schema>.service_edges`.
//!
//! A batch is written with binary COPY into a per-connection staging table, then moved with
//! `INSERT ... ON CONFLICT DO NOTHING`, so a replayed batch stores nothing twice. The same
//! statement counts the parent/child pairs it completes (a new span with its parent or
//! children already stored, or arriving with it) into `service_edges`; a transaction-scoped
//! advisory lock around it makes concurrent writers see each other's spans, so every pair is
//! counted exactly once. Data Postgres refuses (e.g. a NUL byte in a string) fails only the
//! spans that carry it: the batch is halved until they are found, and the rest lands.

pub mod config;
pub mod encode;
pub mod pool;
pub mod query;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::attrs::str_attr;
use crate::data::SpanBatch;
use config::PostgresExporterConfig;
use encode::{kind_name, status_name, Attrs, Events, Hex, Jsonb, Links, Ts};
use pool::Pool;

/// Advisory lock class serializing the span insert + edge count (second key: schema hash).
const EDGE_LOCK: i32 = 0x5367_0002;

const TYPES: [Type; 19] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
];

pub struct PostgresExporter {
    pool: Arc<Pool>,
    batch_size: usize,
    session_attribute: String,
    insert_sql: String,
    retention: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for PostgresExporter {
    fn drop(&mut self) {
        if let Some(t) = &self.retention {
            t.abort();
        }
    }
}

/// One span with what it inherits from its resource and scope.
struct Row<'a> {
    service: &'a str,
    session: Option<&'a str>,
    resource: &'a [KeyValue],
    scope: Option<&'a InstrumentationScope>,
    span: &'a Span,
}

/// Postgres refused the data itself: retrying the same rows cannot help.
fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("22") || c.starts_with("23") || c.starts_with("54")
    })
}

fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {e}"),
    }
}

fn non_empty(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

impl PostgresExporter {
    /// `timeout`: the exporter's, also the pool's connect and statement limit.
    pub fn new(cfg: &PostgresExporterConfig, id: &str, timeout: Duration) -> Result<Self, String> {
        let pg = config::parse_dsn(&cfg.dsn).map_err(|e| format!("dsn {e}"))?;
        let pool = Arc::new(Pool::new(
            pg,
            &cfg.schema,
            cfg.create_tables,
            cfg.pool_size,
            timeout,
        ));
        let s = schema::quote(&cfg.schema);
        let cols = schema::COLUMNS;
        let insert_sql = format!(
            "WITH new AS (
                INSERT INTO {s}.spans ({cols}) SELECT {cols} FROM spangate_stage
                ON CONFLICT (trace_id, span_id) DO NOTHING
                RETURNING trace_id, span_id, parent_span_id, service_name, status_code),
             pairs AS (
                SELECT p.service_name AS parent, c.service_name AS child, c.status_code AS status
                  FROM new c JOIN {s}.spans p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
                UNION ALL
                SELECT p.service_name, c.service_name, c.status_code
                  FROM new p JOIN {s}.spans c ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
                UNION ALL
                SELECT p.service_name, c.service_name, c.status_code
                  FROM new c JOIN new p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id)
             INSERT INTO {s}.service_edges AS e (parent_service, child_service, call_count, error_count)
             SELECT parent, child, count(*), count(*) FILTER (WHERE status = 'error')
               FROM pairs WHERE parent <> child GROUP BY parent, child
             ON CONFLICT (parent_service, child_service) DO UPDATE
               SET call_count = e.call_count + excluded.call_count,
                   error_count = e.error_count + excluded.error_count,
                   last_seen = now()"
        );
        let retention = match (cfg.retention, tokio::runtime::Handle::try_current()) {
            (Some(keep), Ok(rt)) => {
                Some(rt.spawn(retention_loop(Arc::downgrade(&pool), keep, id.to_string())))
            }
            _ => None,
        };
        Ok(PostgresExporter {
            pool,
            batch_size: cfg.batch_size,
            session_attribute: cfg.session_attribute.clone(),
            insert_sql,
            retention,
        })
    }

    fn rows<'a>(&self, batch: &'a SpanBatch) -> Vec<Row<'a>> {
        let mut rows = Vec::with_capacity(batch.len());
        for rs in batch.resource_spans() {
            let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
            let service = str_attr(resource, "service.name").unwrap_or("unknown_service");
            let resource_session = str_attr(resource, &self.session_attribute);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    rows.push(Row {
                        service,
                        session: str_attr(&span.attributes, &self.session_attribute)
                            .or(resource_session),
                        resource,
                        scope: ss.scope.as_ref(),
                        span,
                    });
                }
            }
        }
        rows
    }

    /// Writes `rows` in one transaction.
    async fn write(&self, rows: &[Row<'_>]) -> Result<(), tokio_postgres::Error> {
        let mut conn = self.pool.get().await?;
        let tx = conn.client().transaction().await?;
        let sink = tx
            .copy_in(&format!(
                "COPY spangate_stage ({}) FROM STDIN BINARY",
                schema::COLUMNS
            ))
            .await?;
        let writer = BinaryCopyInWriter::new(sink, &TYPES);
        tokio::pin!(writer);
        for r in rows {
            let s = r.span;
            let status = s.status.as_ref();
            let parent = (!s.parent_span_id.is_empty()).then_some(Hex(&s.parent_span_id));
            let values: [&(dyn ToSql + Sync); 19] = [
                &Hex(&s.trace_id),
                &Hex(&s.span_id),
                &parent,
                &r.service,
                &s.name.as_str(),
                &kind_name(s.kind),
                &Ts(s.start_time_unix_nano),
                &Ts(s.end_time_unix_nano),
                &(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as i64),
                &status_name(status.map_or(0, |st| st.code)),
                &status.and_then(|st| non_empty(&st.message)),
                &r.session,
                &r.scope.and_then(|sc| non_empty(&sc.name)),
                &r.scope.and_then(|sc| non_empty(&sc.version)),
                &non_empty(&s.trace_state),
                &Jsonb(Attrs(&s.attributes)),
                &Jsonb(Attrs(r.resource)),
                &Jsonb(Events(&s.events)),
                &Jsonb(Links(&s.links)),
            ];
            writer.as_mut().write(&values).await?;
        }
        writer.finish().await?;
        let schema = self.pool.schema();
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&EDGE_LOCK, &schema],
        )
        .await?;
        tx.execute(self.insert_sql.as_str(), &[]).await?;
        tx.commit().await
    }

    async fn export_batch(&self, batch: &SpanBatch) -> Result<(), ExportError> {
        let rows = self.rows(batch);
        let mut work: Vec<(usize, usize)> = (0..rows.len())
            .step_by(self.batch_size)
            .map(|a| (a, (a + self.batch_size).min(rows.len())))
            .rev()
            .collect();
        let (mut rejected, mut last_reason) = (0u64, String::new());
        while let Some((a, b)) = work.pop() {
            match self.write(&rows[a..b]).await {
                Ok(()) => {}
                Err(e) if is_data_error(&e) => {
                    if b - a > 1 {
                        let m = a + (b - a) / 2;
                        work.push((m, b));
                        work.push((a, m));
                        continue;
                    }
                    let s = rows[a].span;
                    last_reason = reason(&e);
                    tracing::warn!(
                        trace_id = %crate::data::json::to_hex(&s.trace_id),
                        span_id = %crate::data::json::to_hex(&s.span_id),
                        reason = %last_reason,
                        "postgres refused a span"
                    );
                    rejected += 1;
                }
                // Rows already written are kept: the retry re-sends them and they are skipped.
                Err(e) => {
                    return Err(ExportError::Retryable {
                        reason: reason(&e),
                        retry_after: None,
                    })
                }
            }
        }
        if rejected > 0 {
            return Err(ExportError::Permanent {
                reason: last_reason,
                rejected: Some(rejected),
            });
        }
        Ok(())
    }
}

impl Exporter for PostgresExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export_batch(batch))
    }
}

/// Deletes spans older than `keep` in small batches, so no long lock or huge transaction:
/// shortly after start, then every minute.
async fn retention_loop(pool: std::sync::Weak<Pool>, keep: Duration, id: String) {
    const FIRST: Duration = Duration::from_secs(5);
    const EVERY: Duration = Duration::from_secs(60);
    const CHUNK: i64 = 5000;
    let mut wait = FIRST;
    loop {
        tokio::time::sleep(wait).await;
        wait = EVERY;
        let Some(pool) = pool.upgrade() else { return };
        let sql = format!(
            "DELETE FROM {s}.spans WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM {s}.spans
                  WHERE start_time < now() - make_interval(secs => $1) LIMIT $2))",
            s = schema::quote(pool.schema())
        );
        let mut deleted = 0u64;
        loop {
            let result = match pool.get().await {
                Ok(mut conn) => {
                    conn.client()
                        .execute(sql.as_str(), &[&keep.as_secs_f64(), &CHUNK])
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => {
                    deleted += n;
                    if n < CHUNK as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(exporter = %id, error = %e, "postgres retention delete failed");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(exporter = %id, deleted, "postgres retention removed old spans");
        }
    }
}
