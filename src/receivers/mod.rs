//! Receivers: where spans enter.

pub mod listeners;
pub mod otlp;

use crate::component::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add_receiver("otlp", otlp::config::parse);
}
