//! Span fields as Postgres binary COPY values, written straight into the COPY buffer: ids as
//! lowercase hex text, times as timestamptz, attributes, events and links as JSONB that keeps
//! value types (strings, integers, doubles, booleans, arrays, maps; bytes as base64).

use std::error::Error;

use bytes::{BufMut, BytesMut};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

pub use crate::data::attrs::Attrs;
use crate::data::json::to_hex;

type Result = std::result::Result<IsNull, Box<dyn Error + Sync + Send>>;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes as lowercase hex `text`.
#[derive(Debug)]
pub struct Hex<'a>(pub &'a [u8]);

impl ToSql for Hex<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result {
        out.reserve(self.0.len() * 2);
        for b in self.0 {
            out.put_u8(HEX[(b >> 4) as usize]);
            out.put_u8(HEX[(b & 15) as usize]);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT
    }

    to_sql_checked!();
}

/// Nanoseconds since the Unix epoch as `timestamptz` (Postgres keeps microseconds).
#[derive(Debug)]
pub struct Ts(pub u64);

/// Microseconds from the Unix epoch to Postgres' (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl ToSql for Ts {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result {
        out.put_i64((self.0 / 1000) as i64 - PG_EPOCH_MICROS);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

/// Any serializable value as `jsonb` (binary format: version byte 1, then the JSON text).
#[derive(Debug)]
pub struct Jsonb<T>(pub T);

impl<T: Serialize + std::fmt::Debug + Sync> ToSql for Jsonb<T> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result {
        out.put_u8(1);
        serde_json::to_writer(out.writer(), &self.0)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// Events as `[{name, time_unix_nano, attributes}]`.
#[derive(Debug)]
pub struct Events<'a>(pub &'a [Event]);

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&EventJson(e))?;
        }
        seq.end()
    }
}

struct EventJson<'a>(&'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("time_unix_nano", &self.0.time_unix_nano)?;
        m.serialize_entry("attributes", &Attrs(&self.0.attributes))?;
        m.end()
    }
}

/// Links as `[{trace_id, span_id, trace_state, attributes}]`.
#[derive(Debug)]
pub struct Links<'a>(pub &'a [Link]);

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for l in self.0 {
            seq.serialize_element(&LinkJson(l))?;
        }
        seq.end()
    }
}

struct LinkJson<'a>(&'a Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("trace_id", &to_hex(&self.0.trace_id))?;
        m.serialize_entry("span_id", &to_hex(&self.0.span_id))?;
        m.serialize_entry("trace_state", &self.0.trace_state)?;
        m.serialize_entry("attributes", &Attrs(&self.0.attributes))?;
        m.end()
    }
}

pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

pub fn status_name(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn attributes_keep_their_types() {
        let attrs = vec![
            kv("s", Value::StringValue("x".into())),
            kv("i", Value::IntValue(-7)),
            kv("d", Value::DoubleValue(1.5)),
            kv("nan", Value::DoubleValue(f64::NAN)),
            kv("b", Value::BoolValue(true)),
            kv("bytes", Value::BytesValue(vec![1, 2, 3])),
            kv(
                "a",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "m",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("k", Value::StringValue("v".into()))],
                }),
            ),
        ];
        let json = serde_json::to_value(Attrs(&attrs)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"s": "x", "i": -7, "d": 1.5, "nan": "NaN", "b": true,
                "bytes": "AQID", "a": [1], "m": {"k": "v"}})
        );
    }

    #[test]
    fn binary_encodings() {
        let mut out = BytesMut::new();
        Hex(&[0xab, 0x01]).to_sql(&Type::TEXT, &mut out).unwrap();
        assert_eq!(&out[..], b"ab01");
        out.clear();
        Ts(946_684_800_000_001_000)
            .to_sql(&Type::TIMESTAMPTZ, &mut out)
            .unwrap();
        assert_eq!(&out[..], &1i64.to_be_bytes());
        out.clear();
        Jsonb(Attrs(&[])).to_sql(&Type::JSONB, &mut out).unwrap();
        assert_eq!(&out[..], b"\x01{}");
    }
}
