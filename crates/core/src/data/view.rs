//! Borrowed views of spans where they lie: in the encoded requests of a batch (checked by
//! [`super::wire::walk`]) or in decoded structs. A processor that only reads spans reads them
//! through these and never decodes or allocates; one that removes spans rewrites the bytes in one
//! pass ([`retain_encoded`]), copying what it keeps as it is.
//!
//! Fields read as prost's decode reads them: a scalar field is its last occurrence, and the
//! occurrences of a repeated field (or of a message field sent twice, such as a span's `status`)
//! add up. One liberty: a `KeyValue` value or an `AnyValue` array/map sent twice in one message
//! (which no encoder writes) reads as its last occurrence, where prost would merge them.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::wire::{Reader, WireError, I32, I64, LEN, NESTING, START_GROUP, VARINT};

/// One field of an encoded message.
#[derive(Clone, Copy)]
pub(super) struct Field<'a> {
    pub(super) number: u32,
    pub(super) value: Raw<'a>,
    /// The whole field as encoded (key and value), to copy it unchanged.
    pub(super) bytes: &'a [u8],
}

#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    Varint(u64),
    I64(u64),
    I32(u32),
    Len(&'a [u8]),
    Group,
}

/// The fields of an encoded message, in order. It ends at the first malformed field: walked
/// bytes have none, so a view never reports a fault, it just sees nothing more.
#[derive(Clone)]
pub(super) struct Fields<'a> {
    r: Reader<'a>,
}

pub(super) fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { r: Reader { buf } }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let all = self.r.buf;
        if all.is_empty() {
            return None;
        }
        match self.read() {
            Ok((number, value)) => Some(Field {
                number,
                value,
                bytes: &all[..all.len() - self.r.buf.len()],
            }),
            Err(_) => {
                self.r.buf = &[];
                None
            }
        }
    }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<(u32, Raw<'a>), WireError> {
        let (number, wire_type) = self.r.key()?;
        let value = match wire_type {
            VARINT => Raw::Varint(self.r.varint()?),
            I64 => Raw::I64(u64::from_le_bytes(
                self.r.take(8)?.try_into().expect("8 bytes"),
            )),
            I32 => Raw::I32(u32::from_le_bytes(
                self.r.take(4)?.try_into().expect("4 bytes"),
            )),
            LEN => Raw::Len(self.r.delimited()?),
            START_GROUP => {
                self.r.skip(number, wire_type, NESTING)?;
                Raw::Group
            }
            _ => return Err(WireError::EndGroup),
        };
        Ok((number, value))
    }
}

/// The last length-delimited occurrence of field `n`.
fn last_len(buf: &[u8], n: u32) -> Option<&[u8]> {
    fields(buf)
        .filter_map(|f| match f.value {
            Raw::Len(b) if f.number == n => Some(b),
            _ => None,
        })
        .last()
}

fn last_str(buf: &[u8], n: u32) -> &str {
    last_len(buf, n).map_or("", utf8)
}

/// Walked strings are UTF-8; anything else reads as empty rather than panicking.
fn utf8(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

fn last_varint(buf: &[u8], n: u32) -> Option<u64> {
    fields(buf)
        .filter_map(|f| match f.value {
            Raw::Varint(v) if f.number == n => Some(v),
            _ => None,
        })
        .last()
}

fn last_fixed64(buf: &[u8], n: u32) -> Option<u64> {
    fields(buf)
        .filter_map(|f| match f.value {
            Raw::I64(v) if f.number == n => Some(v),
            _ => None,
        })
        .last()
}

fn last_fixed32(buf: &[u8], n: u32) -> Option<u32> {
    fields(buf)
        .filter_map(|f| match f.value {
            Raw::I32(v) if f.number == n => Some(v),
            _ => None,
        })
        .last()
}

/// The bodies of field `inner` in `buf`, or in every occurrence of field `outer` of `buf`
/// (a message sent twice merges: its repeated fields add up).
#[derive(Clone)]
struct Nested<'a> {
    outer: Option<(Fields<'a>, u32)>,
    cur: Fields<'a>,
    inner: u32,
}

impl<'a> Nested<'a> {
    fn direct(buf: &'a [u8], inner: u32) -> Self {
        Nested {
            outer: None,
            cur: fields(buf),
            inner,
        }
    }

    fn within(buf: &'a [u8], outer: u32, inner: u32) -> Self {
        Nested {
            outer: Some((fields(buf), outer)),
            cur: fields(&[]),
            inner,
        }
    }
}

impl<'a> Iterator for Nested<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            for f in self.cur.by_ref() {
                if let (true, Raw::Len(b)) = (f.number == self.inner, f.value) {
                    return Some(b);
                }
            }
            let (outer, n) = self.outer.as_mut()?;
            let n = *n;
            let parent = outer.find_map(|f| match f.value {
                Raw::Len(b) if f.number == n => Some(b),
                _ => None,
            })?;
            self.cur = fields(parent);
        }
    }
}

/// A repeated message field, as bytes or as structs.
#[derive(Clone)]
enum Rep<'a, T> {
    Wire(Nested<'a>),
    Decoded(std::slice::Iter<'a, T>),
}

macro_rules! repeated {
    ($(#[$doc:meta])* $name:ident, $item:ident, $ty:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name<'a>(Rep<'a, $ty>);

        impl<'a> Iterator for $name<'a> {
            type Item = $item<'a>;

            fn next(&mut self) -> Option<$item<'a>> {
                match &mut self.0 {
                    Rep::Wire(n) => n.next().map($item::Wire),
                    Rep::Decoded(it) => it.next().map($item::Decoded),
                }
            }
        }
    };
}

repeated!(
    /// The scopes of a resource.
    Scopes,
    ScopeRef,
    ScopeSpans
);
repeated!(
    /// The spans of a scope.
    Spans,
    SpanRef,
    Span
);
repeated!(
    /// The events of a span.
    Events,
    EventRef,
    Event
);
repeated!(
    /// The links of a span.
    Links,
    LinkRef,
    Link
);

/// Key/value pairs: attributes, or the entries of a map value.
#[derive(Clone)]
pub struct Attrs<'a>(Rep<'a, KeyValue>);

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a str, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Rep::Wire(n) => n.next().map(|kv| {
                let (k, v) = kv_parts(kv);
                (utf8(k), ValueRef::wire(v))
            }),
            Rep::Decoded(it) => it
                .next()
                .map(|kv| (kv.key.as_str(), ValueRef::of(kv.value.as_ref()))),
        }
    }
}

impl<'a> Attrs<'a> {
    /// The first value under `key` (as the collector's attribute maps answer). Over bytes, keys
    /// are compared as bytes and only the value found is read.
    pub fn get(mut self, key: &str) -> Option<ValueRef<'a>> {
        match &mut self.0 {
            Rep::Wire(n) => n.find_map(|kv| {
                let (k, v) = kv_parts(kv);
                (k == key.as_bytes()).then(|| ValueRef::wire(v))
            }),
            Rep::Decoded(_) => self.find(|(k, _)| *k == key).map(|(_, v)| v),
        }
    }

    /// The keys as bytes, neither values nor UTF-8 read (for prefix tests on every list).
    pub fn key_bytes(self) -> impl Iterator<Item = &'a [u8]> {
        let (wire, decoded) = match self.0 {
            Rep::Wire(n) => (Some(n), None),
            Rep::Decoded(it) => (None, Some(it)),
        };
        wire.into_iter()
            .flatten()
            .map(|kv| kv_parts(kv).0)
            .chain(decoded.into_iter().flatten().map(|kv| kv.key.as_bytes()))
    }

    /// The keys alone (values are not read).
    pub fn keys(self) -> impl Iterator<Item = &'a str> {
        self.key_bytes().map(utf8)
    }
}

/// A `KeyValue`'s key and value bodies, in one pass (each its last occurrence).
pub(super) fn kv_parts(kv: &[u8]) -> (&[u8], Option<&[u8]>) {
    let (mut k, mut v) = (&[][..], None);
    for f in fields(kv) {
        match (f.number, f.value) {
            (1, Raw::Len(b)) => k = b,
            (2, Raw::Len(b)) => v = Some(b),
            _ => {}
        }
    }
    (k, v)
}

/// An attribute value.
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a> {
    /// No value set.
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(ArrayRef<'a>),
    Map(MapRef<'a>),
    /// An index into a string dictionary (a profiles-signal value; meaningless in traces).
    StrIndex(i32),
}

impl<'a> ValueRef<'a> {
    /// An encoded `AnyValue` (its oneof is its last set field).
    pub(super) fn wire(body: Option<&'a [u8]>) -> Self {
        let Some(body) = body else {
            return ValueRef::Empty;
        };
        let mut v = ValueRef::Empty;
        for f in fields(body) {
            v = match (f.number, f.value) {
                (1, Raw::Len(b)) => ValueRef::Str(utf8(b)),
                (2, Raw::Varint(x)) => ValueRef::Bool(x != 0),
                (3, Raw::Varint(x)) => ValueRef::Int(x as i64),
                (4, Raw::I64(x)) => ValueRef::Double(f64::from_bits(x)),
                (5, Raw::Len(b)) => ValueRef::Array(ArrayRef::Wire(b)),
                (6, Raw::Len(b)) => ValueRef::Map(MapRef::Wire(b)),
                (7, Raw::Len(b)) => ValueRef::Bytes(b),
                (8, Raw::Varint(x)) => ValueRef::StrIndex(x as i32),
                _ => continue,
            };
        }
        v
    }

    pub fn of(v: Option<&'a AnyValue>) -> Self {
        match v.and_then(|v| v.value.as_ref()) {
            None => ValueRef::Empty,
            Some(Value::StringValue(s)) => ValueRef::Str(s),
            Some(Value::BoolValue(b)) => ValueRef::Bool(*b),
            Some(Value::IntValue(i)) => ValueRef::Int(*i),
            Some(Value::DoubleValue(d)) => ValueRef::Double(*d),
            Some(Value::BytesValue(b)) => ValueRef::Bytes(b),
            Some(Value::ArrayValue(a)) => ValueRef::Array(ArrayRef::Decoded(&a.values)),
            Some(Value::KvlistValue(m)) => ValueRef::Map(MapRef::Decoded(&m.values)),
            Some(Value::StringValueStrindex(i)) => ValueRef::StrIndex(*i),
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an owned `AnyValue` (`None` when unset).
    pub fn to_value(self) -> Option<Value> {
        Some(match self {
            ValueRef::Empty => return None,
            ValueRef::Str(s) => Value::StringValue(s.to_string()),
            ValueRef::Bool(b) => Value::BoolValue(b),
            ValueRef::Int(i) => Value::IntValue(i),
            ValueRef::Double(d) => Value::DoubleValue(d),
            ValueRef::Bytes(b) => Value::BytesValue(b.to_vec()),
            ValueRef::StrIndex(i) => Value::StringValueStrindex(i),
            ValueRef::Array(a) => {
                Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: a
                        .iter()
                        .map(|v| AnyValue {
                            value: v.to_value(),
                        })
                        .collect(),
                })
            }
            ValueRef::Map(m) => {
                Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: m
                        .iter()
                        .map(|(k, v)| KeyValue {
                            key: k.to_string(),
                            value: Some(AnyValue {
                                value: v.to_value(),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                })
            }
        })
    }
}

/// The elements of an array value.
#[derive(Clone, Copy, Debug)]
pub enum ArrayRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a [AnyValue]),
}

impl<'a> ArrayRef<'a> {
    pub fn iter(self) -> impl Iterator<Item = ValueRef<'a>> {
        let (wire, decoded) = match self {
            ArrayRef::Wire(b) => (Some(Nested::direct(b, 1)), None),
            ArrayRef::Decoded(v) => (None, Some(v.iter())),
        };
        wire.into_iter()
            .flatten()
            .map(|b| ValueRef::wire(Some(b)))
            .chain(decoded.into_iter().flatten().map(|v| ValueRef::of(Some(v))))
    }
}

/// The entries of a map value.
#[derive(Clone, Copy, Debug)]
pub enum MapRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a [KeyValue]),
}

impl<'a> MapRef<'a> {
    pub fn iter(self) -> Attrs<'a> {
        Attrs(match self {
            MapRef::Wire(b) => Rep::Wire(Nested::direct(b, 1)),
            MapRef::Decoded(v) => Rep::Decoded(v.iter()),
        })
    }
}

/// A `ResourceSpans`: the resource and its scopes.
#[derive(Clone, Copy)]
pub enum ResourceRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a ResourceSpans),
}

impl<'a> ResourceRef<'a> {
    pub fn attributes(self) -> Attrs<'a> {
        Attrs(match self {
            ResourceRef::Wire(b) => Rep::Wire(Nested::within(b, 1, 1)),
            ResourceRef::Decoded(rs) => Rep::Decoded(
                rs.resource
                    .as_ref()
                    .map_or(&[][..], |r| &r.attributes)
                    .iter(),
            ),
        })
    }

    pub fn attribute(self, key: &str) -> Option<ValueRef<'a>> {
        self.attributes().get(key)
    }

    pub fn schema_url(self) -> &'a str {
        match self {
            ResourceRef::Wire(b) => last_str(b, 3),
            ResourceRef::Decoded(rs) => &rs.schema_url,
        }
    }

    pub fn scopes(self) -> Scopes<'a> {
        Scopes(match self {
            ResourceRef::Wire(b) => Rep::Wire(Nested::direct(b, 2)),
            ResourceRef::Decoded(rs) => Rep::Decoded(rs.scope_spans.iter()),
        })
    }
}

/// A `ScopeSpans`: the instrumentation scope and its spans.
#[derive(Clone, Copy)]
pub enum ScopeRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a ScopeSpans),
}

impl<'a> ScopeRef<'a> {
    /// The scope's field `n` (1 name, 2 version) over every occurrence of the scope message.
    fn scope_str(b: &'a [u8], n: u32) -> &'a str {
        Nested::direct(b, 1)
            .filter_map(|scope| last_len(scope, n))
            .last()
            .map_or("", utf8)
    }

    pub fn name(self) -> &'a str {
        match self {
            ScopeRef::Wire(b) => Self::scope_str(b, 1),
            ScopeRef::Decoded(ss) => ss.scope.as_ref().map_or("", |s| &s.name),
        }
    }

    pub fn version(self) -> &'a str {
        match self {
            ScopeRef::Wire(b) => Self::scope_str(b, 2),
            ScopeRef::Decoded(ss) => ss.scope.as_ref().map_or("", |s| &s.version),
        }
    }

    pub fn attributes(self) -> Attrs<'a> {
        Attrs(match self {
            ScopeRef::Wire(b) => Rep::Wire(Nested::within(b, 1, 3)),
            ScopeRef::Decoded(ss) => {
                Rep::Decoded(ss.scope.as_ref().map_or(&[][..], |s| &s.attributes).iter())
            }
        })
    }

    pub fn schema_url(self) -> &'a str {
        match self {
            ScopeRef::Wire(b) => last_str(b, 3),
            ScopeRef::Decoded(ss) => &ss.schema_url,
        }
    }

    pub fn spans(self) -> Spans<'a> {
        Spans(match self {
            ScopeRef::Wire(b) => Rep::Wire(Nested::direct(b, 2)),
            ScopeRef::Decoded(ss) => Rep::Decoded(ss.spans.iter()),
        })
    }
}

/// One span.
#[derive(Clone, Copy)]
pub enum SpanRef<'a> {
    /// The span message's body.
    Wire(&'a [u8]),
    Decoded(&'a Span),
}

impl<'a> SpanRef<'a> {
    fn bytes_field(self, n: u32, decoded: impl FnOnce(&'a Span) -> &'a [u8]) -> &'a [u8] {
        match self {
            SpanRef::Wire(b) => last_len(b, n).unwrap_or(&[]),
            SpanRef::Decoded(s) => decoded(s),
        }
    }

    pub fn trace_id(self) -> &'a [u8] {
        self.bytes_field(1, |s| &s.trace_id)
    }

    pub fn span_id(self) -> &'a [u8] {
        self.bytes_field(2, |s| &s.span_id)
    }

    pub fn parent_span_id(self) -> &'a [u8] {
        self.bytes_field(4, |s| &s.parent_span_id)
    }

    pub fn trace_state(self) -> &'a str {
        utf8(self.bytes_field(3, |s| s.trace_state.as_bytes()))
    }

    pub fn name(self) -> &'a str {
        utf8(self.bytes_field(5, |s| s.name.as_bytes()))
    }

    /// The span kind's number (`SPAN_KIND_SERVER` is 2).
    pub fn kind(self) -> i32 {
        match self {
            SpanRef::Wire(b) => last_varint(b, 6).map_or(0, |v| v as i32),
            SpanRef::Decoded(s) => s.kind,
        }
    }

    pub fn start_time_unix_nano(self) -> u64 {
        match self {
            SpanRef::Wire(b) => last_fixed64(b, 7).unwrap_or(0),
            SpanRef::Decoded(s) => s.start_time_unix_nano,
        }
    }

    pub fn end_time_unix_nano(self) -> u64 {
        match self {
            SpanRef::Wire(b) => last_fixed64(b, 8).unwrap_or(0),
            SpanRef::Decoded(s) => s.end_time_unix_nano,
        }
    }

    pub fn flags(self) -> u32 {
        match self {
            SpanRef::Wire(b) => last_fixed32(b, 16).unwrap_or(0),
            SpanRef::Decoded(s) => s.flags,
        }
    }

    /// The status code's number (`STATUS_CODE_ERROR` is 2); 0 without a status.
    pub fn status_code(self) -> i32 {
        match self {
            SpanRef::Wire(b) => Nested::direct(b, 15)
                .filter_map(|st| last_varint(st, 3))
                .last()
                .map_or(0, |v| v as i32),
            SpanRef::Decoded(s) => s.status.as_ref().map_or(0, |st| st.code),
        }
    }

    pub fn status_message(self) -> &'a str {
        match self {
            SpanRef::Wire(b) => Nested::direct(b, 15)
                .filter_map(|st| last_len(st, 2))
                .last()
                .map_or("", utf8),
            SpanRef::Decoded(s) => s.status.as_ref().map_or("", |st| &st.message),
        }
    }

    pub fn attributes(self) -> Attrs<'a> {
        Attrs(match self {
            SpanRef::Wire(b) => Rep::Wire(Nested::direct(b, 9)),
            SpanRef::Decoded(s) => Rep::Decoded(s.attributes.iter()),
        })
    }

    pub fn attribute(self, key: &str) -> Option<ValueRef<'a>> {
        self.attributes().get(key)
    }

    pub fn events(self) -> Events<'a> {
        Events(match self {
            SpanRef::Wire(b) => Rep::Wire(Nested::direct(b, 11)),
            SpanRef::Decoded(s) => Rep::Decoded(s.events.iter()),
        })
    }

    pub fn links(self) -> Links<'a> {
        Links(match self {
            SpanRef::Wire(b) => Rep::Wire(Nested::direct(b, 13)),
            SpanRef::Decoded(s) => Rep::Decoded(s.links.iter()),
        })
    }

    /// The span's encoded size (the message body, without its key and length).
    pub fn encoded_len(self) -> usize {
        match self {
            SpanRef::Wire(b) => b.len(),
            SpanRef::Decoded(s) => prost::Message::encoded_len(s),
        }
    }

    /// The span as a struct, decoded from its bytes if need be.
    pub fn to_span(self) -> Span {
        match self {
            SpanRef::Wire(b) => prost::Message::decode(b).unwrap_or_default(),
            SpanRef::Decoded(s) => s.clone(),
        }
    }
}

/// A span event.
#[derive(Clone, Copy)]
pub enum EventRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a Event),
}

impl<'a> EventRef<'a> {
    pub fn time_unix_nano(self) -> u64 {
        match self {
            EventRef::Wire(b) => last_fixed64(b, 1).unwrap_or(0),
            EventRef::Decoded(e) => e.time_unix_nano,
        }
    }

    pub fn name(self) -> &'a str {
        match self {
            EventRef::Wire(b) => last_str(b, 2),
            EventRef::Decoded(e) => &e.name,
        }
    }

    pub fn attributes(self) -> Attrs<'a> {
        Attrs(match self {
            EventRef::Wire(b) => Rep::Wire(Nested::direct(b, 3)),
            EventRef::Decoded(e) => Rep::Decoded(e.attributes.iter()),
        })
    }
}

/// A span link.
#[derive(Clone, Copy)]
pub enum LinkRef<'a> {
    Wire(&'a [u8]),
    Decoded(&'a Link),
}

impl<'a> LinkRef<'a> {
    pub fn trace_id(self) -> &'a [u8] {
        match self {
            LinkRef::Wire(b) => last_len(b, 1).unwrap_or(&[]),
            LinkRef::Decoded(l) => &l.trace_id,
        }
    }

    pub fn span_id(self) -> &'a [u8] {
        match self {
            LinkRef::Wire(b) => last_len(b, 2).unwrap_or(&[]),
            LinkRef::Decoded(l) => &l.span_id,
        }
    }

    pub fn attributes(self) -> Attrs<'a> {
        Attrs(match self {
            LinkRef::Wire(b) => Rep::Wire(Nested::direct(b, 4)),
            LinkRef::Decoded(l) => Rep::Decoded(l.attributes.iter()),
        })
    }
}

/// The resources of encoded requests (`chunks`) or of structs.
pub struct Resources<'a> {
    chunks: std::slice::Iter<'a, bytes::Bytes>,
    cur: Nested<'a>,
    decoded: std::slice::Iter<'a, ResourceSpans>,
}

impl<'a> Resources<'a> {
    pub(super) fn wire(chunks: &'a [bytes::Bytes]) -> Self {
        Resources {
            chunks: chunks.iter(),
            cur: Nested::direct(&[], 1),
            decoded: [].iter(),
        }
    }

    pub(super) fn decoded(rs: &'a [ResourceSpans]) -> Self {
        Resources {
            chunks: [].iter(),
            cur: Nested::direct(&[], 1),
            decoded: rs.iter(),
        }
    }
}

impl<'a> Iterator for Resources<'a> {
    type Item = ResourceRef<'a>;

    fn next(&mut self) -> Option<ResourceRef<'a>> {
        if let Some(rs) = self.decoded.next() {
            return Some(ResourceRef::Decoded(rs));
        }
        loop {
            if let Some(b) = self.cur.next() {
                return Some(ResourceRef::Wire(b));
            }
            self.cur = Nested::direct(self.chunks.next()?, 1);
        }
    }
}

/// The bytes a length-delimited field of `len` bytes takes with a one-byte key.
fn field_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

fn put_field(out: &mut Vec<u8>, key: u8, len: usize, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(key);
    prost::encoding::encode_varint(len as u64, out);
    let start = out.len();
    body(out);
    debug_assert_eq!(out.len() - start, len);
}

/// Rewrites the encoded request `chunk` without the spans `keep` refuses, in one pass that
/// copies everything kept as it is (unknown fields included); a scope or resource left empty by
/// the removal goes too, one that was empty before stays. `None` when every span is kept (the
/// chunk stands as it is); else the new request and how many spans went.
pub fn retain_encoded(
    chunk: &[u8],
    keep: &mut impl FnMut(ResourceRef<'_>, SpanRef<'_>) -> bool,
) -> Option<(Vec<u8>, u64)> {
    // First the decisions and the new lengths, then the bytes (lengths precede bodies).
    let mut decisions: Vec<bool> = Vec::new();
    let mut scope_lens: Vec<Option<usize>> = Vec::new();
    let mut resource_lens: Vec<Option<usize>> = Vec::new();
    let mut removed = 0u64;
    for rs in Nested::direct(chunk, 1) {
        let (mut rs_len, mut kept_scopes, mut emptied) = (0, 0, false);
        for f in fields(rs) {
            let Raw::Len(ss) = f.value else {
                rs_len += f.bytes.len();
                continue;
            };
            if f.number != 2 {
                rs_len += f.bytes.len();
                continue;
            }
            let (mut ss_len, mut kept, mut gone) = (0, 0u64, 0u64);
            for g in fields(ss) {
                match (g.number, g.value) {
                    (2, Raw::Len(span)) => {
                        let k = keep(ResourceRef::Wire(rs), SpanRef::Wire(span));
                        decisions.push(k);
                        if k {
                            kept += 1;
                            ss_len += g.bytes.len();
                        } else {
                            gone += 1;
                        }
                    }
                    _ => ss_len += g.bytes.len(),
                }
            }
            removed += gone;
            if gone > 0 && kept == 0 {
                scope_lens.push(None);
                emptied = true;
            } else {
                scope_lens.push(Some(ss_len));
                rs_len += field_len(ss_len);
                kept_scopes += 1;
            }
        }
        resource_lens.push((!emptied || kept_scopes > 0).then_some(rs_len));
    }
    if removed == 0 {
        return None;
    }
    let (mut decisions, mut scope_lens, mut resource_lens) = (
        decisions.into_iter(),
        scope_lens.into_iter(),
        resource_lens.into_iter(),
    );
    let mut out = Vec::with_capacity(chunk.len());
    for f in fields(chunk) {
        let (1, Raw::Len(rs)) = (f.number, f.value) else {
            out.extend_from_slice(f.bytes);
            continue;
        };
        let rs_len = resource_lens.next().flatten();
        let mut write_resource = |out: &mut Vec<u8>, write: bool| {
            for g in fields(rs) {
                let (2, Raw::Len(ss)) = (g.number, g.value) else {
                    if write {
                        out.extend_from_slice(g.bytes);
                    }
                    continue;
                };
                let ss_len = scope_lens.next().flatten();
                let mut write_scope = |out: &mut Vec<u8>, write: bool| {
                    for h in fields(ss) {
                        // Every span's decision is consumed, written or not.
                        let copy = match (h.number, h.value) {
                            (2, Raw::Len(_)) => decisions.next() == Some(true),
                            _ => true,
                        };
                        if copy && write {
                            out.extend_from_slice(h.bytes);
                        }
                    }
                };
                match (write, ss_len) {
                    (true, Some(len)) => put_field(out, 0x12, len, |o| write_scope(o, true)),
                    _ => write_scope(out, false),
                }
            }
        };
        match rs_len {
            Some(len) => put_field(&mut out, 0x0a, len, |o| write_resource(o, true)),
            None => write_resource(&mut out, false),
        }
    }
    Some((out, removed))
}

impl<'a> ResourceRef<'a> {
    /// Appends the encoded `ResourceSpans` fields other than its scopes (the resource and its
    /// schema URL; unknown fields as they came), to write the resource again around other
    /// scopes.
    pub fn write_header(self, out: &mut Vec<u8>) {
        match self {
            ResourceRef::Wire(b) => fields(b)
                .filter(|f| f.number != 2)
                .for_each(|f| out.extend_from_slice(f.bytes)),
            ResourceRef::Decoded(rs) => {
                if let Some(r) = &rs.resource {
                    prost::encoding::message::encode(1, r, out);
                }
                if !rs.schema_url.is_empty() {
                    prost::encoding::string::encode(3, &rs.schema_url, out);
                }
            }
        }
    }
}

impl<'a> ScopeRef<'a> {
    /// Appends the encoded `ScopeSpans` fields other than its spans (see
    /// [`ResourceRef::write_header`]).
    pub fn write_header(self, out: &mut Vec<u8>) {
        match self {
            ScopeRef::Wire(b) => fields(b)
                .filter(|f| f.number != 2)
                .for_each(|f| out.extend_from_slice(f.bytes)),
            ScopeRef::Decoded(ss) => {
                if let Some(s) = &ss.scope {
                    prost::encoding::message::encode(1, s, out);
                }
                if !ss.schema_url.is_empty() {
                    prost::encoding::string::encode(3, &ss.schema_url, out);
                }
            }
        }
    }
}

impl<'a> SpanRef<'a> {
    /// Appends the span as field 2 of a `ScopeSpans` (key, length, message): its bytes as they
    /// came, or its struct encoded.
    pub fn write_field(self, out: &mut Vec<u8>) {
        match self {
            SpanRef::Wire(b) => {
                out.push(0x12);
                prost::encoding::encode_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            SpanRef::Decoded(s) => prost::encoding::message::encode(2, s, out),
        }
    }
}
