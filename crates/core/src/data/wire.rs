//! A validating walk over an encoded OTLP `ExportTraceServiceRequest`, without decoding it: it
//! accepts exactly the bytes prost's decode accepts (well-formed keys, varints and lengths, the
//! wire type each known field must have, UTF-8 in string fields, prost's nesting limit of 100;
//! unknown fields are skipped as prost skips them, groups included), and checks each span's ids
//! with the rules of [`super::validate`]. It allocates nothing, so a request can be checked
//! where it lies and handed on as bytes.

use super::validate::id_problem;

/// prost's `RECURSION_LIMIT`: how deep messages (and skipped groups) may nest.
pub(super) const NESTING: u32 = 100;

/// Why a request is not a valid `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("invalid varint")]
    Varint,
    #[error("invalid key or tag")]
    Key,
    #[error("invalid wire type {found} for field {field} (expected {expected})")]
    WireType { field: u32, found: u8, expected: u8 },
    #[error("buffer underflow")]
    Underflow,
    #[error("unexpected end group tag")]
    EndGroup,
    #[error("nesting limit ({NESTING}) reached")]
    Nesting,
    #[error("invalid string value: data is not UTF-8 encoded")]
    Utf8,
}

/// What the walk found in a well-formed request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Walk {
    pub resource_spans: usize,
    pub spans: usize,
    /// Spans whose ids break the OTLP rules (they would be rejected).
    pub invalid_spans: usize,
    /// The first such problem, as `partial_success.error_message` words it.
    pub first_problem: Option<String>,
}

/// Walks `request`; `Err` exactly when prost's decode of it would fail.
pub fn walk(request: &[u8]) -> Result<Walk, WireError> {
    let mut out = Walk::default();
    message(Msg::Request, request, NESTING, &mut out)?;
    Ok(out)
}

pub(super) const VARINT: u8 = 0;
pub(super) const I64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const START_GROUP: u8 = 3;
pub(super) const END_GROUP: u8 = 4;
pub(super) const I32: u8 = 5;

/// The messages of the trace request, by what their fields mean.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
}

/// What a known field holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Message(Msg),
    Str,
    Bytes,
    Varint,
    Fixed64,
    Fixed32,
}

impl Field {
    fn wire_type(self) -> u8 {
        match self {
            Field::Message(_) | Field::Str | Field::Bytes => LEN,
            Field::Varint => VARINT,
            Field::Fixed64 => I64,
            Field::Fixed32 => I32,
        }
    }
}

/// The schema: opentelemetry-proto's trace, resource and common messages.
fn field(msg: Msg, number: u32) -> Option<Field> {
    use Field::*;
    Some(match (msg, number) {
        (Msg::Request, 1) => Message(Msg::ResourceSpans),
        (Msg::ResourceSpans, 1) => Message(Msg::Resource),
        (Msg::ResourceSpans, 2) => Message(Msg::ScopeSpans),
        (Msg::ResourceSpans, 3) => Str,
        (Msg::Resource, 1) => Message(Msg::KeyValue),
        (Msg::Resource, 2) => Varint,
        (Msg::Resource, 3) => Message(Msg::EntityRef),
        (Msg::EntityRef, 1..=4) => Str,
        (Msg::ScopeSpans, 1) => Message(Msg::Scope),
        (Msg::ScopeSpans, 2) => Message(Msg::Span),
        (Msg::ScopeSpans, 3) => Str,
        (Msg::Scope, 1 | 2) => Str,
        (Msg::Scope, 3) => Message(Msg::KeyValue),
        (Msg::Scope, 4) => Varint,
        (Msg::Span, 1 | 2 | 4) => Bytes,
        (Msg::Span, 3 | 5) => Str,
        (Msg::Span, 6 | 10 | 12 | 14) => Varint,
        (Msg::Span, 7 | 8) => Fixed64,
        (Msg::Span, 9) => Message(Msg::KeyValue),
        (Msg::Span, 11) => Message(Msg::Event),
        (Msg::Span, 13) => Message(Msg::Link),
        (Msg::Span, 15) => Message(Msg::Status),
        (Msg::Span, 16) => Fixed32,
        (Msg::Event, 1) => Fixed64,
        (Msg::Event, 2) => Str,
        (Msg::Event, 3) => Message(Msg::KeyValue),
        (Msg::Event, 4) => Varint,
        (Msg::Link, 1 | 2) => Bytes,
        (Msg::Link, 3) => Str,
        (Msg::Link, 4) => Message(Msg::KeyValue),
        (Msg::Link, 5) => Varint,
        (Msg::Link, 6) => Fixed32,
        (Msg::Status, 2) => Str,
        (Msg::Status, 3) => Varint,
        (Msg::KeyValue, 1) => Str,
        (Msg::KeyValue, 2) => Message(Msg::AnyValue),
        (Msg::KeyValue, 3) => Varint,
        (Msg::AnyValue, 1) => Str,
        (Msg::AnyValue, 2 | 3 | 8) => Varint,
        (Msg::AnyValue, 4) => Fixed64,
        (Msg::AnyValue, 5) => Message(Msg::ArrayValue),
        (Msg::AnyValue, 6) => Message(Msg::KeyValueList),
        (Msg::AnyValue, 7) => Bytes,
        (Msg::ArrayValue, 1) => Message(Msg::AnyValue),
        (Msg::KeyValueList, 1) => Message(Msg::KeyValue),
        _ => return None,
    })
}

#[derive(Clone)]
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// prost's varint: at most 10 bytes, the tenth at most 1. Keys and lengths are nearly
    /// always one or two bytes: those are read inline, every walk and view reads them.
    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        match *self.buf {
            [b, ref rest @ ..] if b < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            _ => self.varint_long(),
        }
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(WireError::Varint)?;
            self.buf = rest;
            if i == 9 && b > 1 {
                return Err(WireError::Varint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::Varint)
    }

    #[inline]
    pub(super) fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError::Key);
        }
        let wire_type = (key & 7) as u8;
        if wire_type > I32 {
            return Err(WireError::Key);
        }
        let number = key as u32 >> 3;
        if number == 0 {
            return Err(WireError::Key);
        }
        Ok((number, wire_type))
    }

    #[inline]
    pub(super) fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() as u64 {
            return Err(WireError::Underflow);
        }
        let (head, rest) = self.buf.split_at(n as usize);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    pub(super) fn delimited(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Skips an unknown field as prost does; `budget` is what nesting is left.
    pub(super) fn skip(
        &mut self,
        number: u32,
        wire_type: u8,
        budget: u32,
    ) -> Result<(), WireError> {
        if budget == 0 {
            return Err(WireError::Nesting);
        }
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            I32 => self.take(4).map(drop),
            LEN => self.delimited().map(drop),
            START_GROUP => loop {
                let (inner, inner_type) = self.key()?;
                if inner_type == END_GROUP {
                    return match inner == number {
                        true => Ok(()),
                        false => Err(WireError::EndGroup),
                    };
                }
                self.skip(inner, inner_type, budget - 1)?;
            },
            _ => Err(WireError::EndGroup),
        }
    }
}

/// A span's ids as its last occurrences set them (prost keeps the last value of a field).
#[derive(Default)]
struct SpanIds<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a str,
}

/// Walks the fields of one `msg` in `buf`, with `budget` nesting left for what it contains.
fn message(msg: Msg, buf: &[u8], budget: u32, out: &mut Walk) -> Result<(), WireError> {
    let mut r = Reader { buf };
    let mut ids = SpanIds::default();
    while !r.buf.is_empty() {
        let (number, wire_type) = r.key()?;
        let Some(f) = field(msg, number) else {
            r.skip(number, wire_type, budget)?;
            continue;
        };
        if wire_type != f.wire_type() {
            return Err(WireError::WireType {
                field: number,
                found: wire_type,
                expected: f.wire_type(),
            });
        }
        match f {
            Field::Varint => drop(r.varint()?),
            Field::Fixed64 => drop(r.take(8)?),
            Field::Fixed32 => drop(r.take(4)?),
            Field::Bytes => {
                let value = r.delimited()?;
                if msg == Msg::Span {
                    match number {
                        1 => ids.trace_id = value,
                        2 => ids.span_id = value,
                        _ => ids.parent_span_id = value,
                    }
                }
            }
            Field::Str => {
                let value = std::str::from_utf8(r.delimited()?).map_err(|_| WireError::Utf8)?;
                if msg == Msg::Span && number == 5 {
                    ids.name = value;
                }
            }
            Field::Message(child) => {
                if budget == 0 {
                    return Err(WireError::Nesting);
                }
                let body = r.delimited()?;
                message(child, body, budget - 1, out)?;
                match child {
                    Msg::ResourceSpans => out.resource_spans += 1,
                    Msg::Span => out.spans += 1,
                    _ => {}
                }
            }
        }
    }
    if msg == Msg::Span {
        if let Some(p) = id_problem(ids.trace_id, ids.span_id, ids.parent_span_id) {
            if out.first_problem.is_none() {
                out.first_problem = Some(format!("span {:?}: {p}", ids.name));
            }
            out.invalid_spans += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_inputs_name_their_fault() {
        assert_eq!(walk(&[]), Ok(Walk::default()));
        assert_eq!(walk(&[0x80]), Err(WireError::Varint));
        assert_eq!(walk(&[0x00]), Err(WireError::Key), "field 0");
        assert_eq!(walk(&[0x0f]), Err(WireError::Key), "wire type 7");
        assert_eq!(walk(&[0x0a, 0x05, 0x00]), Err(WireError::Underflow));
        assert_eq!(
            walk(&[0x08, 0x01]),
            Err(WireError::WireType {
                field: 1,
                found: VARINT,
                expected: LEN
            })
        );
        // Unknown field 2 as a group holding field 3, ended by the wrong field's end tag.
        assert_eq!(walk(&[0x13, 0x18, 0x01, 0x1c]), Err(WireError::EndGroup));
        assert_eq!(walk(&[0x13, 0x18, 0x01, 0x14]).map(|w| w.spans), Ok(0));
        // A span whose name is not UTF-8.
        let span = [0x2a, 0x01, 0xff];
        let scope = [&[0x12, span.len() as u8][..], &span].concat();
        let rs = [&[0x12, scope.len() as u8][..], &scope].concat();
        let req = [&[0x0a, rs.len() as u8][..], &rs].concat();
        assert_eq!(walk(&req), Err(WireError::Utf8));
    }
}
