//! spangate's layers 0 and 1, in a crate of their own so that built-in components and plugins
//! implement one contract: span data (`data`), metrics and the memory limit (`telemetry`),
//! config primitives (`config`), settings several components share (`settings`), and the
//! component traits with the registry (`component`). Nothing here imports the runtime.

// No unwrap on anything input can reach; the few `expect`s state an invariant.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod component;
pub mod config;
pub mod data;
pub mod settings;
pub mod telemetry;
