//! Redaction over a corpus: PII in every place found, look-alikes left, hashes keyed and stable,
//! URLs still valid, and contrib's documented behaviour.

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::*;
use crate::data::json::encode_request;

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// The redactor under test, and twins of it (counting elsewhere) for the other forms of a run.
struct Under {
    r: Redactor,
    twin: Redactor,
}

fn redactor(yaml: &str) -> (Under, Metrics) {
    let (v, _) = crate::config::yaml::parse(yaml, 0).unwrap();
    let cfg: RedactionConfig = parse_config(&v).unwrap_or_else(|e| panic!("{e:?}"));
    let m = Metrics::default();
    let r = cfg.redactor(&m, "redaction").unwrap();
    let twin = cfg.redactor(&Metrics::default(), "redaction").unwrap();
    (Under { r, twin }, m)
}

const PII: [(&str, &str); 8] = [
    ("email", "jane.doe@example.com"),
    ("credit_card", "4111 1111 1111 1111"),
    ("us_ssn", "078-05-1120"),
    ("ipv4", "203.0.113.195"),
    ("ipv6", "2001:db8:85a3::8a2e:370:7334"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ),
    ("bearer_token", "Bearer 8f14e45fceea167a5a36dedd4bea2543"),
    ("phone", "+44 20 7946 0958"),
];

/// A span with `text` in every place the processor covers.
fn everywhere(text: &str) -> Vec<ResourceSpans> {
    let nested = Value::KvlistValue(KeyValueList {
        values: vec![kv(
            "inner",
            Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(s(text)),
                }],
            }),
        )],
    });
    vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("r", s(text))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                attributes: vec![kv("sc", s(text))],
                ..Default::default()
            }),
            spans: vec![Span {
                name: format!("call for {text}"),
                attributes: vec![
                    kv("a", s(&format!("user {text} here"))),
                    kv("nested", nested),
                ],
                events: vec![Event {
                    name: format!("saw {text}"),
                    attributes: vec![kv("e", s(text))],
                    ..Default::default()
                }],
                links: vec![Link {
                    attributes: vec![kv("l", s(text))],
                    ..Default::default()
                }],
                status: Some(Status {
                    message: format!("failed for {text}"),
                    code: 2,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }]
}

/// Redacts `rs` as structs; the same spans as received bytes, and the decode-path reference,
/// must come out the same.
fn run(u: &Under, rs: Vec<ResourceSpans>) -> String {
    let bytes = ExportTraceServiceRequest {
        resource_spans: rs.clone(),
    }
    .encode_to_vec();
    let mut reference = rs.clone();
    u.twin.process_reference(&mut reference);
    let mut b = SpanBatch::new(rs);
    u.r.process(&mut b);
    let out = encode_request(b.resource_spans());
    let spans = crate::data::wire::walk(&bytes).unwrap().spans;
    let mut wire = SpanBatch::from_wire(bytes.into(), spans);
    u.twin.process(&mut wire);
    assert!(wire.is_encoded_only(), "the byte path decoded");
    assert_eq!(
        encode_request(wire.resource_spans()),
        out,
        "bytes and structs differ"
    );
    assert_eq!(encode_request(&reference), out, "the reference differs");
    out
}

#[test]
fn every_kind_found_in_every_place() {
    let (r, m) =
        redactor("builtin: [email, credit_card, us_ssn, ipv4, ipv6, jwt, bearer_token, phone]\n");
    for (kind, text) in PII {
        let out = run(&r, everywhere(text));
        let probe = if kind == "bearer_token" {
            "8f14e45fceea"
        } else {
            text
        };
        assert!(!out.contains(probe), "{kind} left in {out}");
        // resource, scope, span attr, nested, span name, event attr, event name, link, status
        assert_eq!(out.matches("****").count(), 9, "{kind}: {out}");
        assert_eq!(m.processor_redactions("redaction", kind).get(), 9, "{kind}");
    }
}

#[test]
fn look_alikes_are_left_alone() {
    let (r, m) =
        redactor("builtin: [email, credit_card, us_ssn, ipv4, ipv6, jwt, bearer_token, phone]\n");
    for text in [
        "order 4111 1111 1111 1112",
        "invoice 7992739871",
        "v1.2.3",
        "1.42.0-rc.1",
        "GET /api/v1.2/items",
        "2024-01-15T10:30:45.123456Z",
        "12:30:45",
        "1700000000123",
        "span 7f3a9c1e2b4d5a6f",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "aa:bb:cc:dd:ee:ff",
        "build 2024-12-15",
        "the bearer of bad news",
        "user@localhost",
    ] {
        let out = run(&r, everywhere(text));
        assert!(!out.contains("****"), "false positive on {text:?}: {out}");
    }
    assert_eq!(m.processor_redactions("redaction", "phone").get(), 0);
}

#[test]
fn hash_is_keyed_stable_and_equals_contrib_hmac_sha256() {
    let out = |yaml: &str| {
        run(
            &redactor(yaml).0,
            vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("user", s("jane@example.com"))],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
    };
    // hex(HMAC-SHA256(key "k1", "jane@example.com")), computed independently.
    let expected = "2312dfbd6225d18dbb5870f7ae90bf5721dc80324b39b747be353e7ace1ecd81";
    let ours = out("builtin: [email]\naction: hash\nhash_key: k1\n");
    assert!(ours.contains(expected), "{ours}");
    assert_eq!(
        ours,
        out("builtin: [email]\naction: hash\nhash_key: k1\n"),
        "stable across instances"
    );
    assert!(
        !out("builtin: [email]\naction: hash\nhash_key: k2\n").contains(expected),
        "keyed"
    );
    let contrib =
        out("blocked_values: ['[a-z.]+@[a-z.]+']\nhash_function: hmac-sha256\nhmac_key: k1\n");
    assert!(contrib.contains(expected), "{contrib}");
}

#[test]
fn url_params_are_replaced_and_the_url_stays_valid() {
    let (r, m) = redactor("url_query_params: [token, api_key]\n");
    let out = run(
        &r,
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "GET /cb?token=abc".into(),
                    attributes: vec![
                        kv(
                            "url.full",
                            s("https://shop.example.com/cart?token=s3cr3t&page=2&API_KEY=k#top"),
                        ),
                        kv("url.query", s("token=s3cr3t&x=1")),
                        kv("http.url", s("/search?q=shoes")),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    );
    assert!(
        !out.contains("s3cr3t") && !out.contains("API_KEY=k#"),
        "{out}"
    );
    assert!(
        out.contains("https://shop.example.com/cart?token=****&page=2&API_KEY=****#top"),
        "{out}"
    );
    assert!(out.contains("\"name\":\"GET /cb?token=****\""), "{out}");
    "https://shop.example.com/cart?token=****&page=2&API_KEY=****#top"
        .parse::<http::Uri>()
        .expect("still a URI");
    assert!(out.contains("/search?q=shoes"));
    assert_eq!(m.processor_redactions("redaction", "url_param").get(), 3);
}

fn span_attrs(out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].clone()
}

fn attr<'a>(attrs: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    attrs
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// The contrib README's example: only allowed keys survive, card numbers masked (md5 here),
/// and the summary lists what happened.
#[test]
fn contrib_readme_config_behaves_as_documented() {
    let (r, _) = redactor(
        "allow_all_keys: false
allowed_keys: [description, group, id, name]
ignored_keys: [safe_attribute]
blocked_values: ['4[0-9]{12}(?:[0-9]{3})?', '(5[1-5][0-9]{14})']
hash_function: md5
summary: debug
",
    );
    let rs = vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                attributes: vec![
                    kv("id", s("4111111111111111")),
                    kv("name", s("placeholder")),
                    kv("credit_card", s("5500000000000004")),
                    kv("safe_attribute", s("4111111111111111")),
                    kv("password", s("xyzxyz")),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }];
    let a = span_attrs(&run(&r, rs));
    // md5("4111111111111111"), computed independently.
    assert_eq!(
        attr(&a, "id").unwrap()["stringValue"],
        "5910f4ea0062a0e29afd3dccc741e3ce"
    );
    assert_eq!(attr(&a, "name").unwrap()["stringValue"], "placeholder");
    assert!(attr(&a, "credit_card").is_none() && attr(&a, "password").is_none());
    assert_eq!(
        attr(&a, "safe_attribute").unwrap()["stringValue"],
        "4111111111111111"
    );
    assert_eq!(
        attr(&a, "redaction.redacted.keys").unwrap()["stringValue"],
        "credit_card,password"
    );
    assert_eq!(
        attr(&a, "redaction.redacted.count").unwrap()["intValue"],
        "2"
    );
    assert_eq!(
        attr(&a, "redaction.masked.keys").unwrap()["stringValue"],
        "id"
    );
    assert_eq!(attr(&a, "redaction.masked.count").unwrap()["intValue"], "1");
    assert_eq!(
        attr(&a, "redaction.ignored.count").unwrap()["intValue"],
        "1"
    );
}

#[test]
fn blocked_keys_allowed_values_and_all_types() {
    let (r, _) = redactor(
        "blocked_key_patterns: ['.*token.*']
allowed_values: ['.+@mycompany\\.com']
blocked_values: ['[0-9]{4}-[0-9]{4}']
redact_all_types: true
summary: info
builtin: [email]
",
    );
    let rs = vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                attributes: vec![
                    kv("auth_token", s("abc")),
                    kv("count_token", Value::IntValue(5)),
                    kv("owner", s("ops@mycompany.com")),
                    kv("pin", s("1234-5678")),
                    kv("code", Value::IntValue(12345678)),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }];
    let a = span_attrs(&run(&r, rs));
    assert_eq!(attr(&a, "auth_token").unwrap()["stringValue"], "****");
    assert_eq!(
        attr(&a, "count_token").unwrap()["stringValue"],
        "****",
        "masked values become strings"
    );
    assert_eq!(
        attr(&a, "owner").unwrap()["stringValue"],
        "ops@mycompany.com",
        "allowed value"
    );
    assert_eq!(attr(&a, "pin").unwrap()["stringValue"], "****");
    assert_eq!(attr(&a, "code").unwrap()["intValue"], "12345678");
    assert_eq!(attr(&a, "redaction.masked.count").unwrap()["intValue"], "3");
    assert_eq!(
        attr(&a, "redaction.allowed.count").unwrap()["intValue"],
        "1"
    );
    assert!(
        attr(&a, "redaction.masked.keys").is_none(),
        "info level: counts only"
    );
}

#[test]
fn config_checks() {
    let bad = |yaml: &str| {
        let (v, _) = crate::config::yaml::parse(yaml, 0).unwrap();
        parse_config::<RedactionConfig>(&v).unwrap_err()
    };
    assert_eq!(bad("blocked_values: ['(']\n")[0].0, "blocked_values[0]");
    assert_eq!(bad("hash_function: hmac-sha256\n")[0].0, "hmac_key");
    assert_eq!(bad("action: hash\n")[0].0, "hash_key");
    assert!(bad("builtin: [passport]\n")[0]
        .1
        .contains("unknown variant `passport`"));
    let (v, _) =
        crate::config::yaml::parse("hash_key: s3cret\naction: hash\nhmac_key: k\n", 0).unwrap();
    let cfg: RedactionConfig = parse_config(&v).unwrap();
    assert!(!format!("{cfg:?}").contains("s3cret"));
}
