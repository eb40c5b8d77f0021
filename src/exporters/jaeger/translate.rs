//! OTLP to the Jaeger model, as Jaeger's own translator does it (the contrib collector's
//! `pkg/translator/jaeger`): one `Batch` per resource, whose `service.name` names the process
//! and whose other attributes are process tags; span attributes as typed tags, then the scope
//! (`otel.scope.*` and the older `otel.library.*`), `span.kind`, `otel.status_code`, `error`,
//! `otel.status_description`, `w3c.tracestate`; the parent as a CHILD_OF reference and links as
//! FOLLOWS_FROM (CHILD_OF when the link says `opentracing.ref_type: child_of`); events as logs
//! with the name under `event`.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue as OtlpKv};
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, Span as OtlpSpan};

use super::model::{Batch, KeyValue, Log, Process, Span, SpanRef, SpanRefType, ValueType};
use crate::data::attrs::{str_attr, JsonValue};

pub const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

fn string_tag(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        v_type: ValueType::String as i32,
        v_str: v.into(),
        ..Default::default()
    }
}

fn tag(kv: &OtlpKv) -> KeyValue {
    let mut t = KeyValue {
        key: kv.key.clone(),
        ..Default::default()
    };
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => t.v_str = s.clone(),
        Some(Value::BoolValue(b)) => {
            t.v_type = ValueType::Bool as i32;
            t.v_bool = *b;
        }
        Some(Value::IntValue(i)) => {
            t.v_type = ValueType::Int64 as i32;
            t.v_int64 = *i;
        }
        Some(Value::DoubleValue(d)) => {
            t.v_type = ValueType::Float64 as i32;
            t.v_float64 = *d;
        }
        Some(Value::BytesValue(b)) => {
            t.v_type = ValueType::Binary as i32;
            t.v_binary = b.clone();
        }
        // Arrays and maps as their JSON text, as the translator's AsString() does.
        Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => {
            t.v_str = serde_json::to_string(&JsonValue(kv.value.as_ref())).unwrap_or_default();
        }
        None | Some(Value::StringValueStrindex(_)) => {}
    }
    t
}

fn timestamp(nanos: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (nanos / 1_000_000_000) as i64,
        nanos: (nanos % 1_000_000_000) as i32,
    }
}

pub fn process(resource: &[OtlpKv]) -> Process {
    Process {
        service_name: str_attr(resource, "service.name")
            .unwrap_or(NO_SERVICE_NAME)
            .to_string(),
        tags: resource
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(tag)
            .collect(),
    }
}

fn kind_tag(kind: i32) -> Option<&'static str> {
    match span::SpanKind::try_from(kind).ok()? {
        span::SpanKind::Client => Some("client"),
        span::SpanKind::Server => Some("server"),
        span::SpanKind::Producer => Some("producer"),
        span::SpanKind::Consumer => Some("consumer"),
        span::SpanKind::Internal => Some("internal"),
        span::SpanKind::Unspecified => None,
    }
}

pub fn span(s: &OtlpSpan, scope: Option<&InstrumentationScope>) -> Span {
    let mut tags: Vec<KeyValue> = s.attributes.iter().map(tag).collect();
    if let Some(sc) = scope {
        for (new, old, v) in [
            ("otel.scope.name", "otel.library.name", &sc.name),
            ("otel.scope.version", "otel.library.version", &sc.version),
        ] {
            if !v.is_empty() {
                tags.push(string_tag(new, v));
                tags.push(string_tag(old, v));
            }
        }
    }
    if let Some(k) = kind_tag(s.kind) {
        tags.push(string_tag("span.kind", k));
    }
    let st = s.status.as_ref();
    match st.and_then(|st| status::StatusCode::try_from(st.code).ok()) {
        Some(status::StatusCode::Error) => {
            tags.push(string_tag("otel.status_code", "ERROR"));
            tags.push(KeyValue {
                key: "error".into(),
                v_type: ValueType::Bool as i32,
                v_bool: true,
                ..Default::default()
            });
        }
        Some(status::StatusCode::Ok) => tags.push(string_tag("otel.status_code", "OK")),
        _ => {}
    }
    if let Some(m) = st.map(|st| &st.message).filter(|m| !m.is_empty()) {
        tags.push(string_tag("otel.status_description", m));
    }
    if !s.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &s.trace_state));
    }
    let mut references = Vec::with_capacity(s.links.len() + 1);
    if !s.parent_span_id.is_empty() && s.parent_span_id.iter().any(|b| *b != 0) {
        references.push(SpanRef {
            trace_id: s.trace_id.clone(),
            span_id: s.parent_span_id.clone(),
            ref_type: SpanRefType::ChildOf as i32,
        });
    }
    for l in &s.links {
        let child_of = str_attr(&l.attributes, "opentracing.ref_type") == Some("child_of");
        references.push(SpanRef {
            trace_id: l.trace_id.clone(),
            span_id: l.span_id.clone(),
            ref_type: if child_of {
                SpanRefType::ChildOf
            } else {
                SpanRefType::FollowsFrom
            } as i32,
        });
    }
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(e.attributes.len() + 1);
            if !e.name.is_empty() {
                fields.push(string_tag("event", &e.name));
            }
            fields.extend(e.attributes.iter().map(tag));
            Log {
                timestamp: Some(timestamp(e.time_unix_nano)),
                fields,
            }
        })
        .collect();
    let duration = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
    Span {
        trace_id: s.trace_id.clone(),
        span_id: s.span_id.clone(),
        operation_name: s.name.clone(),
        references,
        start_time: Some(timestamp(s.start_time_unix_nano)),
        duration: Some(prost_types::Duration {
            seconds: (duration / 1_000_000_000) as i64,
            nanos: (duration % 1_000_000_000) as i32,
        }),
        tags,
        logs,
        ..Default::default()
    }
}

/// One Jaeger batch per OTLP resource.
pub fn batch(rs: &ResourceSpans) -> Batch {
    let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
    Batch {
        process: Some(process(resource)),
        spans: rs
            .scope_spans
            .iter()
            .flat_map(|ss| ss.spans.iter().map(move |s| span(s, ss.scope.as_ref())))
            .collect(),
    }
}
