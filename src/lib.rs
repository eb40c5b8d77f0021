//! spangate: an OpenTelemetry trace pipeline. Receivers -> processors -> exporters, configured
//! in `pipelines.yaml` with the OpenTelemetry Collector's layout.

// No unwrap on anything input can reach; the few `expect`s state an invariant.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod cli;
pub mod components;
pub mod exporters;
pub mod pipeline;
pub mod processors;
pub mod receivers;

// Layers 0-1 live in `spangate-core` (shared with plugins); re-exported so every path stays
// `spangate::data::…`, `crate::component::…`.
pub use spangate_core::{component, config, data, settings, telemetry};
