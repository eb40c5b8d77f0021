//! Receiver-side attribute limits: `max_attributes_per_span` drops the excess (recorded in the
//! span's `dropped_attributes_count`, as SDKs do) and `max_attribute_value_length` truncates
//! string values (and bytes) at a character boundary, in span, event, link and resource
//! attributes, arrays and maps included.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct AttrLimits {
    pub max_attributes_per_span: Option<usize>,
    pub max_attribute_value_length: Option<usize>,
}

/// What the limits changed.
#[derive(Debug, Default, PartialEq)]
pub struct Limited {
    pub dropped: u64,
    pub truncated: u64,
}

fn truncate_value(v: &mut AnyValue, max: usize) -> u64 {
    match &mut v.value {
        Some(Value::StringValue(s)) if s.len() > max => {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            1
        }
        Some(Value::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(Value::ArrayValue(a)) => a.values.iter_mut().map(|v| truncate_value(v, max)).sum(),
        Some(Value::KvlistValue(kv)) => truncate_all(&mut kv.values, max),
        _ => 0,
    }
}

fn truncate_all(attrs: &mut [KeyValue], max: usize) -> u64 {
    attrs
        .iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .map(|v| truncate_value(v, max))
        .sum()
}

/// Applies `limits` in place.
pub fn apply(resource_spans: &mut [ResourceSpans], limits: AttrLimits) -> Limited {
    let mut out = Limited::default();
    if limits == AttrLimits::default() {
        return out;
    }
    for rs in resource_spans {
        if let (Some(max), Some(r)) = (limits.max_attribute_value_length, rs.resource.as_mut()) {
            out.truncated += truncate_all(&mut r.attributes, max);
        }
        for span in rs.scope_spans.iter_mut().flat_map(|ss| ss.spans.iter_mut()) {
            if let Some(max) = limits.max_attributes_per_span {
                if span.attributes.len() > max {
                    let excess = span.attributes.len() - max;
                    span.attributes.truncate(max);
                    span.dropped_attributes_count += excess as u32;
                    out.dropped += excess as u64;
                }
            }
            if let Some(max) = limits.max_attribute_value_length {
                out.truncated += truncate_all(&mut span.attributes, max);
                for e in &mut span.events {
                    out.truncated += truncate_all(&mut e.attributes, max);
                }
                for l in &mut span.links {
                    out.truncated += truncate_all(&mut l.attributes, max);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn drops_excess_and_truncates_at_char_boundaries() {
        let span = Span {
            attributes: vec![
                kv("a", Value::StringValue("héllo wörld".into())),
                kv(
                    "b",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Value::StringValue("abcdefgh".into())),
                        }],
                    }),
                ),
                kv("c", Value::IntValue(1)),
            ],
            ..Default::default()
        };
        let mut rs = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }];
        let limited = apply(
            &mut rs,
            AttrLimits {
                max_attributes_per_span: Some(2),
                max_attribute_value_length: Some(2),
            },
        );
        assert_eq!(
            limited,
            Limited {
                dropped: 1,
                truncated: 2
            }
        );
        let s = &rs[0].scope_spans[0].spans[0];
        assert_eq!(s.attributes.len(), 2);
        assert_eq!(s.dropped_attributes_count, 1);
        // "hé" would split é (2 bytes): cut before it.
        assert_eq!(
            s.attributes[0].value,
            Some(AnyValue {
                value: Some(Value::StringValue("h".into()))
            })
        );
        let none = apply(&mut rs, AttrLimits::default());
        assert_eq!(none, Limited::default());
    }
}
