//! `rate_limiting`: a token bucket in spans per second with `burst`, optionally one bucket per
//! value of a resource attribute `key` (bounded by `max_keys`; further keys share one bucket).
//!
//! With `whole_traces` (default) a trace is admitted or rejected as a unit: admitted at its first
//! spans, its later spans pass (still using the budget); rejected, its later spans are rejected
//! too. Recent decisions are remembered in bounded FIFO sets. `on_limit: drop` drops and counts
//! (`rate_limited`); `refuse` makes the receiver answer 429 / RESOURCE_EXHAUSTED with the time
//! the bucket needs as Retry-After, taking no tokens for the refused request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::token_bucket::Bucket;
use super::trace_cache::SampledCache as RecentIds;
use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict,
};
use crate::data::trace_map::{TraceHash, TraceMap};
use crate::data::view::{ResourceRef, ValueRef};
use crate::data::{trace_key, SpanBatch};
use crate::telemetry::metrics::Counter;

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    #[default]
    Drop,
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Sustained rate, spans per second.
    pub spans_per_second: f64,
    /// Bucket size in spans (default: one second's worth).
    #[serde(default)]
    pub burst: Option<f64>,
    /// Resource attribute whose value selects a bucket (e.g. `service.name`, a tenant id).
    #[serde(default)]
    pub key: Option<String>,
    /// Buckets at most; traffic of further key values shares one overflow bucket (default 10000).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Admit or reject traces as units (default true).
    #[serde(default = "yes")]
    pub whole_traces: bool,
    /// Trace ids remembered per decision for `whole_traces` (default 100000 each).
    #[serde(default = "default_memory")]
    pub trace_memory: usize,
    /// `drop` (counted) or `refuse` (the receiver answers with a retryable status).
    #[serde(default)]
    pub on_limit: OnLimit,
}

fn default_max_keys() -> usize {
    10_000
}
fn default_memory() -> usize {
    100_000
}
fn yes() -> bool {
    true
}

impl Check for RateLimitingConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.spans_per_second <= 0.0 || !self.spans_per_second.is_finite() {
            out.push(("spans_per_second".into(), "must be greater than 0".into()));
        }
        if self.burst.is_some_and(|b| b < 1.0) {
            out.push(("burst".into(), "must be at least 1".into()));
        }
        if self.key.as_deref() == Some("") {
            out.push(("key".into(), "must not be empty".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<RateLimitingConfig>(v)?))
}

impl RateLimitingConfig {
    fn limiter(&self, dropped: Counter) -> RateLimiter {
        let burst = self.burst.unwrap_or(self.spans_per_second).max(1.0);
        RateLimiter {
            rate: self.spans_per_second,
            burst,
            key: self.key.clone(),
            max_keys: self.max_keys,
            whole_traces: self.whole_traces,
            on_limit: self.on_limit,
            dropped,
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: Bucket::new(self.spans_per_second, burst),
                admitted: RecentIds::new(self.trace_memory),
                rejected: RecentIds::new(self.trace_memory),
            }),
        }
    }
}

impl ProcessorConfig for RateLimitingConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        let dropped = ctx
            .telemetry
            .metrics
            .processor_dropped(&ctx.id.to_string(), "rate_limited");
        Ok(Processor::Inline(Box::new(self.limiter(dropped))))
    }
}

struct State {
    buckets: HashMap<String, Bucket>,
    overflow: Bucket,
    admitted: RecentIds,
    rejected: RecentIds,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    key: Option<String>,
    max_keys: usize,
    whole_traces: bool,
    on_limit: OnLimit,
    dropped: Counter,
    state: Mutex<State>,
}

impl State {
    fn bucket(&mut self, key: &str, rate: f64, burst: f64, max_keys: usize) -> &mut Bucket {
        if !self.buckets.contains_key(key) {
            if self.buckets.len() >= max_keys {
                return &mut self.overflow;
            }
            self.buckets
                .insert(key.to_string(), Bucket::new(rate, burst));
        }
        self.buckets.get_mut(key).unwrap_or(&mut self.overflow)
    }
}

/// What a batch asks of one bucket for one trace.
struct Demand {
    /// Index into the batch's bucket keys.
    bucket: usize,
    trace: u128,
    spans: u64,
}

impl RateLimiter {
    fn bucket_key<'a>(&self, resource: ResourceRef<'a>) -> &'a str {
        let Some(key) = &self.key else { return "" };
        resource
            .attribute(key)
            .and_then(ValueRef::as_str)
            .unwrap_or("")
    }
}

impl InlineProcessor for RateLimiter {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let now = Instant::now();
        // Group the batch's spans by bucket and trace, in order of appearance, reading them
        // where they lie.
        let mut keys: Vec<&str> = Vec::new();
        let mut demands: Vec<Demand> = Vec::new();
        let mut index: HashMap<(usize, u128), usize, TraceHash> = HashMap::default();
        for rs in batch.resources() {
            let k = self.bucket_key(rs);
            let bucket = keys.iter().position(|x| *x == k).unwrap_or_else(|| {
                keys.push(k);
                keys.len() - 1
            });
            for span in rs.scopes().flat_map(|s| s.spans()) {
                let trace = trace_key(span.trace_id());
                let slot = *index.entry((bucket, trace)).or_insert_with(|| {
                    demands.push(Demand {
                        bucket,
                        trace,
                        spans: 0,
                    });
                    demands.len() - 1
                });
                demands[slot].spans += 1;
            }
        }
        // Owned copies: the batch is mutated below.
        let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let known = |st: &State, t: u128| -> Option<bool> {
            if !self.whole_traces {
                None
            } else if st.admitted.contains(t) {
                Some(true)
            } else if st.rejected.contains(t) {
                Some(false)
            } else {
                None
            }
        };
        if self.on_limit == OnLimit::Refuse {
            // All or nothing: check every bucket before taking any token.
            let mut need: HashMap<usize, f64> = HashMap::new();
            for d in &demands {
                if known(&st, d.trace) != Some(true) {
                    *need.entry(d.bucket).or_default() += d.spans as f64;
                }
            }
            let mut wait = Duration::ZERO;
            for (b, n) in &need {
                let bucket = st.bucket(&keys[*b], self.rate, self.burst, self.max_keys);
                match bucket.wait_for(*n, now) {
                    Some(w) => wait = wait.max(w),
                    // Larger than the whole burst: it can never pass at once; ask for a
                    // second, by which the client may have split its batch.
                    None => wait = wait.max(Duration::from_secs(1)),
                }
            }
            if !wait.is_zero() {
                return Verdict::Refuse {
                    retry_after: wait.max(Duration::from_millis(1)),
                };
            }
            for d in &demands {
                let admitted = known(&st, d.trace) == Some(true);
                let bucket = st.bucket(&keys[d.bucket], self.rate, self.burst, self.max_keys);
                if admitted {
                    bucket.take_available(d.spans as f64, now);
                } else {
                    bucket.allow(d.spans as f64, now);
                }
                if self.whole_traces {
                    st.admitted.insert(d.trace);
                }
            }
            return Verdict::Continue;
        }
        // Drop mode: decide per trace (or span), drop the rejected.
        let mut rejected: TraceMap<()> = TraceMap::default();
        let mut partial: TraceMap<u64> = TraceMap::default();
        for d in &demands {
            let decision = known(&st, d.trace);
            let bucket = st.bucket(&keys[d.bucket], self.rate, self.burst, self.max_keys);
            match decision {
                Some(true) => bucket.take_available(d.spans as f64, now),
                Some(false) => {
                    rejected.insert(d.trace, ());
                }
                None if self.whole_traces => {
                    if bucket.allow(d.spans as f64, now) {
                        st.admitted.insert(d.trace);
                    } else {
                        st.rejected.insert(d.trace);
                        rejected.insert(d.trace, ());
                    }
                }
                None => {
                    // Span by span: admit as many as there are tokens.
                    let mut admitted = 0;
                    while admitted < d.spans && bucket.allow(1.0, now) {
                        admitted += 1;
                    }
                    if admitted < d.spans {
                        partial.insert(d.trace, admitted);
                    }
                }
            }
        }
        drop(st);
        if rejected.is_empty() && partial.is_empty() {
            return Verdict::Continue;
        }
        let dropped = batch.retain_spans(|_, s| {
            let t = trace_key(s.trace_id());
            if rejected.contains_key(&t) {
                false
            } else if let Some(left) = partial.get_mut(&t) {
                let keep = *left > 0;
                *left = left.saturating_sub(1);
                keep
            } else {
                true
            }
        });
        self.dropped.inc_by(dropped);
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn limiter(yaml: serde_json::Value) -> (RateLimiter, Counter) {
        let cfg: RateLimitingConfig = parse_config(&yaml).unwrap();
        let dropped = Counter::default();
        (cfg.limiter(dropped.clone()), dropped)
    }

    /// `traces` (trace number, spans) under one resource whose `tenant` is `tenant`.
    fn batch(tenant: &str, traces: &[(u8, usize)]) -> SpanBatch {
        SpanBatch::new(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "tenant".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(tenant.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: traces
                    .iter()
                    .flat_map(|&(t, n)| {
                        (0..n).map(move |_| Span {
                            trace_id: vec![t; 16],
                            ..Default::default()
                        })
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn traces_in(b: &SpanBatch) -> Vec<u8> {
        let mut v: Vec<u8> = b
            .resource_spans()
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.trace_id[0])
            .collect();
        v.dedup();
        v
    }

    #[test]
    fn whole_traces_burst_and_memory() {
        let (p, t) = limiter(serde_json::json!({"spans_per_second": 1, "burst": 5}));
        // Burst 5: trace 1 (3 spans) fits, trace 2 (3 spans) does not, trace 3 (2) fits.
        let mut b = batch("a", &[(1, 3), (2, 3), (3, 2)]);
        p.process(&mut b);
        assert_eq!(traces_in(&b), vec![1, 3]);
        // Later spans: trace 1 stays admitted with an empty bucket, trace 2 stays rejected.
        let mut b = batch("a", &[(1, 2), (2, 1)]);
        p.process(&mut b);
        assert_eq!(traces_in(&b), vec![1]);
        assert_eq!(t.get(), 4);
    }

    #[test]
    fn per_key_buckets_and_span_by_span() {
        let (p, _) = limiter(
            serde_json::json!({"spans_per_second": 1, "burst": 2, "key": "tenant", "whole_traces": false}),
        );
        let mut a = batch("a", &[(1, 3)]);
        let mut b = batch("b", &[(2, 2)]);
        p.process(&mut a);
        p.process(&mut b);
        // Tenant a's bucket admits 2 of 3 spans; tenant b has its own bucket.
        assert_eq!(a.len(), 2);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn max_keys_share_an_overflow_bucket() {
        let (p, _) = limiter(
            serde_json::json!({"spans_per_second": 1, "burst": 2, "key": "tenant", "max_keys": 1}),
        );
        let mut a = batch("a", &[(1, 2)]);
        p.process(&mut a);
        let mut b = batch("b", &[(2, 2)]);
        p.process(&mut b);
        let mut c = batch("c", &[(3, 1)]);
        p.process(&mut c);
        assert_eq!(
            (a.len(), b.len(), c.len()),
            (2, 2, 0),
            "b and c share the overflow bucket"
        );
    }

    #[test]
    fn refuse_takes_nothing_and_says_when() {
        let (p, _) =
            limiter(serde_json::json!({"spans_per_second": 10, "burst": 10, "on_limit": "refuse"}));
        let mut b = batch("a", &[(1, 8)]);
        assert_eq!(p.process(&mut b), Verdict::Continue);
        let mut b = batch("a", &[(2, 4), (1, 1)]);
        match p.process(&mut b) {
            Verdict::Refuse { retry_after } => {
                assert!(
                    retry_after > Duration::from_millis(100)
                        && retry_after <= Duration::from_millis(250),
                    "{retry_after:?}"
                );
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(b.len(), 5, "a refused batch is not modified");
        // The refusal took no tokens: 2 are still there.
        let mut b = batch("a", &[(3, 2)]);
        assert_eq!(p.process(&mut b), Verdict::Continue);
    }
}
