//! Processors: inline transforms and staged (own task) stages. Each is listed in
//! `crate::components`; `hash`, `token_bucket` and `trace_cache` are helpers several of them share.

pub mod allowlist;
pub mod batch;
pub mod hash;
pub mod probabilistic_sampler;
pub mod rate_limiting;
pub mod redaction;
pub mod session;
pub mod tail_sampling;
pub mod token_bucket;
pub mod trace_cache;
