//! Loading `pipelines.yaml`: env expansion, YAML with lines, merge of several files, component
//! configs through the registry, the `service` section and graph checks. Start-up, SIGHUP reload
//! and `spangate validate` all go through [`load`], so they agree on what is valid.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::graph::{self, PipelineSpec};
use crate::component::registry::Registry;
use crate::component::{ExporterConfig, ProcessorConfig, ReceiverConfig};
use crate::config::yaml::{self, LineMap, Location};
use crate::config::ServiceConfig;
use crate::config::{join_path, ComponentId, Diagnostic, Diagnostics};
use crate::settings::queue::{self, HelperSettings};

/// A config that passed every check and can be started.
#[derive(Debug, Clone)]
pub struct Config {
    pub receivers: BTreeMap<ComponentId, Arc<dyn ReceiverConfig>>,
    pub processors: BTreeMap<ComponentId, Arc<dyn ProcessorConfig>>,
    pub exporters: BTreeMap<ComponentId, Arc<dyn ExporterConfig>>,
    /// Each exporter's `timeout`, `retry_on_failure` and `sending_queue`, taken out of its
    /// config before the exporter parsed the rest.
    pub exporter_settings: BTreeMap<ComponentId, HelperSettings>,
    pub service: ServiceConfig,
    pub pipelines: Vec<PipelineSpec>,
}

/// A config source: a name for messages, and its text.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Reads and checks the files named by `--config`, later ones merged over earlier ones.
pub fn load(paths: &[PathBuf], registry: &Registry) -> Result<Config, Diagnostics> {
    let mut sources = Vec::new();
    let mut diags = Diagnostics::default();
    for path in paths {
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(Source {
                name: path.display().to_string(),
                text,
            }),
            Err(e) => diags.items.push(Diagnostic {
                path: String::new(),
                message: format!("cannot read config file {}: {e}", path.display()),
                location: None,
            }),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    load_sources(&sources, registry, |k| std::env::var(k).ok())
}

/// [`load`] on texts already read, with a chosen environment (for tests).
pub fn load_sources(
    sources: &[Source],
    registry: &Registry,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics {
        files: sources.iter().map(|s| s.name.clone()).collect(),
        ..Default::default()
    };
    let mut root = Value::Object(Default::default());
    let mut lines = LineMap::default();
    for (file, source) in sources.iter().enumerate() {
        match yaml::parse_with_env(&source.text, file, &env) {
            Ok((value, file_lines)) => {
                if !value.is_object() {
                    diags.push_at(
                        "",
                        "the config must be a YAML mapping",
                        Location { file, line: 1 },
                    );
                    continue;
                }
                yaml::merge(&mut root, value);
                lines.merge_from(file_lines);
            }
            Err(yaml::ParseError::Yaml(e)) => diags.push_at(
                "",
                format!("invalid YAML: {}", e.message),
                Location { file, line: e.line },
            ),
            Err(yaml::ParseError::Env(errs)) => {
                for e in errs {
                    diags.push_at("", e.message, Location { file, line: e.line });
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let config = parse_root(&root, registry, &lines, &mut diags);
    match config {
        Some(c) if diags.is_empty() => Ok(c),
        _ => Err(diags),
    }
}

const SECTIONS: [&str; 4] = ["receivers", "processors", "exporters", "service"];

fn parse_root(
    root: &Value,
    registry: &Registry,
    lines: &LineMap,
    diags: &mut Diagnostics,
) -> Option<Config> {
    let map = root.as_object()?;
    for key in map.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            diags.push(
                key.clone(),
                format!(
                    "unknown top-level key `{key}`, expected one of: {}",
                    SECTIONS.join(", ")
                ),
                lines,
            );
        }
    }
    let receivers = parse_section(
        map.get("receivers"),
        "receivers",
        lines,
        diags,
        |kind| registry.receiver(kind).map(|f| (f.parse.clone(), f.kind)),
        None,
    );
    let processors = parse_section(
        map.get("processors"),
        "processors",
        lines,
        diags,
        |kind| registry.processor(kind).map(|f| (f.parse.clone(), f.kind)),
        None,
    );
    let mut exporter_settings = BTreeMap::new();
    let exporters = parse_section(
        map.get("exporters"),
        "exporters",
        lines,
        diags,
        |kind| registry.exporter(kind).map(|f| (f.parse.clone(), f.kind)),
        Some(&mut exporter_settings),
    );
    let known = |section: &str| -> String { registry.kinds(section).join(", ") };
    for (section, unknown) in [
        ("receivers", &receivers.1),
        ("processors", &processors.1),
        ("exporters", &exporters.1),
    ] {
        for (id, kind) in unknown {
            diags.push(
                format!("{section}.{id}"),
                format!(
                    "unknown {} type `{kind}`, expected one of: {}",
                    section.trim_end_matches('s'),
                    known(section)
                ),
                lines,
            );
        }
    }
    let service = match map.get("service") {
        None => {
            diags.push(
                "service",
                "missing `service` section with `pipelines`",
                lines,
            );
            None
        }
        Some(v) => match crate::config::deserialize::<ServiceConfig>(v) {
            Ok(s) => Some(s),
            Err(problems) => {
                for (field, message) in problems {
                    diags.push(join_path("service", &field), message, lines);
                }
                None
            }
        },
    }?;
    for (field, problem) in service.check() {
        diags.push(format!("service.{field}"), problem, lines);
    }
    // By section: an exporter `otlp` that failed says nothing about the receiver `otlp`.
    let failed = |section: &'static str, unknown: &[(ComponentId, String)], bad: &[ComponentId]| {
        unknown
            .iter()
            .map(|(id, _)| id)
            .chain(bad)
            .map(|id| (section, id.clone()))
            .collect::<Vec<_>>()
    };
    let reported: Vec<(&'static str, ComponentId)> = [
        failed("receivers", &receivers.1, &receivers.2),
        failed("processors", &processors.1, &processors.2),
        failed("exporters", &exporters.1, &exporters.2),
    ]
    .concat();
    let pipelines = graph::check(
        &service,
        graph::Defined {
            receivers: &receivers.0,
            processors: &processors.0,
            exporters: &exporters.0,
            reported: &reported,
        },
        lines,
        diags,
    );
    Some(Config {
        receivers: receivers.0,
        processors: processors.0,
        exporters: exporters.0,
        exporter_settings,
        service,
        pipelines,
    })
}

/// The result of parsing one section: good components, ids whose type is unknown, and ids
/// whose config is invalid (already reported, so pipelines naming them add no second error).
type Section<C> = (
    BTreeMap<ComponentId, Arc<C>>,
    Vec<(ComponentId, String)>,
    Vec<ComponentId>,
);

use crate::component::registry::ParseFn;

/// With `settings` (exporters), the keys of [`HelperSettings`] are taken out of each
/// component's config and parsed into it; the component parses the rest.
fn parse_section<C: ?Sized>(
    value: Option<&Value>,
    section: &str,
    lines: &LineMap,
    diags: &mut Diagnostics,
    find: impl Fn(&str) -> Option<(ParseFn<C>, &'static str)>,
    mut settings: Option<&mut BTreeMap<ComponentId, HelperSettings>>,
) -> Section<C> {
    let mut good = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut failed = Vec::new();
    let entries = match value {
        None | Some(Value::Null) => return (good, unknown, failed),
        Some(Value::Object(m)) => m,
        Some(_) => {
            diags.push(section, "expected a mapping of component ids", lines);
            return (good, unknown, failed);
        }
    };
    for (key, body) in entries {
        let path = format!("{section}.{key}");
        let id = match ComponentId::parse(key) {
            Ok(id) => id,
            Err(e) => {
                diags.push(path, e, lines);
                continue;
            }
        };
        let Some((parse, _)) = find(id.kind()) else {
            let kind = id.kind().to_string();
            unknown.push((id, kind));
            continue;
        };
        // `otlp:` with nothing under it means "all defaults", as in the contrib collector.
        let empty = Value::Object(Default::default());
        let body = if body.is_null() { &empty } else { body };
        let mut settled = true;
        let own = match settings.as_deref_mut() {
            None => None,
            Some(all) => {
                let (rest, helper) = peel_settings(body);
                match helper {
                    Ok(s) => {
                        all.insert(id.clone(), s);
                    }
                    Err(problems) => {
                        settled = false;
                        for (field, message) in problems {
                            diags.push(join_path(&path, &field), message, lines);
                        }
                    }
                }
                Some(rest)
            }
        };
        match parse(own.as_ref().unwrap_or(body)) {
            Ok(c) if settled => {
                good.insert(id, c);
            }
            Ok(_) => failed.push(id),
            Err(problems) => {
                for (field, message) in problems {
                    // Only the exporter's own top level takes the pipeline's keys.
                    let message = if settings.is_some() && !field.contains(['.', '[']) {
                        crate::config::with_split_keys(message, &queue::KEYS)
                    } else {
                        message
                    };
                    diags.push(join_path(&path, &field), message, lines);
                }
                failed.push(id);
            }
        }
    }
    (good, unknown, failed)
}

/// Splits an exporter's config into its own keys and the pipeline's ([`queue::KEYS`]), and
/// parses and checks the latter.
fn peel_settings(body: &Value) -> (Value, Result<HelperSettings, Vec<(String, String)>>) {
    let (ours, rest) = crate::config::split_keys(body, &queue::KEYS);
    let parsed = crate::config::deserialize::<HelperSettings>(&ours).and_then(|s| {
        let problems = s.check();
        if problems.is_empty() {
            Ok(s)
        } else {
            Err(problems)
        }
    });
    (rest, parsed)
}

#[cfg(test)]
mod tests;
