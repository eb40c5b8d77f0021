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
