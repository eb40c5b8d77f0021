//! Config primitives every layer uses: YAML with line numbers, `${env:X}` expansion,
//! component ids, durations, diagnostics, secrets, and the `service` section. Loading a whole
//! `pipelines.yaml` into a checked graph is the pipeline's (`pipeline::config`).

pub mod diag;
pub mod duration;
pub mod env;
pub mod id;
pub mod secret;
pub mod service;
pub mod yaml;

pub use diag::{Diagnostic, Diagnostics, Problems};
pub use id::ComponentId;
pub use service::ServiceConfig;

pub fn join_path(prefix: &str, field: &str) -> String {
    match field {
        "" | "." => prefix.to_string(),
        f if f.starts_with('[') => format!("{prefix}{f}"),
        f => format!("{prefix}.{f}"),
    }
}

/// Deserializes a config value; a failure is one problem with its field path (relative to
/// `value`) and a message in YAML's terms.
pub fn deserialize<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
) -> Result<T, Problems> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, clean_serde_message(&e.inner().to_string()))]
    })
}

/// Splits a mapping into the entries whose key is in `keys` and the rest, so settings shared by
/// several components (the pipeline's queue keys, the Kafka client keys) can sit beside a
/// component's own keys and be parsed apart. A value that is not a mapping goes to the rest,
/// whose own parse reports it.
pub fn split_keys(
    value: &serde_json::Value,
    keys: &[&str],
) -> (serde_json::Value, serde_json::Value) {
    let serde_json::Value::Object(all) = value else {
        return (serde_json::Value::Object(Default::default()), value.clone());
    };
    let (mut ours, mut rest) = (serde_json::Map::new(), serde_json::Map::new());
    for (k, v) in all {
        if keys.contains(&k.as_str()) {
            ours.insert(k.clone(), v.clone());
        } else {
            rest.insert(k.clone(), v.clone());
        }
    }
    (ours.into(), rest.into())
}

/// serde's "unknown field `x`, expected one of ..." for a mapping split by [`split_keys`]
/// names the keys parsed apart too: they are valid there.
pub fn with_split_keys(message: String, keys: &[&str]) -> String {
    if message.starts_with("unknown field") && message.contains("expected one of") {
        let extra: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        format!("{message}, {}", extra.join(", "))
    } else {
        message
    }
}

/// Config structs implement this to add checks serde cannot express.
pub trait Check {
    /// (field path, problem) for each problem; empty when valid.
    fn check(&self) -> Problems {
        Vec::new()
    }
}

/// [`parse_config`] for a config with shared settings `S` beside its own keys (`keys` are
/// `S`'s): both are parsed and checked, and every problem of either is reported.
pub fn parse_beside<S, T>(value: &serde_json::Value, keys: &[&str]) -> Result<(S, T), Problems>
where
    S: serde::de::DeserializeOwned + Check,
    T: serde::de::DeserializeOwned + Check,
{
    let (shared, own) = split_keys(value, keys);
    let shared = parse_config::<S>(&shared);
    let own = parse_config::<T>(&own).map_err(|problems| {
        problems
            .into_iter()
            .map(|(field, message)| match field.contains(['.', '[']) {
                true => (field, message),
                false => (field, with_split_keys(message, keys)),
            })
            .collect::<Problems>()
    });
    match (shared, own) {
        (Ok(s), Ok(t)) => Ok((s, t)),
        (Err(mut a), Err(b)) => {
            a.extend(b);
            Err(a)
        }
        (Err(a), _) | (_, Err(a)) => Err(a),
    }
}

/// Deserializes a component config with field paths in errors, then runs its own checks.
pub fn parse_config<T: serde::de::DeserializeOwned + Check>(
    value: &serde_json::Value,
) -> Result<T, Problems> {
    let c: T = deserialize(value)?;
    let problems = c.check();
    if problems.is_empty() {
        Ok(c)
    } else {
        Err(problems)
    }
}

/// serde's messages say "invalid type: string \"x\", expected u64"; users read YAML, not Rust.
fn clean_serde_message(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a port number"),
        ("expected usize", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected i32", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected struct ", "expected a mapping: "),
        ("expected a map", "expected a mapping"),
        ("invalid type: map", "invalid type: mapping"),
        ("invalid type: sequence", "invalid type: list"),
    ] {
        m = m.replace(from, to);
    }
    m
}
