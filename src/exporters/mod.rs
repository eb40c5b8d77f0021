//! Exporters: where spans leave. Each makes one attempt per call; the pipeline's queue
//! (`crate::pipeline::queue`) does the rest. Each is listed in `crate::components`.

pub mod debug;
pub mod file;
#[cfg(feature = "otlp")]
pub mod jaeger;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "otlp")]
pub mod otlp_client;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "otlp")]
pub mod tempo;
