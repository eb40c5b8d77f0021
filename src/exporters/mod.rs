//! Exporters: where spans leave. Each makes one attempt per call; the pipeline's queue
//! (`crate::pipeline::queue`) does the rest. Each is listed in `crate::components`.

pub mod debug;
pub mod file;
pub mod jaeger;
pub mod kafka;
pub mod otlp;
pub mod otlp_client;
pub mod postgres;
pub mod tempo;
