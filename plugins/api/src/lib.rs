//! What a spangate plugin implements. A plugin is a crate that depends on this one (not on
//! spangate itself), exposes a [`ProcessorPlugin`], and is compiled into spangate by a cargo
//! feature; spangate registers it under [`ProcessorPlugin::kind`], runs its config through
//! [`ProcessorPlugin::build`] at `validate` and start-up, and runs the returned
//! [`SpanTransform`] in place on every batch, counting what it removes.

pub use opentelemetry_proto::tonic::common::v1 as common;
pub use opentelemetry_proto::tonic::resource::v1 as resource;
pub use opentelemetry_proto::tonic::trace::v1 as trace;
pub use serde_json::{Map, Value};

/// A config problem: the field path inside the component's config, and what is wrong.
pub type Problem = (String, String);

/// A factory registered under a type name.
pub trait ProcessorPlugin: Send + Sync {
    /// The type name used in `pipelines.yaml` (`^[a-zA-Z][0-9a-zA-Z_]*$`).
    fn kind(&self) -> &'static str;

    /// Checks a component's config (what follows its id in `processors:`; `{}` when empty) and
    /// builds the transform. Every problem is returned, each with its field path.
    fn build(&self, config: &Value) -> Result<Box<dyn SpanTransform>, Vec<Problem>>;
}

/// A processor instance: runs in place on the receiving task, so it must be quick and must not
/// block. Called concurrently from several tasks.
pub trait SpanTransform: Send + Sync {
    /// Changes `spans` in place. Returns the spans it removed, if any, with a reason; spangate
    /// counts them in `spangate_processor_dropped_spans_total{processor, reason}`.
    fn transform(&self, spans: &mut Vec<trace::ResourceSpans>) -> Removed;
}

/// Spans a transform removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub spans: u64,
    pub reason: &'static str,
}
