//! Receivers: where spans enter. Each is listed in `crate::components`.

pub mod intake;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "otlp")]
pub mod otlp;
