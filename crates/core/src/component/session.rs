//! The typed link between a pipeline's `session` processor and its `tail_sampling`
//! processor: the sampler keeps every trace of a session one of its traces was kept for, and
//! stamps late spans with their session. Either may be built first; the link is the
//! pipeline's, handed to both in [`super::ProcessorContext::session`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::data::SpanBatch;

/// What the session processor offers a sampler; trace ids as big-endian `u128`.
pub trait Sessions: Send + Sync {
    /// True when the trace belongs to a session a kept trace belongs to.
    fn session_kept(&self, trace_id: u128, now: Instant) -> bool;
    /// Records that the trace was kept, so the rest of its session is kept too.
    fn mark_kept(&self, trace_id: u128, now: Instant);
    /// Stamps every span whose trace has a session with the session attribute (a batch whose
    /// spans all say so already stays as it is).
    fn stamp_all(&self, batch: &mut SpanBatch, now: Instant);
}

/// One per pipeline: empty until a session processor in it fills it.
#[derive(Default)]
pub struct SessionLink {
    slot: Mutex<Option<Arc<dyn Sessions>>>,
}

impl SessionLink {
    /// The session processor of this pipeline, when it has one.
    pub fn get(&self) -> Option<Arc<dyn Sessions>> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, sessions: Arc<dyn Sessions>) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(sessions);
    }
}
