//! Lifecycle: load -> build -> run -> signals (TERM/INT drain, HUP reload).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::component::listeners::ListenerPool;
use crate::component::registry::Registry;
use crate::component::StateRegistry;
use crate::components::Builtin;
use crate::pipeline::config::{self, Config};
use crate::pipeline::{self, Running};
use crate::telemetry::server::TelemetryServer;
use crate::telemetry::{logging, Telemetry};

/// `spangate validate`: 0 when the config would start, else 1 with every problem on stderr.
pub fn validate(paths: &[PathBuf]) -> i32 {
    match config::load(paths, &Registry::builtin()) {
        Ok(c) => {
            println!(
                "config is valid: {} pipeline(s), {} receiver(s), {} processor(s), {} exporter(s)",
                c.pipelines.len(),
                c.receivers.len(),
                c.processors.len(),
                c.exporters.len()
            );
            0
        }
        Err(diags) => {
            eprintln!("{diags}");
            1
        }
    }
}

/// What is running now.
struct Active {
    config: Config,
    running: Running,
    metrics: TelemetryServer,
}

/// Runs until SIGTERM/SIGINT and a drain. A bad config at start is an error (exit 1).
pub async fn run(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let registry = Registry::builtin();
    let config = match config::load(&paths, &registry) {
        Ok(c) => c,
        Err(diags) => {
            eprintln!("{diags}");
            anyhow::bail!("invalid configuration");
        }
    };
    logging::init(
        config.service.telemetry.logs.format,
        config.service.telemetry.logs.level.as_deref(),
    );
    // tonic's TLS client takes the process default provider; ours is ring everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let telemetry = Arc::new(Telemetry::new());
    apply_memory_limit(&config.service, &telemetry);
    tokio::spawn(crate::telemetry::memory::watch(telemetry.clone()));
    let listeners = Arc::new(ListenerPool::default());
    let state = Arc::new(StateRegistry::default());
    let metrics = start_metrics(&config, &telemetry).await?;
    let running = pipeline::start(&config, &telemetry, &listeners, &state)
        .await
        .context("starting pipelines")?;
    telemetry.set_ready(true);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pipelines = config.pipelines.len(),
        "spangate started"
    );
    let mut active = Active {
        config,
        running,
        metrics,
    };

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    // Old graphs draining after reloads; waited for before exit.
    let mut draining: Vec<JoinHandle<()>> = Vec::new();
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received, draining"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received, draining"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received, reloading configuration");
                active = match reload(active, &paths, &registry, &telemetry, &listeners, &state).await {
                    (a, Some(old)) => { draining.push(old); a }
                    (a, None) => a,
                };
                draining.retain(|h| !h.is_finished());
            }
        }
    }

    telemetry.set_ready(false);
    let timeout = active.config.service.shutdown_timeout;
    listeners.retain(&[]);
    active.running.shutdown(timeout).await;
    for h in draining {
        let _ = h.await;
    }
    active.metrics.stop().await;
    tracing::info!("spangate stopped");
    Ok(())
}

async fn start_metrics(
    config: &Config,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<TelemetryServer> {
    let addr: SocketAddr = config
        .service
        .metrics_address()
        .context("service.telemetry.metrics.address")?;
    TelemetryServer::start(addr, telemetry.clone())
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))
}

/// Swaps in a new graph; on any problem keeps the old one running. Returns the old graph's
/// drain task when the swap happened.
async fn reload(
    mut active: Active,
    paths: &[PathBuf],
    registry: &Registry,
    telemetry: &Arc<Telemetry>,
    listeners: &Arc<ListenerPool>,
    state: &Arc<StateRegistry>,
) -> (Active, Option<JoinHandle<()>>) {
    let config = match config::load(paths, registry) {
        Ok(c) => c,
        Err(diags) => {
            tracing::error!("reload failed, keeping the running configuration:\n{diags}");
            return (active, None);
        }
    };
    // The new graph starts beside the old one (receivers share the kept sockets), so no
    // connection is refused and no accepted span is lost during the swap.
    let running = match pipeline::start(&config, telemetry, listeners, state).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reload failed, keeping the running configuration");
            return (active, None);
        }
    };
    let old = std::mem::replace(&mut active.running, running);
    apply_memory_limit(&config.service, telemetry);
    let old_timeout = active.config.service.shutdown_timeout;
    let drain = tokio::spawn(async move { old.shutdown(old_timeout).await });

    if config.service.metrics_address() != active.config.service.metrics_address() {
        match start_metrics(&config, telemetry).await {
            Ok(server) => {
                let old = std::mem::replace(&mut active.metrics, server);
                old.stop().await;
            }
            Err(e) => tracing::error!(error = %e, "keeping the old metrics address"),
        }
    }
    let endpoints: Vec<String> = config
        .receivers
        .values()
        .flat_map(|r| r.endpoints().into_iter().map(|(_, a)| a))
        .collect();
    listeners.retain(&endpoints);
    active.config = config;
    tracing::info!("configuration reloaded");
    (active, Some(drain))
}

/// Puts the memory limit in force (configured, or derived from the cgroup), says where it comes
/// from, and shows it in `/metrics`.
fn apply_memory_limit(service: &crate::config::ServiceConfig, telemetry: &Telemetry) {
    use crate::telemetry::memory::{effective_limit, LimitSource, CGROUP_SHARE_PERCENT};
    let limit = effective_limit(service.memory_limit_mib);
    telemetry.memory.configure(
        limit.as_ref().map(|(b, _)| *b),
        service.memory_spike_limit_mib,
    );
    let m = &telemetry.metrics;
    m.memory_limit()
        .set(limit.as_ref().map_or(0, |(b, _)| *b as i64));
    match &limit {
        None if service.memory_limit_mib == Some(0) => {
            m.memory_cgroup_limit().set(0);
            tracing::warn!("memory_limit_mib: 0: no memory limit; a flood can exhaust memory")
        }
        None => {
            m.memory_cgroup_limit().set(0);
            tracing::warn!(
                "no memory limit: service.memory_limit_mib is unset and the cgroup has none; \
                 a flood can exhaust memory (set memory_limit_mib)"
            )
        }
        Some((bytes, LimitSource::Config)) => {
            tracing::info!(
                limit_mib = bytes >> 20,
                "memory limit from service.memory_limit_mib"
            )
        }
        Some((bytes, LimitSource::Cgroup { limit, file })) => {
            m.memory_cgroup_limit().set(*limit as i64);
            tracing::info!(
                limit_mib = bytes >> 20,
                cgroup_limit_mib = limit >> 20,
                file = %file.display(),
                "memory limit derived from the cgroup ({CGROUP_SHARE_PERCENT}% of it; set service.memory_limit_mib to choose)"
            )
        }
    }
}
