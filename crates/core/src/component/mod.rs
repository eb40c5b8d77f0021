//! What every component implements, and the registry that maps config types to factories.
//!
//! Receivers push into a [`Consumer`]; processors are either inline (a cheap
//! in-place transform run in the receiving task) or staged (their own task and timers, with a
//! bounded channel in front); exporters make one attempt per call and leave queueing, retry,
//! timeouts and metrics to the pipeline's queue (`spangate::pipeline::queue`).

pub mod listeners;
pub mod registry;
pub mod session;
pub mod state;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::ComponentId;
use crate::data::SpanBatch;
use crate::telemetry::Telemetry;
pub use listeners::ListenerPool;
pub use session::{SessionLink, Sessions};
pub use state::StateRegistry;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Failure to build or start a component from a valid config (files, ports, certificates).
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct BuildError {
    pub component: String,
    pub message: String,
}

impl BuildError {
    pub fn new(component: &ComponentId, message: impl fmt::Display) -> Self {
        BuildError {
            component: component.to_string(),
            message: message.to_string(),
        }
    }
}

/// Why a consumer could not take a batch; the receiver answers with a retryable status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// A pipeline's first hop is full; retry later.
    Full,
    /// A processor refused (rate limit); retry after the hint.
    Refused { retry_after: Duration },
    /// The process is near `service.memory_limit_mib`; retry later.
    Memory,
}

/// What a receiver pushes into: every pipeline that names it (the pipeline's fan-out).
pub trait Consumer: Send + Sync {
    /// All or nothing: every pipeline gets its copy, or none does and the caller refuses.
    fn consume(&self, batch: SpanBatch) -> BoxFuture<'_, Result<(), Refusal>>;
    /// True when every pipeline fed ends in disk queues through processors that hold spans
    /// briefly: a receiver can then answer once its spans are on disk.
    fn durable(&self) -> bool;
    /// True while a disk queue behind it cannot write (a full disk).
    fn unwritable(&self) -> bool;
}

/// Where a staged processor sends what it releases: the rest of its pipeline.
pub trait Output: Send + Sync {
    /// Processes and forwards a batch, waiting for room (the backpressure that eventually
    /// makes receivers refuse).
    fn send(&self, batch: SpanBatch) -> BoxFuture<'_, ()>;
}

/// What a receiver needs to start.
pub struct ReceiverContext {
    pub id: ComponentId,
    pub fanout: Arc<dyn Consumer>,
    pub telemetry: Arc<Telemetry>,
    pub listeners: Arc<ListenerPool>,
}

/// A receiver's parsed config.
pub trait ReceiverConfig: Send + Sync + fmt::Debug {
    /// (field path, `host:port`) of every address it listens on; used for port checks.
    fn endpoints(&self) -> Vec<(String, String)>;
    /// Binds and starts serving. Returns once it listens.
    fn start(&self, ctx: ReceiverContext) -> BoxFuture<'_, Result<RunningReceiver, BuildError>>;
}

/// A started receiver: stop it to stop accepting and finish requests in flight.
pub struct RunningReceiver {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a processor does to a batch in the receiving task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Go on (the batch may have been changed or emptied; drops are counted by the processor).
    Continue,
    /// Refuse the whole request; the receiver answers with a retryable status.
    Refuse { retry_after: Duration },
}

/// A stateless (or lock-free) transform, run in place on the receiving task.
pub trait InlineProcessor: Send + Sync {
    fn process(&self, batch: &mut SpanBatch) -> Verdict;
}

/// A processor with its own task, timers and state (batching, tail sampling).
pub trait StagedProcessor: Send {
    /// Capacity, in batches, of the bounded channel in front of it.
    fn input_capacity(&self) -> usize {
        16
    }
    /// True when it holds spans only briefly (a batch timeout), so a receiver may wait for
    /// them to be on disk before answering (see `Fanout::durable`); false for processors that
    /// hold spans for seconds (a tail sampler's decision wait).
    fn holds_briefly(&self) -> bool {
        false
    }
    /// Runs until `input` closes, then flushes everything it holds into `output`.
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<SpanBatch>,
        output: Box<dyn Output>,
    ) -> BoxFuture<'static, ()>;
}

pub enum Processor {
    Inline(Box<dyn InlineProcessor>),
    Staged(Box<dyn StagedProcessor>),
}

pub struct ProcessorContext {
    pub id: ComponentId,
    pub pipeline: ComponentId,
    pub telemetry: Arc<Telemetry>,
    /// State kept across reloads for processors whose config did not change.
    pub state: Arc<crate::component::StateRegistry>,
    /// The pipeline's session link (shared by its `session` and `tail_sampling`).
    pub session: Arc<SessionLink>,
}

pub trait ProcessorConfig: Send + Sync + fmt::Debug {
    /// Builds one instance for one pipeline (processors are never shared between pipelines).
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError>;
}

/// Why one export attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Worth trying again (backend down, throttled); `retry_after` is the backend's hint.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never succeed; `rejected` spans (all when `None`) are counted as failed.
    #[error("{reason}")]
    Permanent {
        reason: String,
        rejected: Option<u64>,
    },
}

/// One backend. `export` makes exactly one attempt.
pub trait Exporter: Send + Sync {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>>;
}

pub struct ExporterContext {
    pub id: ComponentId,
    pub telemetry: Arc<Telemetry>,
    /// The exporter's `timeout` (one attempt), for clients that take their own deadline; the
    /// pipeline enforces it around every `export` call either way.
    pub timeout: Duration,
}

/// An exporter's own config. `timeout`, `retry_on_failure` and `sending_queue` are the
/// pipeline's: taken out before the exporter's parse sees the rest (`settings::queue::KEYS`).
pub trait ExporterConfig: Send + Sync + fmt::Debug {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError>;
}
