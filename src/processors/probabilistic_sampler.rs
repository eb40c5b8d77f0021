//! `probabilistic_sampler`: head sampling by trace id, bit for bit the contrib collector's
//! `hash_seed` mode, so spangate and otelcol instances with one seed keep the same traces.
//!
//! A span is kept when `fnv1a32(seed LE bytes ++ trace_id) & 0x3FFF < pct * 163.84` (computed in
//! f32 and truncated, as contrib does with its float32 percentage). Like contrib, a
//! `sampling.priority` span attribute overrides: > 0 keeps the span, 0 drops it.

use std::sync::Arc;

use serde::Deserialize;

use super::hash::fnv1a32_seeded;
use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, Verdict,
};
use crate::data::view::{SpanRef, ValueRef};
use crate::data::SpanBatch;
use crate::telemetry::metrics::Counter;

const BUCKET_MASK: u32 = 0x3FFF;
const SCALE: f32 = 163.84;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticSamplerConfig {
    /// Share of traces to keep, 0 to 100.
    pub sampling_percentage: f64,
    /// Seed of the trace-id hash; instances with the same seed make the same decisions.
    #[serde(default)]
    pub hash_seed: u32,
    /// Only `hash_seed` (contrib's other modes are not implemented).
    #[serde(default)]
    pub mode: Option<String>,
    /// Accepted for contrib compatibility; it has no effect in `hash_seed` mode, where every
    /// trace id can be hashed.
    #[serde(default)]
    pub fail_closed: Option<bool>,
}

impl Check for ProbabilisticSamplerConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if !(0.0..=100.0).contains(&self.sampling_percentage) {
            out.push((
                "sampling_percentage".into(),
                "must be between 0 and 100".into(),
            ));
        }
        if let Some(m) = &self.mode {
            if m != "hash_seed" {
                out.push((
                    "mode".into(),
                    format!(
                        "`{m}` is not supported; spangate implements contrib's `hash_seed` mode"
                    ),
                ));
            }
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<ProbabilisticSamplerConfig>(v)?))
}

impl ProcessorConfig for ProbabilisticSamplerConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        Ok(Processor::Inline(Box::new(HeadSampler {
            threshold: scaled_rate(self.sampling_percentage),
            seed: self.hash_seed,
            dropped: ctx
                .telemetry
                .metrics
                .processor_dropped(&ctx.id.to_string(), "sampled_out"),
        })))
    }
}

/// contrib: `uint32(samplingPercentage * percentageScaleFactor)` in float32.
fn scaled_rate(pct: f64) -> u32 {
    (pct as f32 * SCALE) as u32
}

pub struct HeadSampler {
    threshold: u32,
    seed: u32,
    dropped: Counter,
}

enum Priority {
    Keep,
    Drop,
    Hash,
}

fn priority(span: SpanRef<'_>) -> Priority {
    let n = match span.attribute("sampling.priority") {
        Some(ValueRef::Int(i)) => i as f64,
        Some(ValueRef::Double(d)) => d,
        Some(ValueRef::Str(s)) => match s.parse::<f64>() {
            Ok(f) => f,
            Err(_) => return Priority::Hash,
        },
        _ => return Priority::Hash,
    };
    if n > 0.0 {
        Priority::Keep
    } else if n == 0.0 {
        Priority::Drop
    } else {
        Priority::Hash
    }
}

impl HeadSampler {
    pub fn keeps(&self, trace_id: &[u8]) -> bool {
        fnv1a32_seeded(self.seed, trace_id) & BUCKET_MASK < self.threshold
    }
}

impl InlineProcessor for HeadSampler {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let dropped = batch.retain_spans(|_, s| match priority(s) {
            Priority::Keep => true,
            Priority::Drop => false,
            Priority::Hash => self.keeps(s.trace_id()),
        });
        if dropped > 0 {
            self.dropped.inc_by(dropped);
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn sampler(pct: f64, seed: u32) -> HeadSampler {
        HeadSampler {
            threshold: scaled_rate(pct),
            seed,
            dropped: Counter::default(),
        }
    }

    fn trace_id(i: u64) -> Vec<u8> {
        // Spread like real random ids: a multiplicative hash of the index.
        let a = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = a.rotate_left(17) ^ 0xD6E8_FEB8_6659_FD93;
        [a.to_be_bytes(), b.to_be_bytes()].concat()
    }

    #[test]
    fn contrib_threshold_and_vectors() {
        assert_eq!(scaled_rate(10.0), 1638);
        assert_eq!(scaled_rate(100.0), 16384);
        assert_eq!(scaled_rate(0.0), 0);
        let tid: Vec<u8> = (1..=16).collect();
        // fnv1a32(seed 0 ++ tid) & 0x3FFF = 6693, with seed 22 = 13379, seed 0xdeadbeef = 427.
        assert!(sampler(40.9, 0).keeps(&tid)); // 6701 > 6693
        assert!(!sampler(40.8, 0).keeps(&tid)); // 6684 <= 6693
        assert!(!sampler(80.0, 22).keeps(&tid)); // 13107 <= 13379
        assert!(sampler(3.0, 0xdead_beef).keeps(&tid)); // 491 > 427
        assert!(sampler(100.0, 7).keeps(&tid));
        assert!(!sampler(0.0, 7).keeps(&tid));
    }

    #[test]
    fn share_within_tolerance_and_instances_agree() {
        let a = sampler(25.0, 42);
        let b = sampler(25.0, 42);
        let n = 20_000;
        let kept = (0..n).filter(|i| a.keeps(&trace_id(*i))).count();
        // Binomial sd = sqrt(20000 * 0.25 * 0.75) ~ 61; allow 4 sd.
        assert!((kept as i64 - 5_000).abs() < 245, "kept {kept}");
        assert!((0..n).all(|i| a.keeps(&trace_id(i)) == b.keeps(&trace_id(i))));
        let other_seed = sampler(25.0, 43);
        assert!((0..n).any(|i| a.keeps(&trace_id(i)) != other_seed.keeps(&trace_id(i))));
    }

    #[test]
    fn whole_traces_and_priority_override() {
        let s = sampler(50.0, 1);
        let kv = |v: Value| KeyValue {
            key: "sampling.priority".into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let mut spans = Vec::new();
        for i in 0..200u64 {
            for _ in 0..3 {
                spans.push(Span {
                    trace_id: trace_id(i),
                    ..Default::default()
                });
            }
        }
        spans.push(Span {
            trace_id: trace_id(1000),
            attributes: vec![kv(Value::IntValue(1))],
            ..Default::default()
        });
        spans.push(Span {
            trace_id: trace_id(1001),
            attributes: vec![kv(Value::StringValue("0".into()))],
            ..Default::default()
        });
        let mut batch = SpanBatch::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }]);
        s.process(&mut batch);
        let kept: Vec<&Span> = batch.resource_spans()[0].scope_spans[0]
            .spans
            .iter()
            .collect();
        // Every kept trace keeps all three spans.
        for i in 0..200u64 {
            let n = kept.iter().filter(|sp| sp.trace_id == trace_id(i)).count();
            assert!(n == 0 || n == 3);
            assert_eq!(n == 3, s.keeps(&trace_id(i)));
        }
        assert!(kept.iter().any(|sp| sp.trace_id == trace_id(1000)));
        assert!(!kept.iter().any(|sp| sp.trace_id == trace_id(1001)));
        assert_eq!(batch.len() as u64 + s.dropped.get(), 602);
    }
}
