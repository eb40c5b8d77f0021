//! `processors.tail_sampling`: the contrib collector's format, so a contrib block pastes in.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::component::registry::{Check, Problems};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingConfig {
    /// How long after a trace's first span it is decided (default 30s).
    #[serde(default = "d_wait", with = "crate::config::duration")]
    pub decision_wait: Duration,
    /// At most this many undecided traces; at the limit the oldest is decided early (default 50000).
    #[serde(default = "d_num_traces")]
    pub num_traces: usize,
    /// Sizing hint, as in contrib: the buffer is preallocated for `decision_wait` of this rate.
    #[serde(default)]
    pub expected_new_traces_per_sec: u64,
    /// Remembered decisions, so spans arriving after a decision follow it.
    #[serde(default)]
    pub decision_cache: DecisionCacheConfig,
    /// Stop evaluating at the first policy that samples.
    #[serde(default)]
    pub sample_on_first_match: bool,
    /// When set, a trace is decided this long after its root span arrives (if that is sooner).
    #[serde(default, deserialize_with = "opt_duration")]
    pub decision_wait_after_root_received: Option<Duration>,
    /// At `num_traces`, stop taking new spans (backpressure) instead of deciding the oldest early.
    #[serde(default)]
    pub block_on_overflow: bool,
    /// A trace larger than this (bytes of encoded spans) is dropped, as in contrib; 0 = no limit.
    #[serde(default)]
    pub maximum_trace_size_bytes: u64,
    /// On shutdown, drop (and count) waiting traces instead of deciding them.
    #[serde(default)]
    pub drop_pending_traces_on_shutdown: bool,
    /// Lock shards of the buffer (default: 4 per CPU).
    #[serde(default)]
    pub num_shards: Option<usize>,
    /// spangate's own: bound on the bytes of waiting spans; at the limit the oldest trace is
    /// decided early (default 256 MiB; 0 = no byte bound).
    #[serde(default = "d_max_bytes")]
    pub max_buffered_bytes: u64,
    /// Evaluated in order; see the contract for how decisions combine.
    pub policies: Vec<PolicyConfig>,
}

fn d_wait() -> Duration {
    Duration::from_secs(30)
}
fn d_num_traces() -> usize {
    50_000
}
fn d_max_bytes() -> u64 {
    256 * 1024 * 1024
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::config::duration::deserialize(d).map(|v| (!v.is_zero()).then_some(v))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionCacheConfig {
    /// Trace ids remembered as sampled (exact; ~40 bytes each). Default 100000; 0 = off.
    #[serde(default = "d_sampled")]
    pub sampled_cache_size: usize,
    /// Trace ids remembered as not sampled, in a Bloom filter pair (~3 bytes each, false
    /// positive rate below 1e-4). Default 1000000; 0 = off.
    #[serde(default = "d_non_sampled")]
    pub non_sampled_cache_size: usize,
}

fn d_sampled() -> usize {
    100_000
}
fn d_non_sampled() -> usize {
    1_000_000
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        DecisionCacheConfig {
            sampled_cache_size: d_sampled(),
            non_sampled_cache_size: d_non_sampled(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    AlwaysSample,
    Probabilistic,
    Latency,
    StatusCode,
    StringAttribute,
    NumericAttribute,
    BooleanAttribute,
    TraceState,
    SpanCount,
    RateLimiting,
    BytesLimiting,
    And,
    Not,
    Drop,
}

/// One policy: `name`, `type`, and the block named after the type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Shown in metrics (`policy` label) and logs.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PolicyType,
    #[serde(default)]
    pub probabilistic: Option<ProbabilisticCfg>,
    #[serde(default)]
    pub latency: Option<LatencyCfg>,
    #[serde(default)]
    pub status_code: Option<StatusCodeCfg>,
    #[serde(default)]
    pub string_attribute: Option<StringAttributeCfg>,
    #[serde(default)]
    pub numeric_attribute: Option<NumericAttributeCfg>,
    #[serde(default)]
    pub boolean_attribute: Option<BooleanAttributeCfg>,
    #[serde(default)]
    pub trace_state: Option<TraceStateCfg>,
    #[serde(default)]
    pub span_count: Option<SpanCountCfg>,
    #[serde(default)]
    pub rate_limiting: Option<RateLimitingCfg>,
    #[serde(default)]
    pub bytes_limiting: Option<BytesLimitingCfg>,
    #[serde(default)]
    pub and: Option<AndCfg>,
    #[serde(default)]
    pub not: Option<NotCfg>,
    #[serde(default)]
    pub drop: Option<DropCfg>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticCfg {
    /// Salt of the FNV-1a 64 trace-id hash (default `default-hash-seed`, as contrib).
    #[serde(default)]
    pub hash_salt: String,
    /// Share of traces sampled, 0 to 100.
    pub sampling_percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyCfg {
    /// Sample traces lasting at least this long (max end - min start).
    pub threshold_ms: i64,
    /// When set, only up to this long (and then strictly longer than `threshold_ms`, as contrib).
    #[serde(default)]
    pub upper_threshold_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodeCfg {
    /// Any of `OK`, `ERROR`, `UNSET`.
    pub status_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributeCfg {
    pub key: String,
    pub values: Vec<String>,
    /// Treat `values` as regular expressions (unanchored, as contrib).
    #[serde(default)]
    pub enabled_regex_matching: bool,
    /// Accepted for contrib compatibility (its regex result cache); matching here needs none.
    #[serde(default)]
    pub cache_max_size: usize,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributeCfg {
    pub key: String,
    #[serde(default)]
    pub min_value: Option<i64>,
    #[serde(default)]
    pub max_value: Option<i64>,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BooleanAttributeCfg {
    pub key: String,
    pub value: bool,
    #[serde(default)]
    pub invert_match: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceStateCfg {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountCfg {
    pub min_spans: i64,
    /// 0 = no upper bound.
    #[serde(default)]
    pub max_spans: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingCfg {
    pub spans_per_second: i64,
    /// Token bucket size in spans (default 2 x spans_per_second, as contrib).
    #[serde(default)]
    pub burst_capacity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesLimitingCfg {
    pub bytes_per_second: i64,
    /// Token bucket size in bytes (default 2 x bytes_per_second, as contrib).
    #[serde(default)]
    pub burst_capacity: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndCfg {
    pub and_sub_policy: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotCfg {
    pub not_sub_policy: Box<PolicyConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropCfg {
    pub drop_sub_policy: Vec<PolicyConfig>,
}

impl PolicyConfig {
    /// Problems with this policy, paths relative to it.
    pub fn problems(&self, out: &mut Problems, path: &str) {
        let missing = |block: &str| {
            (
                format!("{path}.{block}"),
                format!(
                    "policy `{}` of type {block} needs a `{block}` block",
                    self.name
                ),
            )
        };
        let mut push = |field: &str, msg: String| out.push((format!("{path}.{field}"), msg));
        if self.name.is_empty() {
            push("name", "must not be empty".into());
        }
        match self.kind {
            PolicyType::AlwaysSample => {}
            PolicyType::Probabilistic => match &self.probabilistic {
                None => out.push(missing("probabilistic")),
                Some(p) if !(0.0..=100.0).contains(&p.sampling_percentage) => push(
                    "probabilistic.sampling_percentage",
                    "must be between 0 and 100".into(),
                ),
                Some(_) => {}
            },
            PolicyType::Latency => match &self.latency {
                None => out.push(missing("latency")),
                Some(l) if l.upper_threshold_ms != 0 && l.upper_threshold_ms < l.threshold_ms => {
                    push(
                        "latency.upper_threshold_ms",
                        "must be 0 or at least threshold_ms".into(),
                    )
                }
                Some(_) => {}
            },
            PolicyType::StatusCode => match &self.status_code {
                None => out.push(missing("status_code")),
                Some(s) => {
                    if s.status_codes.is_empty() {
                        push("status_code.status_codes", "must not be empty".into());
                    }
                    for (i, c) in s.status_codes.iter().enumerate() {
                        if !matches!(c.as_str(), "OK" | "ERROR" | "UNSET") {
                            push(
                                &format!("status_code.status_codes[{i}]"),
                                format!("unknown status code `{c}`, expected OK, ERROR or UNSET"),
                            );
                        }
                    }
                }
            },
            PolicyType::StringAttribute => match &self.string_attribute {
                None => out.push(missing("string_attribute")),
                Some(s) => {
                    if s.key.is_empty() {
                        push("string_attribute.key", "must not be empty".into());
                    }
                    if s.enabled_regex_matching {
                        for (i, v) in s.values.iter().enumerate() {
                            if let Err(e) = regex::Regex::new(v) {
                                push(
                                    &format!("string_attribute.values[{i}]"),
                                    format!("invalid regex: {e}"),
                                );
                            }
                        }
                    }
                }
            },
            PolicyType::NumericAttribute => match &self.numeric_attribute {
                None => out.push(missing("numeric_attribute")),
                Some(n) => {
                    if n.min_value.is_none() && n.max_value.is_none() {
                        push(
                            "numeric_attribute",
                            "set min_value, max_value or both".into(),
                        );
                    }
                    if let (Some(a), Some(b)) = (n.min_value, n.max_value) {
                        if a > b {
                            push(
                                "numeric_attribute.max_value",
                                "must be at least min_value".into(),
                            );
                        }
                    }
                }
            },
            PolicyType::BooleanAttribute => {
                if self.boolean_attribute.is_none() {
                    out.push(missing("boolean_attribute"));
                }
            }
            PolicyType::TraceState => {
                if self.trace_state.is_none() {
                    out.push(missing("trace_state"));
                }
            }
            PolicyType::SpanCount => match &self.span_count {
                None => out.push(missing("span_count")),
                Some(s) if s.max_spans != 0 && s.max_spans < s.min_spans => push(
                    "span_count.max_spans",
                    "must be 0 or at least min_spans".into(),
                ),
                Some(_) => {}
            },
            PolicyType::RateLimiting => match &self.rate_limiting {
                None => out.push(missing("rate_limiting")),
                Some(r) if r.spans_per_second <= 0 => push(
                    "rate_limiting.spans_per_second",
                    "must be greater than 0".into(),
                ),
                Some(_) => {}
            },
            PolicyType::BytesLimiting => match &self.bytes_limiting {
                None => out.push(missing("bytes_limiting")),
                Some(b) if b.bytes_per_second <= 0 => push(
                    "bytes_limiting.bytes_per_second",
                    "must be greater than 0".into(),
                ),
                Some(_) => {}
            },
            PolicyType::And => match &self.and {
                None => out.push(missing("and")),
                Some(a) => {
                    if a.and_sub_policy.is_empty() {
                        push("and.and_sub_policy", "must not be empty".into());
                    }
                    for (i, p) in a.and_sub_policy.iter().enumerate() {
                        p.problems(out, &format!("{path}.and.and_sub_policy[{i}]"));
                    }
                }
            },
            PolicyType::Not => match &self.not {
                None => out.push(missing("not")),
                Some(n) => n
                    .not_sub_policy
                    .problems(out, &format!("{path}.not.not_sub_policy")),
            },
            PolicyType::Drop => match &self.drop {
                None => out.push(missing("drop")),
                Some(d) => {
                    if d.drop_sub_policy.is_empty() {
                        push("drop.drop_sub_policy", "must not be empty".into());
                    }
                    for (i, p) in d.drop_sub_policy.iter().enumerate() {
                        p.problems(out, &format!("{path}.drop.drop_sub_policy[{i}]"));
                    }
                }
            },
        }
    }
}

impl Check for TailSamplingConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.decision_wait.is_zero() {
            out.push(("decision_wait".into(), "must be greater than 0".into()));
        }
        if self.num_traces == 0 {
            out.push(("num_traces".into(), "must be at least 1".into()));
        }
        if self.num_shards == Some(0) {
            out.push(("num_shards".into(), "must be at least 1".into()));
        }
        if self.policies.is_empty() {
            out.push(("policies".into(), "at least one policy is required".into()));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                out.push((
                    format!("policies[{i}].name"),
                    format!("duplicate policy name `{}`", p.name),
                ));
            }
            p.problems(&mut out, &format!("policies[{i}]"));
        }
        if out.is_empty() {
            let leaves = super::policy::count_predicates(&self.policies);
            if leaves > super::policy::MAX_PREDICATES {
                out.push((
                    "policies".into(),
                    format!(
                        "{leaves} attribute/status/trace_state policies; at most {} are supported",
                        super::policy::MAX_PREDICATES
                    ),
                ));
            }
        }
        out
    }
}
