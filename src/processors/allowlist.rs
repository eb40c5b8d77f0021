//! `allowlist`: keeps only the listed attribute keys, per scope (`resource`, `scope`, `span`,
//! `event`, `link`); `*` globs match any run of characters. A scope left out is untouched; an
//! empty list removes every attribute of that scope. Removed attributes are counted.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict,
};
use crate::data::edit::{At, Edit, Editor, Level, Plan};
use crate::data::view::ValueRef;
use crate::data::SpanBatch;
use crate::telemetry::metrics::Counter;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Resource attribute keys to keep.
    #[serde(default)]
    pub resource: Option<Vec<String>>,
    /// Instrumentation scope attribute keys to keep.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// Span attribute keys to keep.
    #[serde(default)]
    pub span: Option<Vec<String>>,
    /// Span event attribute keys to keep.
    #[serde(default)]
    pub event: Option<Vec<String>>,
    /// Span link attribute keys to keep.
    #[serde(default)]
    pub link: Option<Vec<String>>,
}

impl Check for AllowlistConfig {
    fn check(&self) -> Problems {
        let lists = [
            &self.resource,
            &self.scope,
            &self.span,
            &self.event,
            &self.link,
        ];
        if lists.iter().all(|l| l.is_none()) {
            return vec![(
                String::new(),
                "list at least one of resource, scope, span, event, link".into(),
            )];
        }
        Vec::new()
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<AllowlistConfig>(v)?))
}

/// Keys matched exactly, by prefix (`http.*`), or by a general glob.
#[derive(Debug, Default)]
pub struct KeySet {
    exact: HashSet<String>,
    prefixes: Vec<String>,
    globs: Vec<Vec<String>>,
}

impl KeySet {
    pub fn new(patterns: &[String]) -> Self {
        let mut set = KeySet::default();
        for p in patterns {
            match p.find('*') {
                None => {
                    set.exact.insert(p.clone());
                }
                Some(i) if i == p.len() - 1 => set.prefixes.push(p[..i].to_string()),
                Some(_) => set.globs.push(p.split('*').map(str::to_string).collect()),
            }
        }
        set
    }

    pub fn matches(&self, key: &str) -> bool {
        self.exact.contains(key)
            || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
            || self.globs.iter().any(|parts| glob_match(parts, key))
    }
}

/// `parts` are the pieces between `*`s: the first must start the key, the last end it, the
/// middle ones appear in order.
fn glob_match(parts: &[String], key: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if !key.starts_with(first.as_str()) || key.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &key[first.len()..key.len() - last.len()];
    if !key.ends_with(last.as_str()) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid.as_str()) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

struct Scope {
    keys: KeySet,
    removed: Counter,
}

pub struct Allowlist {
    resource: Option<Scope>,
    scope: Option<Scope>,
    span: Option<Scope>,
    event: Option<Scope>,
    link: Option<Scope>,
}

impl Allowlist {
    fn at(&self, level: Level) -> Option<&Scope> {
        match level {
            Level::Resource => self.resource.as_ref(),
            Level::Scope => self.scope.as_ref(),
            Level::Span => self.span.as_ref(),
            Level::Event => self.event.as_ref(),
            Level::Link => self.link.as_ref(),
        }
    }
}

/// One batch's pass: removals are counted here and added to the counters once.
struct Pass<'a> {
    p: &'a Allowlist,
    removed: [u64; 5],
}

impl Editor for Pass<'_> {
    fn wants(&self, level: Level) -> bool {
        self.p.at(level).is_some()
    }

    fn begin(&mut self, _at: At<'_>) -> Plan {
        Plan::Stream
    }

    fn attr(&mut self, level: Level, key: &str, _value: ValueRef<'_>) -> Edit {
        match self.p.at(level) {
            Some(s) if !s.keys.matches(key) => {
                self.removed[level as usize] += 1;
                Edit::Drop
            }
            _ => Edit::Keep,
        }
    }
}

impl ProcessorConfig for AllowlistConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let id = ctx.id.to_string();
        let scope = |name: &str, list: &Option<Vec<String>>| {
            list.as_ref().map(|l| Scope {
                keys: KeySet::new(l),
                removed: ctx
                    .telemetry
                    .metrics
                    .processor_removed_attributes(&id, name),
            })
        };
        Ok(Processor::Inline(Box::new(Allowlist {
            resource: scope("resource", &self.resource),
            scope: scope("scope", &self.scope),
            span: scope("span", &self.span),
            event: scope("event", &self.event),
            link: scope("link", &self.link),
        })))
    }
}

impl InlineProcessor for Allowlist {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let mut pass = Pass {
            p: self,
            removed: [0; 5],
        };
        batch.edit(&mut pass);
        for level in [
            Level::Resource,
            Level::Scope,
            Level::Span,
            Level::Event,
            Level::Link,
        ] {
            let n = pass.removed[level as usize];
            if let (Some(s), true) = (self.at(level), n > 0) {
                s.removed.inc_by(n);
            }
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kvs(keys: &[&str]) -> Vec<KeyValue> {
        keys.iter()
            .map(|k| KeyValue {
                key: k.to_string(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("v".into())),
                }),
                ..Default::default()
            })
            .collect()
    }

    fn keys(attrs: &[KeyValue]) -> Vec<&str> {
        attrs.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[test]
    fn globs() {
        let k = KeySet::new(&[
            "http.*".into(),
            "db.system".into(),
            "*.id".into(),
            "a*b*c".into(),
        ]);
        assert!(k.matches("http.method") && k.matches("http.") && !k.matches("http"));
        assert!(k.matches("db.system") && !k.matches("db.statement"));
        assert!(k.matches("session.id") && !k.matches("session.idx"));
        assert!(
            k.matches("abc") && k.matches("a-b-c") && k.matches("axxbyyc") && !k.matches("acb")
        );
    }

    #[test]
    fn keeps_only_listed_keys_per_scope_and_counts_the_rest() {
        let cfg: AllowlistConfig = parse_config(&serde_json::json!({
            "resource": ["service.name", "deployment.environment*"],
            "span": ["http.*", "session.id"],
            "event": ["exception.*"],
            "link": [],
        }))
        .unwrap();
        let ctx = ProcessorContext {
            id: crate::config::ComponentId::parse("allowlist").unwrap(),
            pipeline: crate::config::ComponentId::parse("traces").unwrap(),
            telemetry: Arc::new(crate::telemetry::Telemetry::default()),
            state: Default::default(),
            session: Default::default(),
        };
        let Processor::Inline(p) = cfg.build(&ctx).unwrap() else {
            panic!("inline")
        };
        let mut batch = SpanBatch::new(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: kvs(&["service.name", "host.name", "deployment.environment.name"]),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    attributes: kvs(&["http.method", "user.email", "session.id", "db.statement"]),
                    events: vec![Event {
                        attributes: kvs(&["exception.message", "password"]),
                        ..Default::default()
                    }],
                    links: vec![Link {
                        attributes: kvs(&["anything"]),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        p.process(&mut batch);
        let rs = &batch.resource_spans()[0];
        assert_eq!(
            keys(&rs.resource.as_ref().unwrap().attributes),
            vec!["service.name", "deployment.environment.name"]
        );
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(keys(&span.attributes), vec!["http.method", "session.id"]);
        assert_eq!(keys(&span.events[0].attributes), vec!["exception.message"]);
        assert!(span.links[0].attributes.is_empty());
        let t = &ctx.telemetry.metrics;
        assert_eq!(
            t.processor_removed_attributes("allowlist", "resource")
                .get(),
            1
        );
        assert_eq!(t.processor_removed_attributes("allowlist", "span").get(), 2);
        assert_eq!(
            t.processor_removed_attributes("allowlist", "event").get(),
            1
        );
        assert_eq!(t.processor_removed_attributes("allowlist", "link").get(), 1);
    }
}
