//! Plugins: crates in `plugins/` implementing `spangate_plugin_api::ProcessorPlugin`, compiled
//! in by a cargo feature and registered here under their type name. A plugin processor runs in
//! place like a built-in inline processor; the spans it removes are counted.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use spangate_plugin_api::{ProcessorPlugin, SpanTransform};

use super::registry::Registry;
use super::{BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict};
use crate::data::SpanBatch;
use crate::telemetry::Telemetry;

/// Registers one plugin processor under its type name.
pub fn register(r: &mut Registry, plugin: Arc<dyn ProcessorPlugin>) {
    let kind = plugin.kind();
    r.add_processor_factory(
        kind,
        Arc::new(move |config: &Value| {
            // Building checks the config, so `validate` reports a plugin's problems too.
            plugin.build(config)?;
            Ok(Arc::new(PluginConfig {
                plugin: plugin.clone(),
                config: config.clone(),
            }) as Arc<dyn ProcessorConfig>)
        }),
    );
}

struct PluginConfig {
    plugin: Arc<dyn ProcessorPlugin>,
    config: Value,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginConfig")
            .field("kind", &self.plugin.kind())
            .field("config", &self.config)
            .finish()
    }
}

impl ProcessorConfig for PluginConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let transform = self.plugin.build(&self.config).map_err(|problems| {
            let text: Vec<String> = problems.iter().map(|(p, m)| format!("{p}: {m}")).collect();
            BuildError::new(&ctx.id, text.join("; "))
        })?;
        Ok(Processor::Inline(Box::new(PluginProcessor {
            id: ctx.id.to_string(),
            transform,
            telemetry: ctx.telemetry.clone(),
        })))
    }
}

struct PluginProcessor {
    id: String,
    transform: Box<dyn SpanTransform>,
    telemetry: Arc<Telemetry>,
}

impl InlineProcessor for PluginProcessor {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let before = batch.len();
        let removed = self.transform.transform(batch.resource_spans_mut());
        batch.recount();
        // The recount is authoritative; the plugin names the reason.
        let gone = before.saturating_sub(batch.len()) as u64;
        if gone > 0 {
            let reason = if removed.reason.is_empty() {
                "plugin"
            } else {
                removed.reason
            };
            self.telemetry
                .metrics
                .processor_dropped(&self.id, reason)
                .inc_by(gone);
        }
        Verdict::Continue
    }
}
