//! YAML text -> `serde_json::Value` plus a map from field path to source line.
//!
//! serde's YAML deserializers stop at the first error and forget positions; we want every
//! problem reported with its line, so we build the tree ourselves from marked parser events and
//! let serde work on plain values afterwards.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// Where a config value came from: index into the list of loaded files, and 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: usize,
    pub line: usize,
}

/// Field path (`processors.batch.timeout`, `policies[2].name`) -> where it was written.
#[derive(Default, Debug, Clone)]
pub struct LineMap(HashMap<String, Location>);

impl LineMap {
    /// The line of `path`, or of its closest ancestor that has one.
    pub fn find(&self, path: &str) -> Option<Location> {
        let mut p = path;
        loop {
            if let Some(loc) = self.0.get(p) {
                return Some(*loc);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    pub fn merge_from(&mut self, other: LineMap) {
        self.0.extend(other.0);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message} (line {line})")]
pub struct YamlError {
    pub message: String,
    pub line: usize,
}

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(text: &str, file: usize) -> Result<(Value, LineMap), YamlError> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        lines: LineMap::default(),
        error: None,
    };
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| YamlError {
            message: e.info().to_string(),
            line: e.marker().line(),
        })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    let root = match builder.root {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    Ok((root, builder.lines))
}

enum Frame {
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
    },
    Map {
        entries: Map<String, Value>,
        path: String,
        anchor: usize,
        /// The key read and waiting for its value.
        key: Option<String>,
    },
}

struct Builder {
    file: usize,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    lines: LineMap,
    error: Option<YamlError>,
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Plain scalars are typed as in YAML 1.2's core schema; quoted ones are always strings.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(_) => match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => Value::String(text),
        },
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        // `100_000`: Go's yaml (and so contrib configs) read digit groups as integers.
        _ if text.contains('_')
            && text
                .trim_start_matches('-')
                .chars()
                .all(|c| c.is_ascii_digit() || c == '_') =>
        {
            match text.replace('_', "").parse::<i64>() {
                Ok(i) => Value::Number(i.into()),
                Err(_) => Value::String(text),
            }
        }
        _ => Value::String(text),
    }
}

impl Builder {
    /// Path under which the next value will be stored.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
            Some(Frame::Map { path, key, .. }) => child_path(path, key.as_deref().unwrap_or("")),
        }
    }

    fn fail(&mut self, message: String, mark: Marker) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                message,
                line: mark.line(),
            });
        }
    }

    /// Places a finished value into its parent. Returns false when `value` was a map key.
    fn push_value(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => {
                    entries.insert(k, value);
                }
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        _ => {
                            self.fail("a mapping key must be a scalar".into(), mark);
                            return;
                        }
                    };
                    if entries.contains_key(&k) {
                        self.fail(format!("duplicate key `{k}`"), mark);
                        return;
                    }
                    let Some(Frame::Map { path, key, .. }) = self.stack.last_mut() else {
                        return;
                    };
                    let full = child_path(path, &k);
                    self.lines.0.insert(
                        full,
                        Location {
                            file: self.file,
                            line: mark.line(),
                        },
                    );
                    *key = Some(k);
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let path = self.next_path();
                let in_value_position =
                    !matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if in_value_position && !path.is_empty() {
                    self.lines.0.entry(path).or_insert(Location {
                        file: self.file,
                        line: mark.line(),
                    });
                }
                self.push_value(scalar(text, style), anchor, mark);
            }
            Event::SequenceStart(anchor, _) => {
                let path = self.next_path();
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    self.fail("a mapping key must be a scalar".into(), mark);
                    return;
                }
                let path = self.next_path();
                if !path.is_empty() {
                    self.lines.0.entry(path.clone()).or_insert(Location {
                        file: self.file,
                        line: mark.line(),
                    });
                }
                self.stack.push(Frame::Map {
                    entries: Map::new(),
                    path,
                    anchor,
                    key: None,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq { items, anchor, .. }) = self.stack.pop() {
                    self.push_value(Value::Array(items), anchor, mark);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries, anchor, ..
                }) = self.stack.pop()
                {
                    self.push_value(Value::Object(entries), anchor, mark);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(v) => self.push_value(v, 0, mark),
                None => self.fail("unknown alias".into(), mark),
            },
            _ => {}
        }
    }
}

/// Deep merge: maps merge key by key, anything else (lists included) is replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_lines() {
        let text = "a:\n  b: 1\n  c: \"1\"\n  d: [x, 2.5, true]\n  e:\n    - name: p\n      n: ~\n";
        let (v, lines) = parse(text, 0).unwrap();
        assert_eq!(v["a"]["b"], Value::from(1));
        assert_eq!(v["a"]["c"], Value::from("1"));
        assert_eq!(v["a"]["d"][1], Value::from(2.5));
        assert_eq!(v["a"]["d"][2], Value::from(true));
        assert_eq!(v["a"]["e"][0]["n"], Value::Null);
        let (v, _) = parse("n: 100_000\ns: a_b\n", 0).unwrap();
        assert_eq!(v["n"], Value::from(100_000));
        assert_eq!(v["s"], Value::from("a_b"));
        assert_eq!(lines.find("a.b").unwrap().line, 2);
        assert_eq!(lines.find("a.e[0].name").unwrap().line, 6);
        assert_eq!(lines.find("a.e[0].n.deeper").unwrap().line, 7);
        assert_eq!(lines.find("a.d[1]").unwrap().line, 4);
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n", 0).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
        let err = parse("a:\n  - b\n c: [\n", 0).unwrap_err();
        assert!(err.line >= 2, "{err}");
    }

    #[test]
    fn anchors_and_empty() {
        let (v, _) = parse("x: &x {k: 1}\ny: *x\n", 0).unwrap();
        assert_eq!(v["y"]["k"], Value::from(1));
        let (v, _) = parse("", 0).unwrap();
        assert!(v.as_object().unwrap().is_empty());
    }

    #[test]
    fn merge_maps_replace_lists() {
        let (mut a, _) = parse("m: {a: 1, l: [1, 2]}\n", 0).unwrap();
        let (b, _) = parse("m: {b: 2, l: [3]}\n", 0).unwrap();
        merge(&mut a, b);
        assert_eq!(a["m"]["a"], Value::from(1));
        assert_eq!(a["m"]["b"], Value::from(2));
        assert_eq!(a["m"]["l"], serde_json::json!([3]));
    }
}
