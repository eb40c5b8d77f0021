//! Any text through the redaction processor: every built-in detector, blocked patterns, URL
//! query scrubbing, hashing, on span, event and resource attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spangate::component::registry::parse_config;
use spangate::component::InlineProcessor;
use spangate::data::SpanBatch;
use spangate::processors::redaction::{RedactionConfig, Redactor};
use spangate::telemetry::Metrics;
use std::sync::OnceLock;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span};
use spangate::data::attrs::set_attr;

/// Built once: compiling every detector per input would leave no time for inputs.
fn redactor() -> &'static Redactor {
    static R: OnceLock<Redactor> = OnceLock::new();
    R.get_or_init(|| {
        let cfg: RedactionConfig = parse_config(&serde_json::json!({
        "builtin": ["email", "credit_card", "us_ssn", "ipv4", "ipv6", "jwt", "bearer_token", "phone"],
        "blocked_values": ["secret-[0-9]+"],
        "url_query_params": ["token", "password"],
        "action": "hash",
        "hash_key": "fuzz",
        }))
        .expect("config");
        cfg.redactor(&Metrics::default(), "redaction")
            .expect("redactor")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut span = Span::default();
    set_attr(
        &mut span.attributes,
        "any",
        Value::StringValue(text.clone()),
    );
    set_attr(
        &mut span.attributes,
        "url.full",
        Value::StringValue(text.clone()),
    );
    set_attr(
        &mut span.attributes,
        "url.query",
        Value::StringValue(text.clone()),
    );
    span.events.push(Event {
        attributes: span.attributes.clone(),
        ..Default::default()
    });
    let mut batch = SpanBatch::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    let _ = redactor().process(&mut batch);
});
