//! `span_name_normalizer`: rewrites high-cardinality span names so they group in backends:
//! `GET /users/8812/orders/9` -> `GET /users/{id}/orders/{id}`.
//!
//! ```yaml
//! processors:
//!   span_name_normalizer:
//!     builtin: true            # numbers, UUIDs and hex ids in path segments and words -> {id}
//!     placeholder: "{id}"
//!     drop_query: true         # `GET /a?b=1` -> `GET /a`
//!     rules:                   # then these, in order (regex, `$1` references allowed)
//!       - { pattern: "^SELECT .* FROM (\\w+).*$", replacement: "SELECT $1" }
//! ```
//!
//! A plugin implements the same traits as a built-in processor (`spangate-core`): its config
//! goes through `parse_config`, so its problems carry field paths (and, from the loader, lines).

use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use spangate_core::component::registry::{parse_config, Check, Problems};
use spangate_core::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict,
};
use spangate_core::data::edit::{At, Editor, Level, Plan, Text};
use spangate_core::data::SpanBatch;

/// The type name under `processors:`.
pub const KIND: &str = "span_name_normalizer";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "yes")]
    builtin: bool,
    #[serde(default = "default_placeholder")]
    placeholder: String,
    #[serde(default = "yes")]
    drop_query: bool,
    #[serde(default)]
    rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    pattern: String,
    replacement: String,
}

fn yes() -> bool {
    true
}
fn default_placeholder() -> String {
    "{id}".into()
}

impl Check for Config {
    fn check(&self) -> Problems {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                Regex::new(&r.pattern)
                    .err()
                    .map(|e| (format!("rules[{i}].pattern"), format!("invalid regex: {e}")))
            })
            .collect()
    }
}

/// Parses and checks a `span_name_normalizer` config (registered in spangate's components list).
pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<Config>(v)?))
}

impl ProcessorConfig for Config {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let re = Regex::new(&r.pattern).map_err(|e| BuildError::new(&ctx.id, e))?;
            rules.push((re, r.replacement.clone()));
        }
        Ok(Processor::Inline(Box::new(Normalizer {
            builtin: self.builtin,
            placeholder: self.placeholder.clone(),
            drop_query: self.drop_query,
            rules,
        })))
    }
}

struct Normalizer {
    builtin: bool,
    placeholder: String,
    drop_query: bool,
    rules: Vec<(Regex, String)>,
}

/// A token that identifies one thing rather than a kind of thing.
fn is_id(token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let bytes = token.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    // UUID: 8-4-4-4-12 hex digits.
    let groups: Vec<&str> = token.split('-').collect();
    if groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return true;
    }
    // Hex ids (object ids, hashes): long, all hex, with at least one digit (not a word like
    // "deadbeef"-free English).
    bytes.len() >= 8
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && bytes.iter().any(u8::is_ascii_digit)
}

impl Normalizer {
    /// The normalized name, or `None` when nothing changes (no allocation then).
    fn normalize(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        if self.drop_query {
            if let Some(q) = name.find('?') {
                let end = name[q..].find(' ').map_or(name.len(), |e| q + e);
                out = Some(format!("{}{}", &name[..q], &name[end..]));
            }
        }
        if self.builtin {
            let current = out.as_deref().unwrap_or(name);
            let needs = current.split([' ', '/']).any(is_id);
            if needs {
                let rewritten: Vec<String> = current
                    .split(' ')
                    .map(|word| {
                        word.split('/')
                            .map(|seg| {
                                if is_id(seg) {
                                    self.placeholder.as_str()
                                } else {
                                    seg
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("/")
                    })
                    .collect();
                out = Some(rewritten.join(" "));
            }
        }
        for (re, replacement) in &self.rules {
            let current = out.as_deref().unwrap_or(name);
            if re.is_match(current) {
                out = Some(re.replace_all(current, replacement.as_str()).into_owned());
            }
        }
        out
    }
}

impl InlineProcessor for Normalizer {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        batch.edit(&mut Rename(self));
        Verdict::Continue
    }
}

/// Span names only, rewritten where they lie (received bytes stay bytes).
struct Rename<'a>(&'a Normalizer);

impl Editor for Rename<'_> {
    fn wants(&self, _level: Level) -> bool {
        false
    }

    fn begin(&mut self, _at: At<'_>) -> Plan {
        Plan::Keep
    }

    fn texts(&self) -> bool {
        true
    }

    fn text(&mut self, which: Text, text: &str) -> Option<String> {
        match which {
            Text::SpanName => self.0.normalize(text),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};
    use spangate_core::config::ComponentId;
    use spangate_core::data::trace::{ResourceSpans, ScopeSpans, Span};

    fn build(config: Value) -> Result<Box<dyn InlineProcessor>, Problems> {
        let cfg = parse(&config)?;
        let ctx = ProcessorContext {
            id: ComponentId::parse(KIND).unwrap(),
            pipeline: ComponentId::parse("traces").unwrap(),
            telemetry: Default::default(),
            state: Default::default(),
            session: Default::default(),
        };
        match cfg.build(&ctx).unwrap() {
            Processor::Inline(p) => Ok(p),
            Processor::Staged(_) => panic!("inline"),
        }
    }

    /// The name after `t`, from structs and from received bytes alike.
    fn name_of(t: &dyn InlineProcessor, name: &str) -> String {
        let rs = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: name.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }];
        let mut wire = SpanBatch::new(rs.clone());
        let bytes = wire.encoded();
        let mut batch = SpanBatch::new(rs);
        wire = SpanBatch::from_wire(bytes, 1);
        assert_eq!(t.process(&mut batch), Verdict::Continue);
        assert_eq!(t.process(&mut wire), Verdict::Continue);
        assert!(wire.is_encoded_only());
        let names = |b: &SpanBatch| {
            let mut n = Vec::new();
            b.for_each_span(|_, s| n.push(s.name().to_string()));
            n
        };
        assert_eq!(names(&wire), names(&batch));
        batch.resource_spans()[0].scope_spans[0].spans[0]
            .name
            .clone()
    }

    #[test]
    fn builtin_rules() {
        let n = build(Value::Object(Default::default())).unwrap();
        assert_eq!(
            name_of(&*n, "GET /users/8812/orders/9"),
            "GET /users/{id}/orders/{id}"
        );
        assert_eq!(
            name_of(&*n, "GET /carts/5f0c2a1e-9a43-4c1b-8f62-0d3b7e2c9a10"),
            "GET /carts/{id}"
        );
        assert_eq!(
            name_of(&*n, "GET /objects/507f1f77bcf86cd799439011?x=1"),
            "GET /objects/{id}"
        );
        assert_eq!(name_of(&*n, "GET /api/v2/health"), "GET /api/v2/health");
        assert_eq!(name_of(&*n, "SELECT shop.orders"), "SELECT shop.orders");
        assert_eq!(name_of(&*n, "job 12345 done"), "job {id} done");
        assert_eq!(
            name_of(&*n, "GET /decade/facade"),
            "GET /decade/facade",
            "hex words without digits stay"
        );
    }

    #[test]
    fn custom_rules_and_errors() {
        let mut cfg = serde_json_map();
        cfg.insert("placeholder".into(), Value::String(":id".into()));
        cfg.insert(
            "rules".into(),
            Value::Array(vec![rule("^SELECT .* FROM (\\w+).*$", "SELECT $1")]),
        );
        let n = build(Value::Object(cfg)).unwrap();
        assert_eq!(
            name_of(&*n, "SELECT a, b FROM orders WHERE id = 4"),
            "SELECT orders"
        );
        assert_eq!(name_of(&*n, "PUT /a/77"), "PUT /a/:id");
        let mut bad = serde_json_map();
        bad.insert("rules".into(), Value::Array(vec![rule("(", "x")]));
        let err = build(Value::Object(bad)).err().unwrap();
        assert_eq!(err[0].0, "rules[0].pattern");
        let mut unknown = serde_json_map();
        unknown.insert("nope".into(), Value::Bool(true));
        assert!(build(Value::Object(unknown)).is_err());
    }

    fn serde_json_map() -> Map<String, Value> {
        Map::new()
    }

    fn rule(p: &str, r: &str) -> Value {
        let mut m = serde_json_map();
        m.insert("pattern".into(), Value::String(p.into()));
        m.insert("replacement".into(), Value::String(r.into()));
        Value::Object(m)
    }
}
