//! Attribute helpers shared by processors and exporters.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

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
