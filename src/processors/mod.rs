//! Processors: inline transforms and staged (own task) stages.

pub mod batch;

use crate::component::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add_processor("batch", batch::parse);
}
