//! Any text as pipelines.yaml: YAML, env expansion, every component's config, graph checks.
//! Errors are fine; panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spangate::component::registry::Registry;
use spangate::components::Builtin;
use spangate::pipeline::config::{load_sources, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let registry = Registry::builtin();
    let sources = [Source {
        name: "fuzz.yaml".into(),
        text: text.into(),
    }];
    let _ = load_sources(&sources, &registry, |k| (k == "X").then(|| "1".into()));
});
