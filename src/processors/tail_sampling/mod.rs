//! `tail_sampling`: waits `decision_wait` per trace, then keeps or drops it whole by the
//! contrib collector's policies and precedence.
//!
//! Spans are buffered by worker tasks (so insertion runs on every core, each shard locked
//! briefly); this task owns the decision timer and sends kept traces on. On input close
//! everything waiting is decided and flushed.

pub mod config;
pub mod policy;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::component::registry::{parse_config, Problems};
use crate::component::Output;
use crate::component::SessionLink;
use crate::component::{
    BoxFuture, BuildError, Processor, ProcessorConfig, ProcessorContext, StagedProcessor,
};
use crate::data::SpanBatch;
use crate::telemetry::metrics::{Counter, Gauge, Metrics};
use config::TailSamplingConfig;
use policy::{Decision, Policies};
use store::{Limits, Released, Sizing, Store};

/// Largest batch sent downstream at once.
const OUT_BATCH_SPANS: usize = 8192;

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<TailSamplingConfig>(v)?))
}

/// Every counter the sampler touches, resolved once.
pub struct TsMetrics {
    pub sampled_out: Counter,
    pub too_large: Counter,
    pub shutdown_dropped: Counter,
    pub late_sampled: Counter,
    pub late_not_sampled: Counter,
    pub early_num_traces: Counter,
    pub early_max_bytes: Counter,
    pub early_too_large: Counter,
    pub traces_kept: Counter,
    pub traces_dropped: Counter,
    pub traces_buffered: Gauge,
    pub bytes_buffered: Gauge,
    /// Traces no policy kept, kept because their session was (see the `session` processor).
    pub kept_by_session: Counter,
    /// [policy][decision] in `DECISIONS` order.
    per_policy: Vec<[Counter; 5]>,
}

const DECISIONS: [Decision; 5] = [
    Decision::Sampled,
    Decision::NotSampled,
    Decision::InvertSampled,
    Decision::InvertNotSampled,
    Decision::Dropped,
];

impl TsMetrics {
    pub fn new(m: &Metrics, processor: &str, policy_names: &[String]) -> Self {
        TsMetrics {
            sampled_out: m.processor_dropped(processor, "sampled_out"),
            too_large: m.processor_dropped(processor, "trace_too_large"),
            shutdown_dropped: m.processor_dropped(processor, "shutdown"),
            late_sampled: m.tail_sampling_late_spans(processor, "sampled"),
            late_not_sampled: m.tail_sampling_late_spans(processor, "not_sampled"),
            early_num_traces: m.tail_sampling_early_decisions(processor, "num_traces"),
            early_max_bytes: m.tail_sampling_early_decisions(processor, "max_buffered_bytes"),
            early_too_large: m.tail_sampling_early_decisions(processor, "maximum_trace_size_bytes"),
            traces_kept: m.tail_sampling_traces(processor, "kept"),
            traces_dropped: m.tail_sampling_traces(processor, "dropped"),
            traces_buffered: m.tail_sampling_traces_buffered(processor),
            kept_by_session: m.tail_sampling_policy_decisions(processor, "session", "sampled"),
            bytes_buffered: m.tail_sampling_bytes_buffered(processor),
            per_policy: policy_names
                .iter()
                .map(|p| {
                    DECISIONS.map(|d| m.tail_sampling_policy_decisions(processor, p, d.label()))
                })
                .collect(),
        }
    }

    pub fn policy_decision(&self, policy: usize, d: Decision) {
        if let (Some(row), Some(col)) = (
            self.per_policy.get(policy),
            DECISIONS.iter().position(|x| *x == d),
        ) {
            row[col].inc_by(1);
        }
    }
}

impl ProcessorConfig for TailSamplingConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Same pipeline, id and config as before a reload: take over the waiting traces.
        let key = format!("tail_sampling:{}/{}", ctx.pipeline, ctx.id);
        let session = ctx.session.clone();
        let (store, reused) = ctx.state.reuse_or_insert(&key, self.clone(), || {
            self.new_store(&ctx.telemetry.metrics, &ctx.id.to_string(), cores, session)
        });
        if reused {
            tracing::info!(processor = %ctx.id, traces = store.traces(), "tail sampling keeps its waiting traces across the reload");
        }
        let generation = store.claim();
        let tick =
            (self.decision_wait / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
        Ok(Processor::Staged(Box::new(TailSampler {
            store,
            generation,
            tick,
            workers: cores,
            drop_pending: self.drop_pending_traces_on_shutdown,
            block_on_overflow: self.block_on_overflow,
        })))
    }
}

impl TailSamplingConfig {
    fn new_store(
        &self,
        metrics: &Metrics,
        processor: &str,
        cores: usize,
        session: Arc<SessionLink>,
    ) -> Store {
        let policies = Policies::compile(&self.policies, self.sample_on_first_match);
        let metrics = TsMetrics::new(metrics, processor, &policies.names);
        let expected = (self.expected_new_traces_per_sec as f64 * self.decision_wait.as_secs_f64())
            .min(self.num_traces as f64) as usize;
        Store::new(
            policies,
            Limits {
                wait: self.decision_wait,
                after_root: self.decision_wait_after_root_received,
                num_traces: self.num_traces,
                max_bytes: self.max_buffered_bytes,
                max_trace_bytes: self.maximum_trace_size_bytes,
                block_on_overflow: self.block_on_overflow,
            },
            Sizing {
                shards: self.num_shards.unwrap_or(cores * 4),
                sampled_cache: self.decision_cache.sampled_cache_size,
                non_sampled_cache: self.decision_cache.non_sampled_cache_size,
                expected,
            },
            metrics,
            session,
        )
    }
}

pub struct TailSampler {
    store: Arc<Store>,
    /// This instance's claim on `store` (a newer one takes over after a same-config reload).
    generation: u64,
    tick: Duration,
    workers: usize,
    drop_pending: bool,
    block_on_overflow: bool,
}

impl StagedProcessor for TailSampler {
    fn input_capacity(&self) -> usize {
        64
    }

    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SpanBatch>,
        output: Box<dyn Output>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.run_loop(input, output))
    }
}

impl TailSampler {
    async fn run_loop(self, mut input: mpsc::Receiver<SpanBatch>, output: Box<dyn Output>) {
        let store = self.store;
        let slots = Arc::new(Semaphore::new(self.workers.max(1)));
        let (released_tx, mut released_rx) = mpsc::channel::<Released>(self.workers.max(1) * 2);
        let mut workers = JoinSet::new();
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        while open {
            let blocked = self.block_on_overflow && store.full();
            tokio::select! {
                Some(r) = released_rx.recv() => emit(&store, r, &*output).await,
                _ = ticker.tick() => {
                    let r = store.decide_due(Instant::now());
                    emit(&store, r, &*output).await;
                }
                msg = input.recv(), if !blocked => match msg {
                    Some(mut batch) => {
                        let Ok(permit) = slots.clone().acquire_owned().await else { break };
                        let (store, tx) = (store.clone(), released_tx.clone());
                        workers.spawn(async move {
                            // The batch's guard counts its spans as lost until they are in the
                            // store (a task aborted before it ran); from here the store counts.
                            store.adopt_gauge(batch.release_accounting());
                            let acks = batch.take_acks();
                            let spans = batch.len();
                            let r = crate::data::heavy(spans, || store.insert(&batch, &acks, Instant::now()));
                            // The batch's accounting went to the store: it drops as nothing.
                            drop(batch);
                            drop(acks);
                            // Free the slot before waiting on the loop, which may itself be
                            // waiting for a slot.
                            drop(permit);
                            if !r.kept.is_empty() {
                                let _ = tx.send(r).await;
                            }
                        });
                        while workers.try_join_next().is_some() {}
                    }
                    None => open = false,
                },
            }
        }
        // Input closed: finish insertions (emitting what they release), then decide the rest.
        drop(released_tx);
        loop {
            tokio::select! {
                Some(r) = released_rx.recv() => emit(&store, r, &*output).await,
                joined = workers.join_next() => if joined.is_none() { break },
            }
        }
        while let Some(r) = released_rx.recv().await {
            emit(&store, r, &*output).await;
        }
        if !store.owned_by(self.generation) {
            // A reload with the same config took the store over: its traces keep waiting.
            return;
        }
        let r = store.decide_all(Instant::now(), self.drop_pending);
        emit(&store, r, &*output).await;
    }
}

/// Sends kept traces on, in batches of at most `OUT_BATCH_SPANS` spans.
async fn emit(store: &Store, released: Released, output: &dyn Output) {
    if released.kept.is_empty() {
        return;
    }
    let mut traces = released.kept;
    while !traces.is_empty() {
        let mut spans = 0;
        let mut take = 0;
        while take < traces.len()
            && (take == 0 || spans + traces[take].facts.spans as usize <= OUT_BATCH_SPANS)
        {
            spans += traces[take].facts.spans as usize;
            take += 1;
        }
        let chunk: Vec<store::Trace> = traces.drain(..take).collect();
        let (mut batch, acks) = crate::data::heavy(spans, || {
            let (mut batch, acks) = store::assemble(chunk);
            // Spans that arrived before the one naming the session get the stamp now.
            if let Some(sessions) = store.session_link().get() {
                sessions.stamp_all(&mut batch, Instant::now());
            }
            (batch, acks)
        });
        for a in acks {
            batch.add_ack(a);
        }
        batch.adopt(store.inflight());
        output.send(batch).await;
    }
}

#[cfg(test)]
mod tests;
