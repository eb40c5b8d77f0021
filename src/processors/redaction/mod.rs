//! `redaction`: the contrib collector's redaction processor (same keys, same order of rules,
//! same output), plus built-in PII detectors, URL query parameters, and coverage contrib lacks:
//! link attributes, event names, span names, status messages and values nested in arrays and
//! key-value lists.
//!
//! Per attribute, as contrib: an ignored key is left alone; a key not allowed is removed; a value
//! matching `allowed_values` is kept; a key matching `blocked_key_patterns` has its whole value
//! masked; otherwise `blocked_values`, the built-ins and `url_query_params` replace what they find.
//! Matches become `****`, or a hex hash (`hash_function` for contrib's rules; `action: hash` with
//! `hash_key`, which is HMAC-SHA256 and equals contrib's `hmac-sha256`, for spangate's own).

mod detect;
mod hash;
mod url;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use regex::RegexSet;
use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict,
};
use crate::data::attrs::set_attr;
use crate::data::edit::{At, Edit, Editor, Level, Plan, Text};
use crate::data::view::ValueRef;
use crate::data::SpanBatch;
use crate::telemetry::metrics::{Counter, Metrics};
pub use detect::{luhn, Builtin};
use detect::{Detector, Hit, Kind};
pub use hash::{HashFunction, Hasher};

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Summary {
    /// Keys and counts as attributes.
    Debug,
    /// Counts only.
    Info,
    #[default]
    Silent,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Mask,
    Hash,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Keep every key (contrib's default is false: only `allowed_keys` survive). Unset, it is
    /// false when `allowed_keys` lists keys and true otherwise.
    #[serde(default)]
    pub allow_all_keys: Option<bool>,
    /// Keys kept when not all keys are allowed.
    #[serde(default)]
    pub allowed_keys: Vec<String>,
    /// Keys never touched.
    #[serde(default)]
    pub ignored_keys: Vec<String>,
    /// Regexes: keys never touched.
    #[serde(default)]
    pub ignored_key_patterns: Vec<String>,
    /// Regexes: what matches inside a value is masked.
    #[serde(default)]
    pub blocked_values: Vec<String>,
    /// Regexes: a value matching one is kept as is.
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// Regexes: keys whose whole value is masked.
    #[serde(default)]
    pub blocked_key_patterns: Vec<String>,
    /// Also scan non-string values (their text form); a masked one becomes a string.
    #[serde(default)]
    pub redact_all_types: bool,
    /// How contrib's rules replace a match: `none` (`****`), `md5`, `sha1`, `sha3`,
    /// `hmac-sha256`, `hmac-sha512`.
    #[serde(default)]
    pub hash_function: HashFunction,
    /// Key for the `hmac-*` hash functions.
    #[serde(default)]
    pub hmac_key: Option<String>,
    /// `debug` (keys and counts as attributes), `info` (counts), `silent` (default).
    #[serde(default)]
    pub summary: Summary,
    /// Built-in detectors: email, credit_card (Luhn-checked), us_ssn, ipv4, ipv6, jwt,
    /// bearer_token, phone.
    #[serde(default)]
    pub builtin: Vec<Builtin>,
    /// Query parameters whose values are replaced inside URL values.
    #[serde(default)]
    pub url_query_params: Vec<String>,
    /// `mask` (`****`) or `hash` (hex HMAC-SHA256 with `hash_key`) for builtins and URL params.
    #[serde(default)]
    pub action: Action,
    /// Key of `action: hash`; the same key gives the same output on every instance.
    #[serde(default)]
    pub hash_key: Option<String>,
}

// Keys are secrets: never print them.
impl fmt::Debug for RedactionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactionConfig")
            .field("allow_all_keys", &self.allow_all_keys)
            .field("allowed_keys", &self.allowed_keys)
            .field("ignored_keys", &self.ignored_keys)
            .field("ignored_key_patterns", &self.ignored_key_patterns)
            .field("blocked_values", &self.blocked_values)
            .field("allowed_values", &self.allowed_values)
            .field("blocked_key_patterns", &self.blocked_key_patterns)
            .field("redact_all_types", &self.redact_all_types)
            .field("hash_function", &self.hash_function)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .field("summary", &self.summary)
            .field("builtin", &self.builtin)
            .field("url_query_params", &self.url_query_params)
            .field("action", &self.action)
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn regex_problems(field: &str, patterns: &[String], out: &mut Problems) {
    for (i, p) in patterns.iter().enumerate() {
        if let Err(e) = regex::Regex::new(p) {
            out.push((format!("{field}[{i}]"), format!("invalid regex: {e}")));
        }
    }
}

impl Check for RedactionConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        regex_problems("ignored_key_patterns", &self.ignored_key_patterns, &mut out);
        regex_problems("blocked_values", &self.blocked_values, &mut out);
        regex_problems("allowed_values", &self.allowed_values, &mut out);
        regex_problems("blocked_key_patterns", &self.blocked_key_patterns, &mut out);
        if self.hash_function.needs_key() && self.hmac_key.as_deref().unwrap_or("").is_empty() {
            out.push((
                "hmac_key".into(),
                "required by the hmac hash functions".into(),
            ));
        }
        if self.action == Action::Hash && self.hash_key.as_deref().unwrap_or("").is_empty() {
            out.push(("hash_key".into(), "required by `action: hash`".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<RedactionConfig>(v)?))
}

/// Attributes the summary writes; always allowed, so a second redaction processor keeps them.
const SUMMARY_KEYS: [&str; 7] = [
    "redaction.redacted.keys",
    "redaction.redacted.count",
    "redaction.masked.keys",
    "redaction.masked.count",
    "redaction.allowed.keys",
    "redaction.allowed.count",
    "redaction.ignored.count",
];

impl RedactionConfig {
    pub fn redactor(&self, metrics: &Metrics, processor: &str) -> Result<Redactor, String> {
        let set = |p: &[String]| RegexSet::new(p).map_err(|e| e.to_string());
        let mut allowed: HashSet<String> = self.allowed_keys.iter().cloned().collect();
        allowed.extend(SUMMARY_KEYS.iter().map(|k| k.to_string()));
        let value_hasher = Hasher::new(self.hash_function, self.hmac_key.as_deref().unwrap_or(""));
        let action_hasher = match self.action {
            Action::Mask => Hasher::mask(),
            Action::Hash => Hasher::new(
                HashFunction::HmacSha256,
                self.hash_key.as_deref().unwrap_or(""),
            ),
        };
        let mut kinds: Vec<&'static str> =
            vec!["blocked_value", "blocked_key", "url_param", "removed_key"];
        kinds.extend(self.builtin.iter().map(|b| b.name()));
        Ok(Redactor {
            allow_all: self.allow_all_keys.unwrap_or(self.allowed_keys.is_empty()),
            allowed,
            ignored: self.ignored_keys.iter().cloned().collect(),
            ignored_patterns: set(&self.ignored_key_patterns)?,
            allowed_values: set(&self.allowed_values)?,
            blocked_keys: set(&self.blocked_key_patterns)?,
            detector: Detector::new(&self.blocked_values, &self.builtin)
                .map_err(|e| e.to_string())?,
            url_params: self.url_query_params.clone(),
            redact_all_types: self.redact_all_types,
            summary: self.summary,
            // contrib's rules hash with hash_function; when that is `none`, `action` decides.
            blocked_hasher: if self.hash_function == HashFunction::None {
                action_hasher.clone()
            } else {
                value_hasher
            },
            action_hasher,
            counters: kinds
                .into_iter()
                .map(|k| (k, metrics.processor_redactions(processor, k)))
                .collect(),
        })
    }
}

impl ProcessorConfig for RedactionConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let r = self
            .redactor(&ctx.telemetry.metrics, &ctx.id.to_string())
            .map_err(|e| BuildError::new(&ctx.id, e))?;
        Ok(Processor::Inline(Box::new(r)))
    }
}

pub struct Redactor {
    allow_all: bool,
    allowed: HashSet<String>,
    ignored: HashSet<String>,
    ignored_patterns: RegexSet,
    allowed_values: RegexSet,
    blocked_keys: RegexSet,
    detector: Detector,
    url_params: Vec<String>,
    redact_all_types: bool,
    summary: Summary,
    blocked_hasher: Hasher,
    action_hasher: Hasher,
    counters: HashMap<&'static str, Counter>,
}

/// Whether `set` matches `s`; an empty set answers without the regex machinery (its pool of
/// search caches costs a round trip per call, and most sets are empty).
fn hit(set: &RegexSet, s: &str) -> bool {
    !set.is_empty() && set.is_match(s)
}

/// The text form of a scalar (contrib's `AsString`), for `redact_all_types`.
fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::BytesValue(b) => Some(crate::data::json::encode_base64(b)),
        _ => None,
    }
}

fn set_str(slot: &mut Option<AnyValue>, s: String) {
    *slot = Some(AnyValue {
        value: Some(Value::StringValue(s)),
    });
}

impl Redactor {
    fn ignored_key(&self, k: &str) -> bool {
        (!self.ignored.is_empty() && self.ignored.contains(k)) || hit(&self.ignored_patterns, k)
    }

    fn count(&self, kind: &'static str, n: u64) {
        if let Some(c) = self.counters.get(kind) {
            c.inc_by(n);
        }
    }

    fn count_hits(&self, hits: &mut Vec<Hit>) {
        for h in hits.drain(..) {
            self.count(h.kind.label(), 1);
        }
    }

    /// Blocked values, built-ins, then URL parameters; `None` when nothing changed.
    fn scrub_text(&self, text: &str, key: &str, hits: &mut Vec<Hit>) -> Option<String> {
        let mut replace = |kind: Kind, m: &str| match kind {
            Kind::Blocked => self.blocked_hasher.apply(m),
            Kind::Builtin(_) => self.action_hasher.apply(m),
        };
        let after_patterns = self.detector.redact(text, &mut replace, hits);
        let current = after_patterns.as_deref().unwrap_or(text);
        let after_url = if self.url_params.is_empty() {
            None
        } else {
            let whole = url::is_query_key(key);
            if whole || current.contains('?') {
                let r = url::scrub(current, &self.url_params, whole, &mut |v| {
                    self.action_hasher.apply(v)
                });
                if r.is_some() {
                    self.count("url_param", 1);
                }
                r
            } else {
                None
            }
        };
        after_url.or(after_patterns)
    }

    /// Nested values (arrays, key-value lists): key rules and value scrubbing all the way down.
    fn scrub_nested(&self, value: &mut AnyValue, key: &str, hits: &mut Vec<Hit>) -> bool {
        match value.value.as_mut() {
            Some(Value::StringValue(s)) => match self.scrub_text(s, key, hits) {
                Some(new) => {
                    *s = new;
                    true
                }
                None => false,
            },
            Some(Value::ArrayValue(a)) => {
                let mut changed = false;
                for v in &mut a.values {
                    changed |= self.scrub_nested(v, key, hits);
                }
                changed
            }
            Some(Value::KvlistValue(kvs)) => {
                let mut changed = false;
                for kv in &mut kvs.values {
                    if self.ignored_key(&kv.key) {
                        continue;
                    }
                    if hit(&self.blocked_keys, &kv.key) {
                        let text = kv
                            .value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .and_then(as_string)
                            .unwrap_or_default();
                        set_str(&mut kv.value, self.blocked_hasher.apply(&text));
                        self.count("blocked_key", 1);
                        changed = true;
                    } else if let Some(v) = kv.value.as_mut() {
                        changed |= self.scrub_nested(v, &kv.key, hits);
                    }
                }
                changed
            }
            Some(other) if self.redact_all_types => {
                let text = as_string(other).unwrap_or_default();
                match self.scrub_text(&text, key, hits) {
                    Some(new) => {
                        *other = Value::StringValue(new);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// One attribute map, in contrib's order; adds the summary attributes.
    pub fn process_attrs(&self, attrs: &mut Vec<KeyValue>, hits: &mut Vec<Hit>) {
        let mut redacted: Vec<String> = Vec::new();
        let mut masked: Vec<String> = Vec::new();
        let mut allowed: Vec<String> = Vec::new();
        let mut ignored = 0i64;
        for kv in attrs.iter_mut() {
            if self.ignored_key(&kv.key) {
                ignored += 1;
                continue;
            }
            if !self.allow_all && !self.allowed.contains(&kv.key) {
                redacted.push(kv.key.clone());
                continue;
            }
            let inner = kv.value.as_ref().and_then(|v| v.value.as_ref());
            let nested = matches!(
                inner,
                Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_))
            );
            // contrib reads non-strings as "" unless redact_all_types.
            let text: std::borrow::Cow<'_, str> = match inner {
                Some(Value::StringValue(s)) => std::borrow::Cow::Borrowed(s.as_str()),
                Some(v) if self.redact_all_types && !nested => {
                    std::borrow::Cow::Owned(as_string(v).unwrap_or_default())
                }
                _ => std::borrow::Cow::Borrowed(""),
            };
            if hit(&self.allowed_values, &text) {
                allowed.push(kv.key.clone());
                continue;
            }
            if hit(&self.blocked_keys, &kv.key) {
                let whole = self.blocked_hasher.apply(&text);
                set_str(&mut kv.value, whole);
                masked.push(kv.key.clone());
                self.count("blocked_key", 1);
                continue;
            }
            if nested {
                if let Some(v) = kv.value.as_mut() {
                    if self.scrub_nested(v, &kv.key, hits) {
                        masked.push(kv.key.clone());
                    }
                }
                continue;
            }
            let changed = self.scrub_text(&text, &kv.key, hits);
            if let Some(new) = changed {
                masked.push(kv.key.clone());
                set_str(&mut kv.value, new);
            }
        }
        if !redacted.is_empty() {
            attrs.retain(|kv| !redacted.contains(&kv.key));
            self.count("removed_key", redacted.len() as u64);
        }
        self.summarize(
            attrs,
            redacted,
            "redaction.redacted.keys",
            "redaction.redacted.count",
        );
        self.summarize(
            attrs,
            masked,
            "redaction.masked.keys",
            "redaction.masked.count",
        );
        self.summarize(
            attrs,
            allowed,
            "redaction.allowed.keys",
            "redaction.allowed.count",
        );
        if ignored > 0 && self.summary != Summary::Silent {
            self.put_count(attrs, "redaction.ignored.count", ignored);
        }
    }

    /// contrib's `addMetaAttrs`: merges with what an earlier redaction processor wrote.
    fn summarize(
        &self,
        attrs: &mut Vec<KeyValue>,
        mut keys: Vec<String>,
        keys_attr: &str,
        count_attr: &str,
    ) {
        if keys.is_empty() || self.summary == Summary::Silent {
            return;
        }
        let count = keys.len() as i64;
        if self.summary == Summary::Debug {
            if let Some(existing) = attrs.iter().find(|kv| kv.key == keys_attr) {
                if let Some(Value::StringValue(s)) =
                    existing.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    if !s.is_empty() {
                        keys.extend(s.split(',').map(str::to_string));
                    }
                }
            }
            keys.sort();
            let joined = keys.join(",");
            set_attr(attrs, keys_attr, Value::StringValue(joined));
        }
        self.put_count(attrs, count_attr, count);
    }

    fn put_count(&self, attrs: &mut Vec<KeyValue>, key: &str, n: i64) {
        let existing = attrs
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::IntValue(i) => Some(*i),
                _ => None,
            })
            .unwrap_or(0);
        set_attr(attrs, key, Value::IntValue(existing + n));
    }

    #[cfg(test)]
    fn scrub_in_place(&self, s: &mut String, key: &str, hits: &mut Vec<Hit>) {
        if hit(&self.allowed_values, s) {
            return;
        }
        if let Some(new) = self.scrub_text(s, key, hits) {
            *s = new;
        }
    }

    /// The decode-path reference of one span, as the processor ran before it edited bytes
    /// (the tests hold the byte path to it).
    #[cfg(test)]
    fn process_span(
        &self,
        span: &mut opentelemetry_proto::tonic::trace::v1::Span,
        hits: &mut Vec<Hit>,
    ) {
        self.process_attrs(&mut span.attributes, hits);
        self.scrub_in_place(&mut span.name, "span.name", hits);
        for e in &mut span.events {
            self.process_attrs(&mut e.attributes, hits);
            self.scrub_in_place(&mut e.name, "event.name", hits);
        }
        for l in &mut span.links {
            self.process_attrs(&mut l.attributes, hits);
        }
        if let Some(st) = span.status.as_mut() {
            self.scrub_in_place(&mut st.message, "status.message", hits);
        }
    }

    #[cfg(test)]
    fn process_reference(&self, rs: &mut [opentelemetry_proto::tonic::trace::v1::ResourceSpans]) {
        let mut hits = Vec::new();
        for rs in rs {
            if let Some(r) = rs.resource.as_mut() {
                self.process_attrs(&mut r.attributes, &mut hits);
            }
            for ss in &mut rs.scope_spans {
                if let Some(sc) = ss.scope.as_mut() {
                    self.process_attrs(&mut sc.attributes, &mut hits);
                }
                for span in &mut ss.spans {
                    self.process_span(span, &mut hits);
                }
            }
        }
        self.count_hits(&mut hits);
    }

    /// One attribute of a streamed list: [`Redactor::process_attrs`]'s rules, the decisions
    /// noted in `list` for its summary.
    fn edit_attr(
        &self,
        list: &mut ListState,
        key: &str,
        value: ValueRef<'_>,
        hits: &mut Vec<Hit>,
    ) -> Edit {
        if self.ignored_key(key) {
            list.ignored += 1;
            return Edit::Keep;
        }
        if !self.allow_all && !self.allowed.contains(key) {
            list.redacted.push(key.to_string());
            return Edit::Drop;
        }
        let nested = matches!(value, ValueRef::Array(_) | ValueRef::Map(_));
        let text: std::borrow::Cow<'_, str> = match value {
            ValueRef::Str(s) => std::borrow::Cow::Borrowed(s),
            v if self.redact_all_types && !nested => std::borrow::Cow::Owned(
                v.to_value()
                    .as_ref()
                    .and_then(as_string)
                    .unwrap_or_default(),
            ),
            _ => std::borrow::Cow::Borrowed(""),
        };
        if hit(&self.allowed_values, &text) {
            list.allowed.push(key.to_string());
            return Edit::Keep;
        }
        if hit(&self.blocked_keys, key) {
            list.masked.push(key.to_string());
            self.count("blocked_key", 1);
            return Edit::Set(Value::StringValue(self.blocked_hasher.apply(&text)));
        }
        if nested {
            let mut v = AnyValue {
                value: value.to_value(),
            };
            if self.scrub_nested(&mut v, key, hits) {
                list.masked.push(key.to_string());
                if let Some(v) = v.value {
                    return Edit::Set(v);
                }
            }
            return Edit::Keep;
        }
        match self.scrub_text(&text, key, hits) {
            Some(new) => {
                list.masked.push(key.to_string());
                Edit::Set(Value::StringValue(new))
            }
            None => Edit::Keep,
        }
    }

    /// The end of a streamed list: the summary attributes (none were there: a list that had
    /// some goes [`Plan::Whole`], to merge with them).
    fn end_list(&self, list: &mut ListState, append: &mut Vec<KeyValue>) {
        let redacted = std::mem::take(&mut list.redacted);
        if !redacted.is_empty() {
            self.count("removed_key", redacted.len() as u64);
        }
        self.summarize(
            append,
            redacted,
            "redaction.redacted.keys",
            "redaction.redacted.count",
        );
        self.summarize(
            append,
            std::mem::take(&mut list.masked),
            "redaction.masked.keys",
            "redaction.masked.count",
        );
        self.summarize(
            append,
            std::mem::take(&mut list.allowed),
            "redaction.allowed.keys",
            "redaction.allowed.count",
        );
        if list.ignored > 0 && self.summary != Summary::Silent {
            self.put_count(append, "redaction.ignored.count", list.ignored);
        }
        list.ignored = 0;
    }
}

/// What one open attribute list has seen so far.
#[derive(Default)]
struct ListState {
    redacted: Vec<String>,
    masked: Vec<String>,
    allowed: Vec<String>,
    ignored: i64,
}

/// One batch's pass over its spans, bytes or structs (see [`crate::data::edit`]).
struct Pass<'a> {
    r: &'a Redactor,
    /// Per [`Level`]: a span's list stays open while its events' lists are edited.
    lists: [ListState; 5],
    hits: Vec<Hit>,
}

impl Editor for Pass<'_> {
    fn wants(&self, _level: Level) -> bool {
        true
    }

    fn begin(&mut self, at: At<'_>) -> Plan {
        // A summary from an earlier redaction processor merges with this one's: the rare list
        // that has one is edited whole, by the rules' reference form.
        if at
            .attributes()
            .key_bytes()
            .any(|k| k.starts_with(b"redaction."))
        {
            Plan::Whole
        } else {
            Plan::Stream
        }
    }

    fn attr(&mut self, level: Level, key: &str, value: ValueRef<'_>) -> Edit {
        self.r
            .edit_attr(&mut self.lists[level as usize], key, value, &mut self.hits)
    }

    fn end(&mut self, level: Level, append: &mut Vec<KeyValue>) {
        self.r.end_list(&mut self.lists[level as usize], append);
    }

    fn whole(&mut self, _level: Level, attrs: &mut Vec<KeyValue>) {
        self.r.process_attrs(attrs, &mut self.hits);
    }

    fn texts(&self) -> bool {
        true
    }

    fn text(&mut self, which: Text, text: &str) -> Option<String> {
        let key = match which {
            Text::SpanName => "span.name",
            Text::EventName => "event.name",
            Text::StatusMessage => "status.message",
        };
        if hit(&self.r.allowed_values, text) {
            return None;
        }
        self.r.scrub_text(text, key, &mut self.hits)
    }
}

impl InlineProcessor for Redactor {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let mut pass = Pass {
            r: self,
            lists: Default::default(),
            hits: Vec::new(),
        };
        batch.edit(&mut pass);
        self.count_hits(&mut pass.hits);
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests;
