//! Receivers: where spans enter.

pub mod intake;
pub mod kafka;
pub mod otlp;

use crate::component::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add_receiver("otlp", otlp::config::parse);
    r.add_receiver("kafka", kafka::config::parse);
}
