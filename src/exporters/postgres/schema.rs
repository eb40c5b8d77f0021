//! Tables and indexes, as numbered migrations recorded in `<schema>.spangate_migrations`. Each
//! run takes a transaction-scoped advisory lock first, so instances starting together apply
//! every migration exactly once; a migration never edits an earlier one.

use tokio_postgres::Client;

/// `{s}` is the quoted schema.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE {s}.spans (
    trace_id            text        NOT NULL,
    span_id             text        NOT NULL,
    parent_span_id      text,
    service_name        text        NOT NULL,
    name                text        NOT NULL,
    kind                text        NOT NULL,
    start_time          timestamptz NOT NULL,
    end_time            timestamptz NOT NULL,
    duration_ns         bigint      NOT NULL,
    status_code         text        NOT NULL,
    status_message      text,
    session_id          text,
    scope_name          text,
    scope_version       text,
    trace_state         text,
    attributes          jsonb       NOT NULL,
    resource_attributes jsonb       NOT NULL,
    events              jsonb       NOT NULL,
    links               jsonb       NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_service_time ON {s}.spans (service_name, start_time DESC);
CREATE INDEX spans_session ON {s}.spans (session_id, start_time) WHERE session_id IS NOT NULL;
CREATE INDEX spans_start_time ON {s}.spans USING brin (start_time);
CREATE TABLE {s}.service_edges (
    parent_service text        NOT NULL,
    child_service  text        NOT NULL,
    call_count     bigint      NOT NULL DEFAULT 0,
    error_count    bigint      NOT NULL DEFAULT 0,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (parent_service, child_service)
);
"#,
)];

/// The columns written, in order (the COPY and the staging insert use this list).
pub const COLUMNS: &str = "trace_id, span_id, parent_span_id, service_name, name, kind, start_time, end_time, duration_ns, status_code, status_message, session_id, scope_name, scope_version, trace_state, attributes, resource_attributes, events, links";

/// Advisory lock class for migrations (the second key is the schema's hash).
const MIGRATION_LOCK: i32 = 0x5367_0001;

pub fn quote(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// Applies the migrations not yet recorded; returns how many it applied.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<usize, tokio_postgres::Error> {
    let s = quote(schema);
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&MIGRATION_LOCK, &schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
         CREATE TABLE IF NOT EXISTS {s}.spangate_migrations (
             version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await?;
    let current: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {s}.spangate_migrations"),
            &[],
        )
        .await?
        .get(0);
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(&sql.replace("{s}", &s)).await?;
        tx.execute(
            &format!("INSERT INTO {s}.spangate_migrations (version) VALUES ($1)"),
            &[version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}
