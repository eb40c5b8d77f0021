//! Receivers: where spans enter. Each is listed in `crate::components`.

pub mod intake;
pub mod kafka;
pub mod otlp;
