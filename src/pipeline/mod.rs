//! Building the running graph from a checked config, and taking it down.
//!
//! Graph rules follow the OpenTelemetry Collector: a receiver id is one instance feeding every
//! pipeline that names it; processors are instanced per pipeline; an exporter id is one instance
//! with one queue shared by its pipelines.

pub mod config;
pub mod graph;
pub mod queue;
pub mod segment;
pub mod shutdown;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::component::{
    BuildError, ExporterContext, Processor, ProcessorContext, ReceiverContext, RunningReceiver,
};
use crate::component::{ListenerPool, SessionLink, StateRegistry};
use crate::config::ComponentId;
use crate::telemetry::Telemetry;
pub use config::{load, load_sources, Config, Source};
pub use graph::PipelineSpec;
pub use segment::{Fanout, Head, Hop, Inline, Segment};

/// A started graph. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    receivers: Vec<(ComponentId, RunningReceiver)>,
    /// Staged processor tasks, in build order (upstream stages of a pipeline after downstream).
    stages: Vec<(String, JoinHandle<()>)>,
    /// Exporter queue consumers.
    exporters: Vec<(ComponentId, JoinHandle<()>)>,
}

/// Starts exporters, then pipelines, then receivers (so nothing is accepted before it has
/// somewhere to go).
pub async fn start(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    listeners: &Arc<ListenerPool>,
    state: &Arc<StateRegistry>,
) -> Result<Running, BuildError> {
    let mut running = Running {
        receivers: Vec::new(),
        stages: Vec::new(),
        exporters: Vec::new(),
    };
    match build(config, telemetry, listeners, state, &mut running).await {
        Ok(()) => Ok(running),
        Err(e) => {
            // Nothing was accepted yet; take down what started.
            running.shutdown(std::time::Duration::from_secs(5)).await;
            Err(e)
        }
    }
}

async fn build(
    config: &Config,
    telemetry: &Arc<Telemetry>,
    listeners: &Arc<ListenerPool>,
    state: &Arc<StateRegistry>,
    running: &mut Running,
) -> Result<(), BuildError> {
    let mut exporters = BTreeMap::new();
    for spec in &config.pipelines {
        for id in &spec.exporters {
            if exporters.contains_key(id) {
                continue;
            }
            let cfg = &config.exporters[id];
            let settings = config.exporter_settings[id].clone();
            let ctx = ExporterContext {
                id: id.clone(),
                telemetry: telemetry.clone(),
                timeout: settings.timeout,
            };
            let exporter = cfg.build(&ctx)?;
            let (handle, task) = crate::pipeline::queue::start(id, exporter, settings, telemetry)
                .map_err(|e| BuildError::new(id, e))?;
            running.exporters.push((id.clone(), task));
            exporters.insert(id.clone(), handle);
        }
    }

    let mut heads: BTreeMap<ComponentId, Head> = BTreeMap::new();
    for spec in &config.pipelines {
        let pipeline = spec.id.to_string();
        let mut hop = Hop::Exporters(
            spec.exporters
                .iter()
                .map(|e| exporters[e].clone())
                .collect(),
        );
        let mut inline: Vec<Inline> = Vec::new();
        // Kept across reloads like processor state: a tail sampler whose store survives a
        // reload still reaches the session index through it.
        let session = state
            .reuse_or_insert(
                &format!("session-link:{}", spec.id),
                (),
                SessionLink::default,
            )
            .0;
        // Walk back from the exporters: inline processors gather in front of the current hop
        // until a staged processor takes them (and the hop) as its output.
        for id in spec.processors.iter().rev() {
            let ctx = ProcessorContext {
                id: id.clone(),
                pipeline: spec.id.clone(),
                telemetry: telemetry.clone(),
                state: state.clone(),
                session: session.clone(),
            };
            let label = id.to_string();
            match config.processors[id].build(&ctx)? {
                Processor::Inline(p) => inline.insert(
                    0,
                    Inline {
                        refused_late: telemetry.metrics.processor_dropped(&label, "refused"),
                        id: label,
                        processor: p,
                    },
                ),
                Processor::Staged(p) => {
                    let (tx, rx) = mpsc::channel(p.input_capacity().max(1));
                    let output = Segment {
                        inline: std::mem::take(&mut inline),
                        next: hop,
                    };
                    let durable = p.holds_briefly() && output.durable();
                    let task = tokio::spawn(p.run(rx, Box::new(output)));
                    running.stages.push((format!("{pipeline}/{label}"), task));
                    hop = Hop::Stage {
                        tx,
                        loss: telemetry.metrics.processor_dropped(&label, "shutdown"),
                        durable,
                    };
                }
            }
        }
        heads.insert(
            spec.id.clone(),
            Head {
                inflight: telemetry.metrics.pipeline_inflight(&pipeline),
                exporters: spec
                    .exporters
                    .iter()
                    .map(|e| exporters[e].clone())
                    .collect(),
                pipeline,
                segment: Segment { inline, next: hop },
            },
        );
    }
    // Upstream stages must stop first at shutdown: reverse so pipelines' first stages lead.
    running.stages.reverse();

    // Fan-in: a pipeline named by several receivers shares one head between their fan-outs.
    let mut per_receiver: BTreeMap<ComponentId, Vec<ComponentId>> = BTreeMap::new();
    for spec in &config.pipelines {
        for r in &spec.receivers {
            per_receiver
                .entry(r.clone())
                .or_default()
                .push(spec.id.clone());
        }
    }
    let heads = share_heads(heads, &per_receiver);
    for (rid, fanout) in heads {
        let cfg = &config.receivers[&rid];
        let ctx = ReceiverContext {
            id: rid.clone(),
            fanout: Arc::new(fanout),
            telemetry: telemetry.clone(),
            listeners: listeners.clone(),
        };
        let started = cfg.start(ctx).await?;
        tracing::info!(receiver = %rid, "receiver started");
        running.receivers.push((rid, started));
    }
    Ok(())
}

/// Gives every receiver a Fanout over the heads of its pipelines.
fn share_heads(
    heads: BTreeMap<ComponentId, Head>,
    per_receiver: &BTreeMap<ComponentId, Vec<ComponentId>>,
) -> BTreeMap<ComponentId, Fanout> {
    let heads: BTreeMap<ComponentId, Arc<Head>> =
        heads.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
    per_receiver
        .iter()
        .map(|(rid, pipelines)| {
            let fanout = Fanout {
                heads: pipelines.iter().map(|p| heads[p].clone()).collect(),
            };
            (rid.clone(), fanout)
        })
        .collect()
}
