//! Policies, compiled. Span-level conditions (attributes, status, trace state) become numbered
//! predicates evaluated once per span on arrival and OR-ed into a per-trace bitset, so deciding
//! needs no span data. Decisions and their combination follow the contrib collector.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use regex::RegexSet;

use super::config::{PolicyConfig, PolicyType};
use crate::data::view::{Attrs, SpanRef, ValueRef};
use crate::processors::hash::fnv1a64_salted;
use crate::processors::token_bucket::Bucket;

/// Attribute/status/trace-state conditions are bits of a `u64`.
pub const MAX_PREDICATES: usize = 64;

const DEFAULT_SALT: &str = "default-hash-seed";

/// One policy's verdict, as contrib names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Sampled,
    NotSampled,
    InvertSampled,
    InvertNotSampled,
    Dropped,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Sampled => "sampled",
            Decision::NotSampled => "not_sampled",
            Decision::InvertSampled => "inverted_sampled",
            Decision::InvertNotSampled => "inverted_not_sampled",
            Decision::Dropped => "dropped",
        }
    }
}

/// What deciding a trace needs to know about it.
#[derive(Debug, Clone, Default)]
pub struct TraceFacts {
    pub trace_id: [u8; 16],
    pub spans: u64,
    pub bytes: u64,
    pub min_start: u64,
    pub max_end: u64,
    /// Predicate `i` matched some span (or resource) of the trace.
    pub matched: u64,
}

enum Matcher {
    Exact(HashSet<String>),
    Regex(RegexSet),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(set) => set.contains(s),
            Matcher::Regex(set) => set.is_match(s),
        }
    }
}

enum Predicate {
    /// Bit `1 << code` for each status code listed.
    Status(u8),
    Str {
        key: String,
        matcher: Matcher,
    },
    Num {
        key: String,
        min: i64,
        max: i64,
    },
    Bool {
        key: String,
        value: bool,
    },
    TraceState {
        key: String,
        values: HashSet<String>,
    },
}

// pdata accessors return the zero value for another type; contrib's filters rely on that.
fn as_str(v: ValueRef<'_>) -> &str {
    v.as_str().unwrap_or("")
}
fn as_int(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Int(i) => i,
        _ => 0,
    }
}
fn as_bool(v: ValueRef<'_>) -> bool {
    matches!(v, ValueRef::Bool(true))
}

impl Predicate {
    fn attrs_match(&self, attrs: Attrs<'_>, span_level: bool) -> bool {
        match self {
            Predicate::Str { key, matcher } => attrs.get(key).is_some_and(|v| {
                let s = as_str(v);
                // contrib skips empty span values (not resource ones).
                !(span_level && s.is_empty()) && matcher.matches(s)
            }),
            Predicate::Num { key, min, max } => attrs
                .get(key)
                .is_some_and(|v| (*min..=*max).contains(&as_int(v))),
            Predicate::Bool { key, value } => attrs.get(key).is_some_and(|v| as_bool(v) == *value),
            Predicate::Status(_) | Predicate::TraceState { .. } => false,
        }
    }

    fn span_matches(&self, span: SpanRef<'_>) -> bool {
        match self {
            Predicate::Status(codes) => {
                let code = span.status_code();
                (0..3).contains(&code) && codes & (1 << code) != 0
            }
            Predicate::TraceState { key, values } => span
                .trace_state()
                .split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .any(|(k, v)| k == key && values.contains(v)),
            _ => self.attrs_match(span.attributes(), true),
        }
    }
}

/// Contrib's limiters: the burst defaults to twice the rate.
fn bucket(rate: i64, burst: Option<i64>) -> Bucket {
    let burst = burst.filter(|b| *b > 0).unwrap_or(rate.saturating_mul(2));
    Bucket::new(rate as f64, burst as f64)
}

enum Node {
    Always,
    Probabilistic { salt: Vec<u8>, threshold: u64 },
    Latency { lower_ms: i64, upper_ms: i64 },
    Predicate { bit: usize, invert: bool },
    SpanCount { min: i64, max: i64 },
    Rate(Mutex<Bucket>),
    Bytes(Mutex<Bucket>),
    And(Vec<Node>),
    Not(Box<Node>),
    Drop(Vec<Node>),
}

/// contrib: `big.Float(MaxUint64) * big.NewFloat(ratio)` rounded to 64 significant bits (nearest
/// even), then truncated by `Uint64()`. Done exactly with integers.
pub fn probabilistic_threshold(ratio: f64) -> u64 {
    if ratio <= 0.0 || ratio.is_nan() {
        return 0;
    }
    let bits = ratio.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mant, exp) = if raw_exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), raw_exp - 1075)
    };
    let product = u128::from(u64::MAX) * u128::from(mant);
    let len = 128 - product.leading_zeros() as i32;
    let shift = (len - 64).max(0);
    let mut rounded = product >> shift;
    if shift > 0 {
        let rem = product & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        if rem > half || (rem == half && rounded & 1 == 1) {
            rounded += 1;
        }
    }
    let total = shift + exp;
    let value = if total >= 0 {
        if total >= 64 || rounded.leading_zeros() < 64 + total as u32 {
            return u64::MAX;
        }
        rounded << total
    } else if -total >= 128 {
        0
    } else {
        rounded >> (-total)
    };
    u64::try_from(value).unwrap_or(u64::MAX)
}

pub fn count_predicates(policies: &[PolicyConfig]) -> usize {
    policies.iter().map(count_one).sum()
}

fn count_one(p: &PolicyConfig) -> usize {
    match p.kind {
        PolicyType::StatusCode
        | PolicyType::StringAttribute
        | PolicyType::NumericAttribute
        | PolicyType::BooleanAttribute
        | PolicyType::TraceState => 1,
        PolicyType::And => p
            .and
            .as_ref()
            .map_or(0, |a| count_predicates(&a.and_sub_policy)),
        PolicyType::Drop => p
            .drop
            .as_ref()
            .map_or(0, |d| count_predicates(&d.drop_sub_policy)),
        PolicyType::Not => p.not.as_ref().map_or(0, |n| count_one(&n.not_sub_policy)),
        _ => 0,
    }
}

/// The compiled policy set of one tail sampler.
pub struct Policies {
    pub names: Vec<String>,
    roots: Vec<Node>,
    predicates: Vec<Predicate>,
    sample_on_first_match: bool,
}

impl Policies {
    /// Compiles checked configs (see `TailSamplingConfig::check`).
    pub fn compile(configs: &[PolicyConfig], sample_on_first_match: bool) -> Policies {
        let mut predicates = Vec::new();
        let roots = configs
            .iter()
            .map(|c| compile(c, &mut predicates))
            .collect();
        Policies {
            names: configs.iter().map(|c| c.name.clone()).collect(),
            roots,
            predicates,
            sample_on_first_match,
        }
    }

    /// Predicates a resource's attributes satisfy (computed once per `ResourceSpans`).
    pub fn resource_bits(&self, attrs: Attrs<'_>) -> u64 {
        self.bits(|p| p.attrs_match(attrs.clone(), false))
    }

    pub fn span_bits(&self, span: SpanRef<'_>) -> u64 {
        self.bits(|p| p.span_matches(span))
    }

    fn bits(&self, f: impl Fn(&Predicate) -> bool) -> u64 {
        self.predicates
            .iter()
            .enumerate()
            .filter(|(_, p)| f(p))
            .fold(0, |acc, (i, _)| acc | (1 << i))
    }

    /// Evaluates the policies in order; returns whether to keep the trace and each evaluated
    /// policy's decision (for per-policy metrics).
    pub fn decide(&self, facts: &TraceFacts, now: Instant) -> (bool, Vec<(usize, Decision)>) {
        let mut seen = Vec::with_capacity(self.roots.len());
        for (i, node) in self.roots.iter().enumerate() {
            let d = eval(node, facts, now);
            seen.push((i, d));
            if d == Decision::Dropped || (self.sample_on_first_match && d == Decision::Sampled) {
                break;
            }
        }
        let has = |d: Decision| seen.iter().any(|(_, x)| *x == d);
        let keep = if has(Decision::Dropped) || has(Decision::InvertNotSampled) {
            false
        } else if has(Decision::Sampled) {
            true
        } else {
            has(Decision::InvertSampled) && !has(Decision::NotSampled)
        };
        (keep, seen)
    }
}

fn compile(c: &PolicyConfig, predicates: &mut Vec<Predicate>) -> Node {
    let mut pred = |p: Predicate, invert: bool| {
        predicates.push(p);
        Node::Predicate {
            bit: predicates.len() - 1,
            invert,
        }
    };
    match c.kind {
        PolicyType::AlwaysSample => Node::Always,
        PolicyType::Probabilistic => {
            let p = c.probabilistic.as_ref().expect("checked");
            let salt = if p.hash_salt.is_empty() {
                DEFAULT_SALT
            } else {
                &p.hash_salt
            };
            Node::Probabilistic {
                salt: salt.as_bytes().to_vec(),
                threshold: probabilistic_threshold(p.sampling_percentage / 100.0),
            }
        }
        PolicyType::Latency => {
            let l = c.latency.as_ref().expect("checked");
            Node::Latency {
                lower_ms: l.threshold_ms,
                upper_ms: l.upper_threshold_ms,
            }
        }
        PolicyType::StatusCode => {
            let s = c.status_code.as_ref().expect("checked");
            let mask = s.status_codes.iter().fold(0u8, |m, code| {
                m | match code.as_str() {
                    "UNSET" => 1,
                    "OK" => 2,
                    _ => 4,
                }
            });
            pred(Predicate::Status(mask), false)
        }
        PolicyType::StringAttribute => {
            let s = c.string_attribute.as_ref().expect("checked");
            let matcher = if s.enabled_regex_matching {
                Matcher::Regex(RegexSet::new(&s.values).expect("checked"))
            } else {
                Matcher::Exact(s.values.iter().filter(|v| !v.is_empty()).cloned().collect())
            };
            pred(
                Predicate::Str {
                    key: s.key.clone(),
                    matcher,
                },
                s.invert_match,
            )
        }
        PolicyType::NumericAttribute => {
            let n = c.numeric_attribute.as_ref().expect("checked");
            pred(
                Predicate::Num {
                    key: n.key.clone(),
                    min: n.min_value.unwrap_or(i64::MIN),
                    max: n.max_value.unwrap_or(i64::MAX),
                },
                n.invert_match,
            )
        }
        PolicyType::BooleanAttribute => {
            let b = c.boolean_attribute.as_ref().expect("checked");
            pred(
                Predicate::Bool {
                    key: b.key.clone(),
                    value: b.value,
                },
                b.invert_match,
            )
        }
        PolicyType::TraceState => {
            let t = c.trace_state.as_ref().expect("checked");
            let values = t
                .values
                .iter()
                .filter(|v| !v.is_empty() && t.key.len() + v.len() < 256)
                .cloned()
                .collect();
            pred(
                Predicate::TraceState {
                    key: t.key.clone(),
                    values,
                },
                false,
            )
        }
        PolicyType::SpanCount => {
            let s = c.span_count.as_ref().expect("checked");
            Node::SpanCount {
                min: s.min_spans,
                max: s.max_spans,
            }
        }
        PolicyType::RateLimiting => {
            let r = c.rate_limiting.as_ref().expect("checked");
            Node::Rate(Mutex::new(bucket(r.spans_per_second, r.burst_capacity)))
        }
        PolicyType::BytesLimiting => {
            let b = c.bytes_limiting.as_ref().expect("checked");
            Node::Bytes(Mutex::new(bucket(b.bytes_per_second, b.burst_capacity)))
        }
        PolicyType::And => Node::And(
            c.and
                .as_ref()
                .expect("checked")
                .and_sub_policy
                .iter()
                .map(|p| compile(p, predicates))
                .collect(),
        ),
        PolicyType::Not => Node::Not(Box::new(compile(
            &c.not.as_ref().expect("checked").not_sub_policy,
            predicates,
        ))),
        PolicyType::Drop => Node::Drop(
            c.drop
                .as_ref()
                .expect("checked")
                .drop_sub_policy
                .iter()
                .map(|p| compile(p, predicates))
                .collect(),
        ),
    }
}

fn sampled(yes: bool) -> Decision {
    if yes {
        Decision::Sampled
    } else {
        Decision::NotSampled
    }
}

fn eval(node: &Node, f: &TraceFacts, now: Instant) -> Decision {
    match node {
        Node::Always => Decision::Sampled,
        Node::Probabilistic { salt, threshold } => {
            sampled(fnv1a64_salted(salt, &f.trace_id) <= *threshold)
        }
        Node::Latency { lower_ms, upper_ms } => {
            // Go's Duration.Milliseconds() truncates.
            let ms = (f.max_end.saturating_sub(f.min_start) / 1_000_000) as i64;
            if *upper_ms == 0 {
                sampled(ms >= *lower_ms)
            } else {
                sampled(*lower_ms < ms && ms <= *upper_ms)
            }
        }
        Node::Predicate { bit, invert } => {
            let hit = f.matched & (1 << bit) != 0;
            match (*invert, hit) {
                (false, h) => sampled(h),
                (true, true) => Decision::InvertNotSampled,
                (true, false) => Decision::InvertSampled,
            }
        }
        Node::SpanCount { min, max } => {
            let n = f.spans as i64;
            sampled(n >= *min && (*max == 0 || n <= *max))
        }
        Node::Rate(b) => sampled(
            b.lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(f.spans as f64, now),
        ),
        Node::Bytes(b) => sampled(
            b.lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(f.bytes as f64, now),
        ),
        Node::And(subs) => {
            let fails = subs.iter().any(|s| {
                matches!(
                    eval(s, f, now),
                    Decision::NotSampled | Decision::InvertNotSampled
                )
            });
            sampled(!fails)
        }
        Node::Not(sub) => match eval(sub, f, now) {
            Decision::Sampled => Decision::NotSampled,
            Decision::NotSampled => Decision::Sampled,
            other => other,
        },
        Node::Drop(subs) => {
            let fails = subs.iter().any(|s| {
                matches!(
                    eval(s, f, now),
                    Decision::NotSampled | Decision::InvertNotSampled
                )
            });
            if fails {
                Decision::NotSampled
            } else {
                Decision::Dropped
            }
        }
    }
}
