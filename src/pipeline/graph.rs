//! Graph checks on `service.pipelines`: ids defined, signals supported, every pipeline complete,
//! no receiver that binds a port left unused, no two listeners on one address.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::component::{ExporterConfig, ProcessorConfig, ReceiverConfig};
use crate::config::yaml::LineMap;
use crate::config::{ComponentId, Diagnostics, ServiceConfig};

/// A checked pipeline: ids resolved, in configured order.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub id: ComponentId,
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    pub exporters: Vec<ComponentId>,
}

/// The components that parsed, and the (section, id) whose problems were already reported.
pub struct Defined<'a> {
    pub receivers: &'a BTreeMap<ComponentId, Arc<dyn ReceiverConfig>>,
    pub processors: &'a BTreeMap<ComponentId, Arc<dyn ProcessorConfig>>,
    pub exporters: &'a BTreeMap<ComponentId, Arc<dyn ExporterConfig>>,
    pub reported: &'a [(&'static str, ComponentId)],
}

pub fn check(
    service: &ServiceConfig,
    defined: Defined<'_>,
    lines: &LineMap,
    diags: &mut Diagnostics,
) -> Vec<PipelineSpec> {
    let Defined {
        receivers,
        processors,
        exporters,
        reported,
    } = defined;
    let mut specs = Vec::new();
    if service.pipelines.is_empty() {
        diags.push(
            "service.pipelines",
            "at least one pipeline is required (e.g. `traces`)",
            lines,
        );
    }
    for (key, p) in &service.pipelines {
        let base = format!("service.pipelines.{key}");
        let id = match ComponentId::parse(key) {
            Ok(id) if id.kind() == "traces" => id,
            Ok(id) if matches!(id.kind(), "metrics" | "logs" | "profiles") => {
                diags.push(
                    base,
                    format!(
                        "the {} signal is not supported; spangate runs `traces` pipelines",
                        id.kind()
                    ),
                    lines,
                );
                continue;
            }
            Ok(_) => {
                diags.push(
                    base,
                    "a pipeline id must be `traces` or `traces/<name>`",
                    lines,
                );
                continue;
            }
            Err(e) => {
                diags.push(base, e, lines);
                continue;
            }
        };
        let mut resolve = |field: &str, names: &[String], defined: Vec<&ComponentId>| {
            resolve(&base, field, names, &defined, reported, lines, diags)
        };
        let receivers = resolve("receivers", &p.receivers, receivers.keys().collect());
        let processors = resolve("processors", &p.processors, processors.keys().collect());
        let exporters = resolve("exporters", &p.exporters, exporters.keys().collect());
        if p.receivers.is_empty() {
            diags.push(
                format!("{base}.receivers"),
                "must name at least one receiver",
                lines,
            );
        }
        if p.exporters.is_empty() {
            diags.push(
                format!("{base}.exporters"),
                "must name at least one exporter",
                lines,
            );
        }
        specs.push(PipelineSpec {
            id,
            receivers,
            processors,
            exporters,
        });
    }
    // A defined receiver that no pipeline uses would still hold a port; refuse it.
    for (id, r) in receivers {
        let used = specs.iter().any(|s| s.receivers.contains(id));
        if !used && !r.endpoints().is_empty() {
            diags.push(
                format!("receivers.{id}"),
                "defined but not used by any pipeline (it would bind a port); add it to a pipeline or remove it",
                lines,
            );
        }
    }
    // Two listeners on one address fail at bind time; say so now, naming both.
    let mut seen: HashMap<String, String> = HashMap::new();
    if let Some(addr) = service.metrics_address() {
        seen.insert(addr.to_string(), "service.telemetry.metrics.address".into());
    }
    for (id, r) in receivers {
        for (field, addr) in r.endpoints() {
            let path = format!("receivers.{id}.{field}");
            if let Some(other) = seen.get(&addr) {
                diags.push(
                    path.clone(),
                    format!("address {addr} is already used by {other}"),
                    lines,
                );
            } else {
                seen.insert(addr, path);
            }
        }
    }
    specs
}

fn resolve(
    base: &str,
    field: &str,
    names: &[String],
    defined: &[&ComponentId],
    reported: &[(&'static str, ComponentId)],
    lines: &LineMap,
    diags: &mut Diagnostics,
) -> Vec<ComponentId> {
    let mut out: Vec<ComponentId> = Vec::new();
    let defined_names: Vec<String> = defined.iter().map(|id| format!("`{id}`")).collect();
    for (i, name) in names.iter().enumerate() {
        let path = format!("{base}.{field}[{i}]");
        match ComponentId::parse(name) {
            // Its own problem was reported where it is defined.
            Ok(id) if reported.iter().any(|(s, r)| *s == field && *r == id) => {}
            Ok(id) if !defined.contains(&&id) => diags.push(
                path,
                format!(
                    "`{id}` is not defined under `{field}`{}",
                    suggest(&defined_names)
                ),
                lines,
            ),
            Ok(id) if out.contains(&id) => {
                diags.push(path, format!("`{id}` is listed twice"), lines)
            }
            Ok(id) => out.push(id),
            Err(e) => diags.push(path, e, lines),
        }
    }
    out
}

fn suggest(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (defined: {})", names.join(", "))
    }
}
