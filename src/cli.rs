//! Command line: `spangate [--config PATH]...`, `spangate validate --config PATH`, and
//! `spangate traces get|list` over the tables of the `postgres` exporter.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "spangate",
    version,
    about = "A fast, lean OpenTelemetry trace pipeline"
)]
pub struct Cli {
    /// Config file; give it again to merge more files over it (maps merge, lists replace).
    #[arg(long = "config", short = 'c', global = true, value_name = "PATH")]
    pub config: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipelines (the default).
    Run,
    /// Check the config: exit 0 if it would start, else print every problem and exit 1.
    Validate,
    /// Read traces back from the `postgres` exporter's tables.
    #[command(subcommand)]
    Traces(TracesCommand),
    /// Exit 0 when a running spangate's health endpoint answers 200 (for container HEALTHCHECKs,
    /// where images have no curl).
    Healthcheck {
        /// The `service.telemetry.metrics.address` of the instance to ask.
        #[arg(long, default_value = "127.0.0.1:8888")]
        address: String,
        /// `/healthz` (alive) or `/readyz` (accepting data).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
}

/// GETs `path` from `address` with a short timeout; the exit code for `spangate healthcheck`.
pub fn healthcheck(address: &str, path: &str) -> i32 {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let timeout = Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let addr = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200") => 0,
        Ok(text) => {
            eprintln!("unhealthy: {}", text.lines().next().unwrap_or(""));
            1
        }
        Err(e) => {
            eprintln!("unhealthy: {address}{path}: {e}");
            1
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Db {
    /// Postgres connection string (default: $SPANGATE_DSN, which keeps the password out of `ps`).
    #[arg(long)]
    pub dsn: Option<String>,
    /// Schema the exporter writes to.
    #[arg(long, default_value = "public")]
    pub schema: String,
}

#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// Print one trace as an indented tree: service, span, duration, status.
    Get {
        /// 32 hex characters.
        trace_id: String,
        #[command(flatten)]
        db: Db,
    },
    /// List recent traces of a service with span and error counts.
    List {
        /// Traces with at least one span of this service.
        #[arg(long)]
        service: String,
        /// How far back, e.g. 15m, 2h, 1d.
        #[arg(long, default_value = "15m", value_parser = crate::config::duration::parse)]
        since: std::time::Duration,
        /// Most traces shown, newest first.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(flatten)]
        db: Db,
    },
}

impl TracesCommand {
    /// Runs the query and prints the result; returns the exit code.
    #[cfg(not(feature = "postgres"))]
    pub fn run(&self) -> i32 {
        eprintln!(
            "error: this spangate was built without the postgres exporter (cargo feature `postgres`)"
        );
        2
    }

    /// Runs the query and prints the result; returns the exit code.
    #[cfg(feature = "postgres")]
    pub fn run(&self) -> i32 {
        use crate::exporters::postgres::query;
        let db = match self {
            TracesCommand::Get { db, .. } | TracesCommand::List { db, .. } => db,
        };
        let Some(dsn) = db
            .dsn
            .clone()
            .or_else(|| std::env::var("SPANGATE_DSN").ok())
        else {
            eprintln!("error: give --dsn or set SPANGATE_DSN");
            return 2;
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return 1;
            }
        };
        let result = runtime.block_on(async {
            let client = query::connect(&dsn).await?;
            match self {
                TracesCommand::Get { trace_id, .. } => {
                    query::trace_tree(&client, &db.schema, trace_id).await
                }
                TracesCommand::List {
                    service,
                    since,
                    limit,
                    ..
                } => query::list_traces(&client, &db.schema, service, *since, *limit).await,
            }
        });
        match result {
            Ok(text) => {
                print!("{text}");
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        }
    }
}

impl Cli {
    pub fn config_paths(&self) -> Vec<PathBuf> {
        if self.config.is_empty() {
            vec![PathBuf::from("pipelines.yaml")]
        } else {
            self.config.clone()
        }
    }
}
