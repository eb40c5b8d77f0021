//! OTLP/JSON: the protobuf messages in proto3 JSON with OTLP's exceptions (hex trace and span
//! ids, enums as integers). Like the contrib collector the decoder also takes snake_case field
//! names and enum names, and ignores unknown fields.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link},
    ResourceSpans, ScopeSpans, Span, Status,
};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: {message}")]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> JsonError {
    JsonError {
        path: path.to_string(),
        message: message.into(),
    }
}

type R<T> = Result<T, JsonError>;

/// The objects and arrays in a JSON text (outside strings), counted without parsing it. Each
/// costs a hundred bytes or more once decoded, whatever it took on the wire: `{},` is three
/// bytes, so 15 MB of them decoded to 1.3 GB.
pub fn containers(bytes: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Fewest body bytes per object or array a request may have: real OTLP/JSON has one every 18
/// bytes or more (`{"key":"k","value":{"intValue":"1"}}`), an amplification attack one every 3.
pub const MIN_BYTES_PER_CONTAINER: usize = 6;

/// The most objects and arrays [`decode_request`] takes from a body of `len` bytes.
pub fn max_containers(len: usize) -> usize {
    len / MIN_BYTES_PER_CONTAINER + 64
}

/// Decodes a request, refusing (before building anything) one with more objects and arrays
/// than [`max_containers`] of its size.
pub fn decode_request(bytes: &[u8]) -> R<ExportTraceServiceRequest> {
    decode_request_within(bytes, max_containers(bytes.len()))
}

/// [`decode_request`] with an explicit bound on objects and arrays.
pub fn decode_request_within(bytes: &[u8], max: usize) -> R<ExportTraceServiceRequest> {
    let n = containers(bytes);
    if n > max {
        return Err(err(
            "$",
            format!(
                "{n} objects and arrays in {} bytes: more than the {max} this request may decode to",
                bytes.len()
            ),
        ));
    }
    decode_unbounded(bytes)
}

/// Decodes a request without the bound on objects and arrays: for callers that checked
/// [`containers`] themselves (or decode their own output).
pub fn decode_unbounded(bytes: &[u8]) -> R<ExportTraceServiceRequest> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| err("$", e.to_string()))?;
    let obj = as_obj(&root, "$")?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list(obj, "resourceSpans", "resource_spans", "$", resource_spans)?,
    })
}

fn as_obj<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| err(path, "expected an object"))
}

fn get<'a>(obj: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

fn list<T>(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
    f: impl Fn(&Value, &str) -> R<T>,
) -> R<Vec<T>> {
    match get(obj, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| f(v, &format!("{path}.{camel}[{i}]")))
            .collect(),
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected an array")),
    }
}

fn string(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<String> {
    match get(obj, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected a string")),
    }
}

fn uint(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u64> {
    match get(obj, camel, snake) {
        None => Ok(0),
        Some(v) => u64_of(v).ok_or_else(|| {
            err(
                &format!("{path}.{camel}"),
                "expected an unsigned integer (number or decimal string)",
            )
        }),
    }
}

fn u64_of(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn i64_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn u32_field(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u32> {
    let v = uint(obj, camel, snake, path)?;
    u32::try_from(v).map_err(|_| err(&format!("{path}.{camel}"), "out of range"))
}

/// An enum given as its number or its name (with or without the type prefix).
fn enumeration(
    obj: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
    names: &[&str],
    prefix: &str,
) -> R<i32> {
    match get(obj, camel, snake) {
        None => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| err(&format!("{path}.{camel}"), "invalid enum number")),
        Some(Value::String(s)) => {
            let bare = s.strip_prefix(prefix).unwrap_or(s);
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(bare))
                .map(|i| i as i32)
                .ok_or_else(|| err(&format!("{path}.{camel}"), format!("unknown value {s:?}")))
        }
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected an enum")),
    }
}

fn hex_id(obj: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<Vec<u8>> {
    match get(obj, camel, snake) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => {
            decode_hex(s).ok_or_else(|| err(&format!("{path}.{camel}"), "invalid hex id"))
        }
        Some(_) => Err(err(&format!("{path}.{camel}"), "expected a hex string")),
    }
}

fn resource_spans(v: &Value, path: &str) -> R<ResourceSpans> {
    let o = as_obj(v, path)?;
    let resource = match get(o, "resource", "resource") {
        None => None,
        Some(r) => {
            let p = format!("{path}.resource");
            let ro = as_obj(r, &p)?;
            Some(Resource {
                attributes: list(ro, "attributes", "attributes", &p, key_value)?,
                dropped_attributes_count: u32_field(
                    ro,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                    &p,
                )?,
                entity_refs: Vec::new(),
            })
        }
    };
    Ok(ResourceSpans {
        resource,
        scope_spans: list(o, "scopeSpans", "scope_spans", path, scope_spans)?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

fn scope_spans(v: &Value, path: &str) -> R<ScopeSpans> {
    let o = as_obj(v, path)?;
    let scope = match get(o, "scope", "scope") {
        None => None,
        Some(s) => {
            let p = format!("{path}.scope");
            let so = as_obj(s, &p)?;
            Some(InstrumentationScope {
                name: string(so, "name", "name", &p)?,
                version: string(so, "version", "version", &p)?,
                attributes: list(so, "attributes", "attributes", &p, key_value)?,
                dropped_attributes_count: u32_field(
                    so,
                    "droppedAttributesCount",
                    "dropped_attributes_count",
                    &p,
                )?,
            })
        }
    };
    Ok(ScopeSpans {
        scope,
        spans: list(o, "spans", "spans", path, span)?,
        schema_url: string(o, "schemaUrl", "schema_url", path)?,
    })
}

const KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];
const CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

fn span(v: &Value, path: &str) -> R<Span> {
    let o = as_obj(v, path)?;
    let status = match get(o, "status", "status") {
        None => None,
        Some(s) => {
            let p = format!("{path}.status");
            let so = as_obj(s, &p)?;
            Some(Status {
                message: string(so, "message", "message", &p)?,
                code: enumeration(so, "code", "code", &p, &CODES, "STATUS_CODE_")?,
            })
        }
    };
    Ok(Span {
        trace_id: hex_id(o, "traceId", "trace_id", path)?,
        span_id: hex_id(o, "spanId", "span_id", path)?,
        trace_state: string(o, "traceState", "trace_state", path)?,
        parent_span_id: hex_id(o, "parentSpanId", "parent_span_id", path)?,
        flags: u32_field(o, "flags", "flags", path)?,
        name: string(o, "name", "name", path)?,
        kind: enumeration(o, "kind", "kind", path, &KINDS, "SPAN_KIND_")?,
        start_time_unix_nano: uint(o, "startTimeUnixNano", "start_time_unix_nano", path)?,
        end_time_unix_nano: uint(o, "endTimeUnixNano", "end_time_unix_nano", path)?,
        attributes: list(o, "attributes", "attributes", path, key_value)?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        events: list(o, "events", "events", path, event)?,
        dropped_events_count: u32_field(o, "droppedEventsCount", "dropped_events_count", path)?,
        links: list(o, "links", "links", path, link)?,
        dropped_links_count: u32_field(o, "droppedLinksCount", "dropped_links_count", path)?,
        status,
    })
}

fn event(v: &Value, path: &str) -> R<Event> {
    let o = as_obj(v, path)?;
    Ok(Event {
        time_unix_nano: uint(o, "timeUnixNano", "time_unix_nano", path)?,
        name: string(o, "name", "name", path)?,
        attributes: list(o, "attributes", "attributes", path, key_value)?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
    })
}

fn link(v: &Value, path: &str) -> R<Link> {
    let o = as_obj(v, path)?;
    Ok(Link {
        trace_id: hex_id(o, "traceId", "trace_id", path)?,
        span_id: hex_id(o, "spanId", "span_id", path)?,
        trace_state: string(o, "traceState", "trace_state", path)?,
        attributes: list(o, "attributes", "attributes", path, key_value)?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        flags: u32_field(o, "flags", "flags", path)?,
    })
}

fn key_value(v: &Value, path: &str) -> R<KeyValue> {
    let o = as_obj(v, path)?;
    let value = match get(o, "value", "value") {
        None => None,
        Some(av) => Some(any_value_of(av, &format!("{path}.value"))?),
    };
    Ok(KeyValue {
        key: string(o, "key", "key", path)?,
        value,
        key_strindex: u32_field(o, "keyStrindex", "key_strindex", path)? as i32,
    })
}

fn any_value_of(v: &Value, path: &str) -> R<AnyValue> {
    use any_value::Value as V;
    let o = as_obj(v, path)?;
    let bad = |what: &str| err(path, format!("invalid {what}"));
    let value = if let Some(s) = get(o, "stringValue", "string_value") {
        V::StringValue(s.as_str().ok_or_else(|| bad("stringValue"))?.to_string())
    } else if let Some(b) = get(o, "boolValue", "bool_value") {
        V::BoolValue(b.as_bool().ok_or_else(|| bad("boolValue"))?)
    } else if let Some(i) = get(o, "intValue", "int_value") {
        V::IntValue(i64_of(i).ok_or_else(|| bad("intValue"))?)
    } else if let Some(d) = get(o, "doubleValue", "double_value") {
        V::DoubleValue(match d {
            Value::Number(n) => n.as_f64().ok_or_else(|| bad("doubleValue"))?,
            Value::String(s) => match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                s => s.parse().map_err(|_| bad("doubleValue"))?,
            },
            _ => return Err(bad("doubleValue")),
        })
    } else if let Some(a) = get(o, "arrayValue", "array_value") {
        let p = format!("{path}.arrayValue");
        let ao = as_obj(a, &p)?;
        V::ArrayValue(ArrayValue {
            values: list(ao, "values", "values", &p, any_value_of)?,
        })
    } else if let Some(kv) = get(o, "kvlistValue", "kvlist_value") {
        let p = format!("{path}.kvlistValue");
        let ko = as_obj(kv, &p)?;
        V::KvlistValue(KeyValueList {
            values: list(ko, "values", "values", &p, key_value)?,
        })
    } else if let Some(i) = get(o, "stringValueStrindex", "string_value_strindex") {
        let i = i64_of(i)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| bad("stringValueStrindex"))?;
        V::StringValueStrindex(i)
    } else if let Some(b) = get(o, "bytesValue", "bytes_value") {
        let s = b.as_str().ok_or_else(|| bad("bytesValue"))?;
        V::BytesValue(decode_base64(s).ok_or_else(|| bad("bytesValue (base64)"))?)
    } else {
        return Ok(AnyValue { value: None });
    };
    Ok(AnyValue { value: Some(value) })
}

// ---- encoding ----

/// One OTLP/JSON `ExportTraceServiceRequest`, compact, no trailing newline.
pub fn encode_request(resource_spans: &[ResourceSpans]) -> String {
    let mut out = String::with_capacity(256 * resource_spans.len().max(1));
    out.push_str("{\"resourceSpans\":");
    write_array(&mut out, resource_spans, write_resource_spans);
    out.push('}');
    out
}

/// `[a,b,c]`, each item written by `f`.
fn write_array<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, item);
    }
    out.push(']');
}

struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }
    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }
    fn str(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            let o = self.key(k);
            write_str(o, v);
        }
    }
    fn u64_str(&mut self, k: &str, v: u64) {
        if v != 0 {
            let o = self.key(k);
            let _ = write!(o, "\"{v}\"");
        }
    }
    fn num(&mut self, k: &str, v: i64) {
        if v != 0 {
            let o = self.key(k);
            let _ = write!(o, "{v}");
        }
    }
    fn hex(&mut self, k: &str, v: &[u8]) {
        if !v.is_empty() {
            let o = self.key(k);
            o.push('"');
            push_hex(o, v);
            o.push('"');
        }
    }
    fn attrs(&mut self, k: &str, kvs: &[KeyValue]) {
        if !kvs.is_empty() {
            let o = self.key(k);
            write_kvs(o, kvs);
        }
    }
    fn end(self) {
        self.out.push('}');
    }
}

fn write_str(out: &mut String, s: &str) {
    // serde_json's escaping is correct for every code point; it cannot fail on a String.
    let escaped = serde_json::to_string(s).unwrap_or_default();
    out.push_str(&escaped);
}

fn write_resource_spans(out: &mut String, rs: &ResourceSpans) {
    let mut o = Obj::new(out);
    if let Some(r) = &rs.resource {
        let w = o.key("resource");
        let mut ro = Obj::new(w);
        ro.attrs("attributes", &r.attributes);
        ro.num("droppedAttributesCount", r.dropped_attributes_count as i64);
        ro.end();
    }
    write_array(o.key("scopeSpans"), &rs.scope_spans, write_scope_spans);
    o.str("schemaUrl", &rs.schema_url);
    o.end();
}

fn write_scope_spans(out: &mut String, ss: &ScopeSpans) {
    let mut o = Obj::new(out);
    if let Some(s) = &ss.scope {
        let w = o.key("scope");
        let mut so = Obj::new(w);
        so.str("name", &s.name);
        so.str("version", &s.version);
        so.attrs("attributes", &s.attributes);
        so.num("droppedAttributesCount", s.dropped_attributes_count as i64);
        so.end();
    }
    write_array(o.key("spans"), &ss.spans, write_span);
    o.str("schemaUrl", &ss.schema_url);
    o.end();
}

fn write_span(out: &mut String, s: &Span) {
    let mut o = Obj::new(out);
    o.hex("traceId", &s.trace_id);
    o.hex("spanId", &s.span_id);
    o.str("traceState", &s.trace_state);
    o.hex("parentSpanId", &s.parent_span_id);
    o.num("flags", s.flags as i64);
    o.str("name", &s.name);
    o.num("kind", s.kind as i64);
    o.u64_str("startTimeUnixNano", s.start_time_unix_nano);
    o.u64_str("endTimeUnixNano", s.end_time_unix_nano);
    o.attrs("attributes", &s.attributes);
    o.num("droppedAttributesCount", s.dropped_attributes_count as i64);
    if !s.events.is_empty() {
        write_array(o.key("events"), &s.events, |w, e| {
            let mut eo = Obj::new(w);
            eo.u64_str("timeUnixNano", e.time_unix_nano);
            eo.str("name", &e.name);
            eo.attrs("attributes", &e.attributes);
            eo.num("droppedAttributesCount", e.dropped_attributes_count as i64);
            eo.end();
        });
    }
    o.num("droppedEventsCount", s.dropped_events_count as i64);
    if !s.links.is_empty() {
        write_array(o.key("links"), &s.links, |w, l| {
            let mut lo = Obj::new(w);
            lo.hex("traceId", &l.trace_id);
            lo.hex("spanId", &l.span_id);
            lo.str("traceState", &l.trace_state);
            lo.attrs("attributes", &l.attributes);
            lo.num("droppedAttributesCount", l.dropped_attributes_count as i64);
            lo.num("flags", l.flags as i64);
            lo.end();
        });
    }
    o.num("droppedLinksCount", s.dropped_links_count as i64);
    if let Some(st) = &s.status {
        let w = o.key("status");
        let mut so = Obj::new(w);
        so.str("message", &st.message);
        so.num("code", st.code as i64);
        so.end();
    }
    o.end();
}

fn write_kvs(out: &mut String, kvs: &[KeyValue]) {
    write_array(out, kvs, |out, kv| {
        let mut o = Obj::new(out);
        write_str(o.key("key"), &kv.key);
        write_any(o.key("value"), kv.value.as_ref());
        o.num("keyStrindex", kv.key_strindex as i64);
        o.end();
    });
}

fn write_any(out: &mut String, v: Option<&AnyValue>) {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None => out.push_str("{}"),
        Some(V::StringValue(s)) => {
            out.push_str("{\"stringValue\":");
            write_str(out, s);
            out.push('}');
        }
        Some(V::BoolValue(b)) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        Some(V::IntValue(i)) => {
            let _ = write!(out, "{{\"intValue\":\"{i}\"}}");
        }
        Some(V::DoubleValue(d)) => {
            if d.is_finite() {
                let _ = write!(out, "{{\"doubleValue\":{d:?}}}");
            } else if d.is_nan() {
                out.push_str("{\"doubleValue\":\"NaN\"}");
            } else if *d > 0.0 {
                out.push_str("{\"doubleValue\":\"Infinity\"}");
            } else {
                out.push_str("{\"doubleValue\":\"-Infinity\"}");
            }
        }
        Some(V::ArrayValue(a)) => {
            out.push_str("{\"arrayValue\":{\"values\":");
            write_array(out, &a.values, |out, v| write_any(out, Some(v)));
            out.push_str("}}");
        }
        Some(V::KvlistValue(kv)) => {
            out.push_str("{\"kvlistValue\":{\"values\":");
            write_kvs(out, &kv.values);
            out.push_str("}}");
        }
        // A string-table index (profiles); traces never use it, but keep it intact.
        Some(V::StringValueStrindex(i)) => {
            let _ = write!(out, "{{\"stringValueStrindex\":{i}}}");
        }
        Some(V::BytesValue(b)) => {
            out.push_str("{\"bytesValue\":\"");
            out.push_str(&encode_base64(b));
            out.push_str("\"}");
        }
    }
}

// ---- hex and base64 (small enough to keep here rather than add crates) ----

pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard or URL-safe alphabet, padding optional.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let trimmed = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        acc = acc << 6 | val(c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn containers_are_counted_outside_strings_and_bombs_refused() {
        assert_eq!(containers(br#"{"a":[1,{"b":"{[\"{"}]}"#), 3);
        let bomb = format!(r#"{{"resourceSpans":[{}{{}}]}}"#, "{},".repeat(100_000));
        let e = decode_request(bomb.as_bytes()).unwrap_err();
        assert!(e.message.contains("more than"), "{e}");
        let real = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","attributes":[{"key":"k","value":{"intValue":"1"}}]}]}]}]}"#;
        assert!(decode_request(real).is_ok());
        assert!(decode_request_within(real, 3).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
      "scopeSpans":[{"scope":{"name":"lib","version":"1.0"},"spans":[{
        "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173",
        "name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
        "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"d","value":{"doubleValue":1.5}},
          {"key":"b","value":{"boolValue":true}},{"key":"raw","value":{"bytesValue":"aGVsbG8="}},
          {"key":"arr","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":7}]}}},
          {"key":"map","value":{"kvlistValue":{"values":[{"key":"k","value":{"stringValue":"v"}}]}}}],
        "events":[{"timeUnixNano":"1544712660500000000","name":"ev","attributes":[]}],
        "links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175"}],
        "status":{"code":2,"message":"boom"},"someFutureField":{"x":1}}]}]}]}"#;

    #[test]
    fn decodes_otlp_json() {
        let req = decode_request(SAMPLE.as_bytes()).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(to_hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1544712660000000000);
        assert_eq!(span.end_time_unix_nano, 1544712661000000000);
        assert_eq!(span.attributes.len(), 6);
        assert_eq!(
            span.attributes[3].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(b"hello".to_vec()))
        );
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.links[0].span_id.len(), 8);
    }

    #[test]
    fn snake_case_and_enum_names() {
        let text = r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"00000000000000000000000000000001",
            "span_id":"0000000000000001","kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"},
            "start_time_unix_nano":"5"}]}]}]}"#;
        let req = decode_request(text.as_bytes()).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        assert_eq!(span.start_time_unix_nano, 5);
    }

    #[test]
    fn round_trip() {
        let req = decode_request(SAMPLE.as_bytes()).unwrap();
        let text = encode_request(&req.resource_spans);
        let again = decode_request(text.as_bytes()).unwrap();
        assert_eq!(req, again);
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            decode_request(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#)
                .unwrap_err();
        assert_eq!(e.path, "$.resourceSpans[0].scopeSpans[0].spans[0].traceId");
        assert!(decode_request(b"{not json").is_err());
        assert!(decode_request(b"[1]").is_err());
        assert!(decode_request(
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"NOPE"}]}]}]}"#
        )
        .is_err());
    }

    #[test]
    fn base64_and_hex() {
        for s in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(decode_base64(&encode_base64(s)).unwrap(), s);
        }
        assert_eq!(decode_base64("Zm9vYg").unwrap(), b"foob");
        assert!(decode_base64("Zm9v!").is_none());
        assert_eq!(decode_hex("0aFf").unwrap(), vec![10, 255]);
        assert!(decode_hex("abc").is_none());
    }
}
