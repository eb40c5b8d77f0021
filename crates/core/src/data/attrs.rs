//! Attribute helpers shared by processors and exporters.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::data::json::encode_base64;

/// The value of `key` when it is a string attribute.
pub fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Sets `key` to `value`, replacing an attribute of that key or appending one.
pub fn set_attr(attrs: &mut Vec<KeyValue>, key: &str, value: Value) {
    let value = Some(AnyValue { value: Some(value) });
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attrs.push(KeyValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
    }
}

/// Attributes as a JSON object, values keeping their types (bytes as base64; NaN and
/// infinities as their names): what Postgres stores and Jaeger shows for arrays and maps.
#[derive(Debug)]
pub struct Attrs<'a>(pub &'a [KeyValue]);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            m.serialize_entry(&kv.key, &JsonValue(kv.value.as_ref()))?;
        }
        m.end()
    }
}

/// One attribute value as JSON, as in [`Attrs`].
pub struct JsonValue<'a>(pub Option<&'a AnyValue>);

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.and_then(|v| v.value.as_ref()) {
            // A string-table index only means something inside a profiles message.
            None | Some(Value::StringValueStrindex(_)) => s.serialize_unit(),
            Some(Value::StringValue(v)) => s.serialize_str(v),
            Some(Value::BoolValue(v)) => s.serialize_bool(*v),
            Some(Value::IntValue(v)) => s.serialize_i64(*v),
            // JSON has no NaN or infinities: those become their names.
            Some(Value::DoubleValue(v)) if v.is_finite() => s.serialize_f64(*v),
            Some(Value::DoubleValue(v)) => s.serialize_str(&v.to_string()),
            Some(Value::BytesValue(v)) => s.serialize_str(&encode_base64(v)),
            Some(Value::ArrayValue(a)) => {
                let mut seq = s.serialize_seq(Some(a.values.len()))?;
                for v in &a.values {
                    seq.serialize_element(&JsonValue(Some(v)))?;
                }
                seq.end()
            }
            Some(Value::KvlistValue(kv)) => Attrs(&kv.values).serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set() {
        let mut attrs = Vec::new();
        set_attr(&mut attrs, "a", Value::StringValue("x".into()));
        set_attr(&mut attrs, "n", Value::IntValue(1));
        assert_eq!(str_attr(&attrs, "a"), Some("x"));
        assert_eq!(str_attr(&attrs, "n"), None, "not a string");
        set_attr(&mut attrs, "a", Value::StringValue("y".into()));
        assert_eq!((attrs.len(), str_attr(&attrs, "a")), (2, Some("y")));
    }
}
