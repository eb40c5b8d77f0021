//! Processors: inline transforms and staged (own task) stages.

pub mod allowlist;
pub mod batch;
pub mod hash;
pub mod probabilistic_sampler;
pub mod rate_limiting;
pub mod redaction;
pub mod session;
pub mod tail_sampling;
pub mod token_bucket;

use crate::component::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add_processor("allowlist", allowlist::parse);
    r.add_processor("batch", batch::parse);
    r.add_processor("probabilistic_sampler", probabilistic_sampler::parse);
    r.add_processor("rate_limiting", rate_limiting::parse);
    r.add_processor("redaction", redaction::parse);
    r.add_processor("tail_sampling", tail_sampling::parse);
    r.add_processor("session", session::parse);
}
