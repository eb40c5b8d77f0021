//! spangate: an OpenTelemetry trace pipeline. Receivers -> processors -> exporters, configured
//! in `pipelines.yaml` with the OpenTelemetry Collector's layout.

// No unwrap on anything input can reach; the few `expect`s state an invariant.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod app;
pub mod cli;
pub mod component;
pub mod components;
pub mod config;
pub mod data;
pub mod exporters;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod settings;
pub mod telemetry;
