//! Config type name -> factory: a lookup table. What fills it for this binary is
//! `spangate::components` (`Registry::builtin`); plugins and tests add theirs the same way.

use std::sync::Arc;

use serde_json::Value;

use super::{ExporterConfig, ProcessorConfig, ReceiverConfig};

pub use crate::config::{parse_beside, parse_config, Check, Problems};
/// Parses and checks one component's config (a closure, so plugins can sit behind it).
pub type ParseFn<C> = Arc<dyn Fn(&Value) -> Result<Arc<C>, Problems> + Send + Sync>;

pub struct Factory<C: ?Sized> {
    /// The type name written in the config (`otlp`, `batch`).
    pub kind: &'static str,
    pub parse: ParseFn<C>,
}

impl<C: ?Sized> Clone for Factory<C> {
    fn clone(&self) -> Self {
        Factory {
            kind: self.kind,
            parse: self.parse.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    receivers: Vec<Factory<dyn ReceiverConfig>>,
    processors: Vec<Factory<dyn ProcessorConfig>>,
    exporters: Vec<Factory<dyn ExporterConfig>>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry {
            receivers: Vec::new(),
            processors: Vec::new(),
            exporters: Vec::new(),
        }
    }

    pub fn add_receiver(
        &mut self,
        kind: &'static str,
        parse: fn(&Value) -> Result<Arc<dyn ReceiverConfig>, Problems>,
    ) {
        self.receivers.push(Factory {
            kind,
            parse: Arc::new(parse),
        });
    }

    pub fn add_processor(
        &mut self,
        kind: &'static str,
        parse: fn(&Value) -> Result<Arc<dyn ProcessorConfig>, Problems>,
    ) {
        self.add_processor_factory(kind, Arc::new(parse));
    }

    pub fn add_processor_factory(
        &mut self,
        kind: &'static str,
        parse: ParseFn<dyn ProcessorConfig>,
    ) {
        self.processors.push(Factory { kind, parse });
    }

    pub fn add_exporter(
        &mut self,
        kind: &'static str,
        parse: fn(&Value) -> Result<Arc<dyn ExporterConfig>, Problems>,
    ) {
        self.exporters.push(Factory {
            kind,
            parse: Arc::new(parse),
        });
    }

    pub fn receiver(&self, kind: &str) -> Option<&Factory<dyn ReceiverConfig>> {
        self.receivers.iter().find(|f| f.kind == kind)
    }

    pub fn processor(&self, kind: &str) -> Option<&Factory<dyn ProcessorConfig>> {
        self.processors.iter().find(|f| f.kind == kind)
    }

    pub fn exporter(&self, kind: &str) -> Option<&Factory<dyn ExporterConfig>> {
        self.exporters.iter().find(|f| f.kind == kind)
    }

    /// Sorted type names of a section, for "expected one of" messages.
    pub fn kinds(&self, section: &str) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = match section {
            "receivers" => self.receivers.iter().map(|f| f.kind).collect(),
            "processors" => self.processors.iter().map(|f| f.kind).collect(),
            _ => self.exporters.iter().map(|f| f.kind).collect(),
        };
        v.sort_unstable();
        v
    }
}
