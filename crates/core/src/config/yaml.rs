//! YAML text -> `serde_json::Value` plus a map from field path to source line.
//!
//! serde's YAML deserializers stop at the first error and forget positions; we want every
//! problem reported with its line, so we build the tree ourselves from marked parser events and
//! let serde work on plain values afterwards.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

use super::env::{self, EnvError};
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

/// Most values a document may hold once its aliases are expanded. Real configs hold a few
/// thousand; nine nested aliases of nine can reach 387 million, and that many values would take
/// tens of gigabytes: past this, the document is refused before the memory is spent.
pub const MAX_VALUES: usize = 200_000;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// One per bad `${...}` reference.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Env(Vec<EnvError>),
}

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(text: &str, file: usize) -> Result<(Value, LineMap), YamlError> {
    parse_masked(text, file, &[])
}

/// [`parse`], with `${env:...}` references expanded with `env` into the scalars that hold them
/// (see [`super::env`]): a value never adds structure.
pub fn parse_with_env(
    text: &str,
    file: usize,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Value, LineMap), ParseError> {
    let (masked, values) = env::mask(text, env).map_err(ParseError::Env)?;
    Ok(parse_masked(&masked, file, &values)?)
}

fn parse_masked(
    text: &str,
    file: usize,
    placeholders: &[String],
) -> Result<(Value, LineMap), YamlError> {
    let mut builder = Builder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        lines: LineMap::default(),
        error: None,
        built: 0,
        placeholders,
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
        /// `Builder::built` when it started: what it holds is the difference at its end.
        first: usize,
    },
    Map {
        entries: Map<String, Value>,
        path: String,
        anchor: usize,
        /// The key read and waiting for its value.
        key: Option<String>,
        first: usize,
    },
}

struct Builder<'e> {
    file: usize,
    stack: Vec<Frame>,
    /// Anchored values, with how many values each holds.
    anchors: HashMap<usize, (Value, usize)>,
    root: Option<Value>,
    lines: LineMap,
    error: Option<YamlError>,
    /// Values built so far, aliases expanded: bounded by [`MAX_VALUES`].
    built: usize,
    /// What each `${...}` placeholder in the text stands for.
    placeholders: &'e [String],
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

impl Builder<'_> {
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

    /// Counts `n` more values; false (and the error set) past [`MAX_VALUES`].
    fn count(&mut self, n: usize, mark: Marker) -> bool {
        self.built = self.built.saturating_add(n);
        if self.built > MAX_VALUES {
            self.fail(
                format!(
                    "the document expands to more than {MAX_VALUES} values (aliases of aliases?); refused"
                ),
                mark,
            );
            return false;
        }
        true
    }

    /// Places a finished value (holding `size` values) into its parent.
    fn push_value(&mut self, value: Value, anchor: usize, size: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, (value.clone(), size));
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

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.count(1, mark) {
                    return;
                }
                let path = self.next_path();
                let in_value_position =
                    !matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if in_value_position && !path.is_empty() {
                    self.lines.0.entry(path).or_insert(Location {
                        file: self.file,
                        line: mark.line(),
                    });
                }
                // A variable's value lands inside this one scalar: it cannot add structure.
                let text = match env::unmask(&text, self.placeholders) {
                    std::borrow::Cow::Borrowed(_) => text,
                    std::borrow::Cow::Owned(t) => t,
                };
                self.push_value(scalar(text, style), anchor, 1, mark);
            }
            Event::SequenceStart(anchor, _) => {
                if !self.count(1, mark) {
                    return;
                }
                let path = self.next_path();
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    path,
                    anchor,
                    first: self.built - 1,
                });
            }
            Event::MappingStart(anchor, _) => {
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    self.fail("a mapping key must be a scalar".into(), mark);
                    return;
                }
                if !self.count(1, mark) {
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
                    first: self.built - 1,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    anchor,
                    first,
                    ..
                }) = self.stack.pop()
                {
                    let size = self.built - first;
                    self.push_value(Value::Array(items), anchor, size, mark);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    anchor,
                    first,
                    ..
                }) = self.stack.pop()
                {
                    let size = self.built - first;
                    self.push_value(Value::Object(entries), anchor, size, mark);
                }
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|a| a.1) else {
                    return self.fail("unknown alias".into(), mark);
                };
                // Counted before the copy is made: the copy is what an alias bomb costs.
                if !self.count(size, mark) {
                    return;
                }
                let value = self.anchors[&id].0.clone();
                self.push_value(value, 0, size, mark);
            }
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
    fn an_alias_bomb_is_refused_with_its_line() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse(&text, 0).unwrap_err();
        assert!(err.message.contains("more than 200000 values"), "{err}");
        assert!((6..=7).contains(&err.line), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Aliases within the bound are fine.
        let (v, _) = parse("a: &a [1, 2]\nb: [*a, *a, *a]\n", 0).unwrap();
        assert_eq!(v["b"][2][1], Value::from(2));
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "X" => Some("127.0.0.1:4317\n    headers: { x-injected: \"yes\" }".into()),
            "PORT" => Some("4317".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_in_values_only_and_never_add_structure() {
        let text = "# ${NOPE} in a comment\nexp:\n  endpoint: ${env:X}\n  port: ${PORT}\n  quoted: \"${PORT}\"\n  d: ${env:NOPE:-x} # ${NOPE}\n  flow: { a: ${PORT}, b: [${env:X}] }\n";
        let (v, lines) = parse_with_env(text, 0, env).unwrap();
        assert_eq!(
            v["exp"]["endpoint"],
            Value::from("127.0.0.1:4317\n    headers: { x-injected: \"yes\" }")
        );
        assert!(v["exp"].get("headers").is_none());
        assert_eq!(
            v["exp"]["port"],
            Value::from(4317),
            "a plain value is typed"
        );
        assert_eq!(v["exp"]["quoted"], Value::from("4317"));
        assert_eq!(v["exp"]["d"], Value::from("x"));
        assert_eq!(v["exp"]["flow"]["a"], Value::from(4317));
        assert_eq!(v["exp"]["flow"]["b"][0], v["exp"]["endpoint"]);
        assert_eq!(lines.find("exp.port").unwrap().line, 4);
        let Err(ParseError::Env(errs)) = parse_with_env("a: 1\nb:\n  c: ${MISSING}\n", 0, env)
        else {
            panic!("an unset variable is an error")
        };
        assert_eq!(errs[0].line, 3);
        assert!(errs[0].message.contains("`MISSING`"));
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
