//! What `spangate traces get|list` prints from the tables the exporter writes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::config::{parse_dsn, valid_identifier};
use super::schema::quote;
use crate::config::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("--dsn {0}")]
    Dsn(String),
    #[error("--schema must be a plain identifier")]
    Schema,
    #[error("`{0}` is not a trace id (32 hex characters)")]
    TraceId(String),
    #[error("trace {0} not found")]
    NotFound(String),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

pub async fn connect(dsn: &str) -> Result<Client, QueryError> {
    let config = parse_dsn(&Secret::from(dsn)).map_err(QueryError::Dsn)?;
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `1.2s`, `35.1ms`, `420µs`.
pub fn human(ns: i64) -> String {
    let ns = ns.max(0) as f64;
    if ns >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        format!("{:.0}µs", ns / 1e3)
    }
}

struct Node {
    span_id: String,
    parent: Option<String>,
    service: String,
    name: String,
    duration_ns: i64,
    status: String,
    message: Option<String>,
}

/// The trace as an indented tree: `service  name  duration  [status]`, children under their
/// parent in start order; spans whose parent is missing are shown as roots.
pub async fn trace_tree(
    client: &Client,
    schema: &str,
    trace_id: &str,
) -> Result<String, QueryError> {
    if !valid_identifier(schema) {
        return Err(QueryError::Schema);
    }
    let id = trace_id.to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(QueryError::TraceId(trace_id.to_string()));
    }
    let rows = client
        .query(
            &format!(
                "SELECT span_id, parent_span_id, service_name, name, duration_ns, status_code, status_message
                   FROM {}.spans WHERE trace_id = $1 ORDER BY start_time, span_id",
                quote(schema)
            ),
            &[&id],
        )
        .await?;
    if rows.is_empty() {
        return Err(QueryError::NotFound(id));
    }
    let nodes: Vec<Node> = rows
        .iter()
        .map(|r| Node {
            span_id: r.get(0),
            parent: r.get(1),
            service: r.get(2),
            name: r.get(3),
            duration_ns: r.get(4),
            status: r.get(5),
            message: r.get(6),
        })
        .collect();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        match n.parent.as_deref().and_then(|p| index.get(p)) {
            Some(&p) if p != i => children.entry(p).or_default().push(i),
            _ => roots.push(i),
        }
    }
    let services: std::collections::HashSet<&str> =
        nodes.iter().map(|n| n.service.as_str()).collect();
    let errors = nodes.iter().filter(|n| n.status == "error").count();
    let mut out = format!(
        "trace {id}: {} spans, {} services, {} errors\n",
        nodes.len(),
        services.len(),
        errors
    );
    // Depth-first, iteratively: a deep trace must not overflow the stack.
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    let mut seen = vec![false; nodes.len()];
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        let n = &nodes[i];
        let status = match (n.status.as_str(), &n.message) {
            ("error", Some(m)) => format!("  [error: {m}]"),
            ("error", None) => "  [error]".into(),
            ("ok", _) => "  [ok]".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:indent$}{}  {}  {}{}",
            "",
            n.service,
            n.name,
            human(n.duration_ns),
            status,
            indent = depth * 2
        );
        if let Some(c) = children.get(&i) {
            stack.extend(c.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    Ok(out)
}

/// Recent traces touching `service`: start, span and error counts, duration, root span.
pub async fn list_traces(
    client: &Client,
    schema: &str,
    service: &str,
    since: Duration,
    limit: i64,
) -> Result<String, QueryError> {
    if !valid_identifier(schema) {
        return Err(QueryError::Schema);
    }
    let s = quote(schema);
    let rows = client
        .query(
            &format!(
                "WITH recent AS (
                    SELECT DISTINCT trace_id FROM {s}.spans
                     WHERE service_name = $1 AND start_time > now() - make_interval(secs => $2))
                 SELECT t.trace_id,
                        to_char(min(t.start_time) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS started,
                        count(*) AS spans,
                        count(*) FILTER (WHERE t.status_code = 'error') AS errors,
                        (extract(epoch FROM max(t.end_time) - min(t.start_time)) * 1e9)::int8 AS duration_ns,
                        coalesce((array_agg(t.service_name || ' ' || t.name ORDER BY t.start_time)
                                  FILTER (WHERE t.parent_span_id IS NULL))[1], '?') AS root
                   FROM {s}.spans t JOIN recent USING (trace_id)
                  GROUP BY t.trace_id
                  ORDER BY min(t.start_time) DESC
                  LIMIT $3"
            ),
            &[&service, &since.as_secs_f64(), &limit],
        )
        .await?;
    let mut out = format!(
        "{:<32}  {:<19}  {:>5}  {:>6}  {:>9}  ROOT\n",
        "TRACE_ID", "START (UTC)", "SPANS", "ERRORS", "DURATION"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<32}  {:<19}  {:>5}  {:>6}  {:>9}  {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2),
            r.get::<_, i64>(3),
            human(r.get::<_, i64>(4)),
            r.get::<_, String>(5),
        );
    }
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "(no traces of service {service} in the last {since:?})"
        );
    }
    Ok(out)
}
