//! Policy by policy, precedence, whole traces, late spans, memory bounds; deterministic clocks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};

use super::config::TailSamplingConfig;
use super::policy::{probabilistic_threshold, Policies};
use super::store::{assemble, Limits, Sizing, Store};
use super::TsMetrics;
use crate::component::registry::parse_config;
use crate::telemetry::metrics::Metrics;

const WAIT: Duration = Duration::from_secs(10);

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

fn tid(n: u128) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

#[derive(Clone, Default)]
struct Sp {
    trace: u128,
    id: u8,
    parent: u8,
    start_ms: u64,
    end_ms: u64,
    attrs: Vec<KeyValue>,
    status: i32,
    trace_state: &'static str,
}

fn span(sp: &Sp) -> Span {
    Span {
        trace_id: tid(sp.trace),
        span_id: vec![sp.id; 8],
        parent_span_id: if sp.parent == 0 {
            vec![]
        } else {
            vec![sp.parent; 8]
        },
        name: format!("s{}", sp.id),
        start_time_unix_nano: sp.start_ms * 1_000_000,
        end_time_unix_nano: sp.end_ms * 1_000_000,
        attributes: sp.attrs.clone(),
        status: Some(Status {
            code: sp.status,
            message: String::new(),
        }),
        trace_state: sp.trace_state.into(),
        ..Default::default()
    }
}

fn rs(resource: Vec<KeyValue>, spans: Vec<Span>) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }]
}

fn config(yaml: &str) -> TailSamplingConfig {
    let (v, _) = crate::config::yaml::parse(yaml, 0).unwrap();
    parse_config::<TailSamplingConfig>(&v).unwrap_or_else(|e| panic!("{e:?}"))
}

fn store_from(cfg: &TailSamplingConfig, m: &Metrics) -> Store {
    let policies = Policies::compile(&cfg.policies, cfg.sample_on_first_match);
    let metrics = TsMetrics::new(m, "tail_sampling", &policies.names);
    Store::new(
        policies,
        Limits {
            wait: cfg.decision_wait,
            after_root: cfg.decision_wait_after_root_received,
            num_traces: cfg.num_traces,
            max_bytes: cfg.max_buffered_bytes,
            max_trace_bytes: cfg.maximum_trace_size_bytes,
            block_on_overflow: cfg.block_on_overflow,
        },
        Sizing {
            shards: cfg.num_shards.unwrap_or(4),
            sampled_cache: cfg.decision_cache.sampled_cache_size,
            non_sampled_cache: cfg.decision_cache.non_sampled_cache_size,
            expected: 0,
        },
        metrics,
        Default::default(),
    )
}

fn store(policies: &str) -> Store {
    store_from(
        &config(&format!("decision_wait: 10s\npolicies:\n{policies}")),
        &Metrics::default(),
    )
}

/// Buffers decoded spans (the receivers' JSON path; the byte path is `tests/wire.rs`'s).
fn insert(
    st: &Store,
    rs: Vec<ResourceSpans>,
    acks: &[crate::data::ack::Ack],
    now: Instant,
) -> super::store::Released {
    st.insert(&crate::data::SpanBatch::new(rs), acks, now)
}

fn kept_traces(released: super::store::Released) -> HashSet<u128> {
    assemble(released.kept)
        .0
        .resource_spans()
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| u128::from_be_bytes(s.trace_id.clone().try_into().unwrap()))
        .collect()
}

/// Buffers each trace (resource attrs, spans), decides after the wait, returns kept ids.
fn run(st: &Store, traces: Vec<(Vec<KeyValue>, Vec<Sp>)>) -> HashSet<u128> {
    let t0 = Instant::now();
    for (res, spans) in traces {
        insert(st, rs(res, spans.iter().map(span).collect()), &[], t0);
    }
    assert!(
        kept_traces(st.decide_due(t0 + WAIT / 2)).is_empty(),
        "nothing is due before the wait"
    );
    kept_traces(st.decide_due(t0 + WAIT))
}

fn one(trace: u128, f: impl FnOnce(&mut Sp)) -> (Vec<KeyValue>, Vec<Sp>) {
    let mut sp = Sp {
        trace,
        id: 1,
        start_ms: 1000,
        end_ms: 1010,
        ..Default::default()
    };
    f(&mut sp);
    (vec![], vec![sp])
}

fn ids(v: &[u128]) -> HashSet<u128> {
    v.iter().copied().collect()
}

#[test]
fn always_sample_and_latency() {
    let st = store("  - { name: all, type: always_sample }");
    assert_eq!(run(&st, vec![one(1, |_| {}), one(2, |_| {})]), ids(&[1, 2]));

    let st = store("  - { name: slow, type: latency, latency: { threshold_ms: 500 } }");
    // Latency is max(end) - min(start) over the trace, not any one span.
    let two_spans = (
        vec![],
        vec![
            Sp {
                trace: 3,
                id: 1,
                start_ms: 0,
                end_ms: 300,
                ..Default::default()
            },
            Sp {
                trace: 3,
                id: 2,
                parent: 1,
                start_ms: 250,
                end_ms: 500,
                ..Default::default()
            },
        ],
    );
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.end_ms = 1499),
                one(2, |s| s.end_ms = 1500),
                two_spans
            ]
        ),
        ids(&[2, 3])
    );
    let st = store("  - { name: band, type: latency, latency: { threshold_ms: 100, upper_threshold_ms: 200 } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.end_ms = 1100),
                one(2, |s| s.end_ms = 1150),
                one(3, |s| s.end_ms = 1200),
                one(4, |s| s.end_ms = 1201)
            ]
        ),
        ids(&[2, 3]),
        "contrib: lower bound exclusive when an upper bound is set"
    );
}

#[test]
fn status_code_and_span_count() {
    let st =
        store("  - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.status = StatusCode::Error as i32),
                one(2, |s| s.status = StatusCode::Ok as i32),
                one(3, |_| {})
            ]
        ),
        ids(&[1])
    );
    let st = store(
        "  - { name: ok_unset, type: status_code, status_code: { status_codes: [OK, UNSET] } }",
    );
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.status = 2),
                one(2, |s| s.status = 1),
                one(3, |_| {})
            ]
        ),
        ids(&[2, 3])
    );

    let st =
        store("  - { name: size, type: span_count, span_count: { min_spans: 2, max_spans: 3 } }");
    let n_spans = |t: u128, n: u8| {
        (
            vec![],
            (1..=n)
                .map(|i| Sp {
                    trace: t,
                    id: i,
                    ..Default::default()
                })
                .collect(),
        )
    };
    assert_eq!(
        run(
            &st,
            vec![n_spans(1, 1), n_spans(2, 2), n_spans(3, 3), n_spans(4, 4)]
        ),
        ids(&[2, 3])
    );
}

#[test]
fn string_attribute_exact_regex_invert_and_resource() {
    let st = store("  - { name: vip, type: string_attribute, string_attribute: { key: tier, values: [gold, platinum] } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs = vec![kv("tier", s_("gold"))]),
                one(2, |s| s.attrs = vec![kv("tier", s_("silver"))]),
                (
                    vec![kv("tier", s_("platinum"))],
                    vec![Sp {
                        trace: 3,
                        id: 1,
                        ..Default::default()
                    }]
                ),
                one(4, |s| s.attrs = vec![kv("tier", Value::IntValue(1))]),
            ]
        ),
        ids(&[1, 3])
    );
    let st = store("  - { name: re, type: string_attribute, string_attribute: { key: http.url, values: ['\\/api\\/v[0-9]+'], enabled_regex_matching: true, cache_max_size: 10 } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs =
                    vec![kv("http.url", s_("https://x/api/v2/cart"))]),
                one(2, |s| s.attrs = vec![kv("http.url", s_("/health"))])
            ]
        ),
        ids(&[1])
    );
    // invert_match: any match makes it an inverted not-sampled, which wins over other samples.
    let st = store(
        "  - { name: not_health, type: string_attribute, string_attribute: { key: url.path, values: [/health, /metrics], invert_match: true } }\n  - { name: all, type: always_sample }",
    );
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs = vec![kv("url.path", s_("/health"))]),
                one(2, |s| s.attrs = vec![kv("url.path", s_("/cart"))]),
                one(3, |_| {})
            ]
        ),
        ids(&[2, 3])
    );
}

fn s_(v: &str) -> Value {
    s(v)
}

#[test]
fn numeric_boolean_and_trace_state() {
    let st = store("  - { name: range, type: numeric_attribute, numeric_attribute: { key: http.status_code, min_value: 500, max_value: 599 } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs =
                    vec![kv("http.status_code", Value::IntValue(503))]),
                one(2, |s| s.attrs =
                    vec![kv("http.status_code", Value::IntValue(200))]),
                one(3, |s| s.attrs =
                    vec![kv("http.status_code", Value::IntValue(599))]),
            ]
        ),
        ids(&[1, 3])
    );
    let st = store("  - { name: not_range, type: numeric_attribute, numeric_attribute: { key: n, min_value: 10, invert_match: true } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs = vec![kv("n", Value::IntValue(11))]),
                one(2, |s| s.attrs = vec![kv("n", Value::IntValue(9))]),
                one(3, |_| {})
            ]
        ),
        ids(&[2, 3])
    );
    let st = store("  - { name: debug, type: boolean_attribute, boolean_attribute: { key: app.debug, value: true } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs =
                    vec![kv("app.debug", Value::BoolValue(true))]),
                one(2, |s| s.attrs =
                    vec![kv("app.debug", Value::BoolValue(false))])
            ]
        ),
        ids(&[1])
    );
    let st =
        store("  - { name: ts, type: trace_state, trace_state: { key: vendor, values: [keep] } }");
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.trace_state = "other=1, vendor=keep"),
                one(2, |s| s.trace_state = "vendor=skip"),
                one(3, |_| {})
            ]
        ),
        ids(&[1])
    );
}

#[test]
fn and_not_drop_and_precedence() {
    let st = store(
        "  - name: both
    type: and
    and:
      and_sub_policy:
        - { name: err, type: status_code, status_code: { status_codes: [ERROR] } }
        - { name: gold, type: string_attribute, string_attribute: { key: tier, values: [gold] } }",
    );
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| {
                    s.status = 2;
                    s.attrs = vec![kv("tier", s_("gold"))]
                }),
                one(2, |s| s.status = 2),
                one(3, |s| s.attrs = vec![kv("tier", s_("gold"))]),
            ]
        ),
        ids(&[1])
    );
    let st = store("  - name: no_errors\n    type: not\n    not:\n      not_sub_policy: { name: err, type: status_code, status_code: { status_codes: [ERROR] } }");
    assert_eq!(
        run(&st, vec![one(1, |s| s.status = 2), one(2, |_| {})]),
        ids(&[2])
    );
    // A drop match wins over every sample.
    let st = store(
        "  - { name: all, type: always_sample }
  - name: no_health
    type: drop
    drop:
      drop_sub_policy:
        - { name: health, type: string_attribute, string_attribute: { key: url.path, values: [/health] } }",
    );
    assert_eq!(
        run(
            &st,
            vec![
                one(1, |s| s.attrs = vec![kv("url.path", s_("/health"))]),
                one(2, |_| {})
            ]
        ),
        ids(&[2])
    );
    // InvertSampled alone samples; next to a NotSampled it does not.
    let st = store(
        "  - { name: inv, type: string_attribute, string_attribute: { key: k, values: [x], invert_match: true } }
  - { name: err, type: status_code, status_code: { status_codes: [ERROR] } }",
    );
    assert_eq!(
        run(&st, vec![one(1, |s| s.status = 2), one(2, |_| {})]),
        ids(&[1])
    );
    let st = store("  - { name: inv, type: string_attribute, string_attribute: { key: k, values: [x], invert_match: true } }");
    assert_eq!(run(&st, vec![one(1, |_| {})]), ids(&[1]));
}

#[test]
fn sample_on_first_match_stops_evaluating() {
    let m = Metrics::default();
    let cfg = config(
        "decision_wait: 10s\nsample_on_first_match: true\npolicies:\n  - { name: all, type: always_sample }\n  - { name: rate, type: rate_limiting, rate_limiting: { spans_per_second: 1 } }",
    );
    let st = store_from(&cfg, &m);
    assert_eq!(
        run(&st, (1..=5).map(|t| one(t, |_| {})).collect()),
        ids(&[1, 2, 3, 4, 5])
    );
    assert_eq!(
        m.tail_sampling_policy_decisions("tail_sampling", "rate", "sampled")
            .get(),
        0
    );
    assert_eq!(
        m.tail_sampling_policy_decisions("tail_sampling", "all", "sampled")
            .get(),
        5
    );
}

#[test]
fn rate_and_bytes_limiting_are_token_buckets() {
    let st = store("  - { name: rate, type: rate_limiting, rate_limiting: { spans_per_second: 2, burst_capacity: 3 } }");
    // Burst of 3 spans: traces 1 and 2 (one span each) pass, trace 3 (two spans) does not fit.
    let t0 = Instant::now();
    for (t, n) in [(1u128, 1u8), (2, 1), (3, 2)] {
        insert(
            &st,
            rs(
                vec![],
                (1..=n)
                    .map(|i| {
                        span(&Sp {
                            trace: t,
                            id: i,
                            ..Default::default()
                        })
                    })
                    .collect(),
            ),
            &[],
            t0,
        );
    }
    assert_eq!(kept_traces(st.decide_due(t0 + WAIT)), ids(&[1, 2]));
    // One second later two tokens came back.
    insert(
        &st,
        rs(
            vec![],
            vec![
                span(&Sp {
                    trace: 4,
                    id: 1,
                    ..Default::default()
                }),
                span(&Sp {
                    trace: 4,
                    id: 2,
                    ..Default::default()
                }),
            ],
        ),
        &[],
        t0 + Duration::from_secs(1),
    );
    assert_eq!(
        kept_traces(st.decide_due(t0 + WAIT + Duration::from_secs(1))),
        ids(&[4])
    );

    let st = store("  - { name: bytes, type: bytes_limiting, bytes_limiting: { bytes_per_second: 1, burst_capacity: 200 } }");
    let big = one(2, |s| s.attrs = vec![kv("blob", s_(&"x".repeat(300)))]);
    assert_eq!(run(&st, vec![one(1, |_| {}), big]), ids(&[1]));
}

#[test]
fn probabilistic_matches_contrib_hash_and_share() {
    // Thresholds computed with exact rational arithmetic mimicking Go's big.Float.
    assert_eq!(probabilistic_threshold(0.1), 1_844_674_407_370_955_263);
    assert_eq!(probabilistic_threshold(0.5), 9_223_372_036_854_775_807);
    assert_eq!(probabilistic_threshold(1.0), u64::MAX);
    assert_eq!(probabilistic_threshold(0.25), 4_611_686_018_427_387_903);
    assert_eq!(probabilistic_threshold(0.333), 6_142_765_776_545_281_023);
    assert_eq!(probabilistic_threshold(0.0001), 1_844_674_407_370_955);
    assert_eq!(probabilistic_threshold(0.0), 0);
    // fnv1a64("default-hash-seed" ++ 01..10) = 0xdbcf64d5420f4cad (~86% of the range).
    let t: u128 = u128::from_be_bytes((1..=16u8).collect::<Vec<_>>().try_into().unwrap());
    let st =
        store("  - { name: p, type: probabilistic, probabilistic: { sampling_percentage: 86 } }");
    assert!(run(&st, vec![one(t, |_| {})]).contains(&t));
    let st =
        store("  - { name: p, type: probabilistic, probabilistic: { sampling_percentage: 85 } }");
    assert!(run(&st, vec![one(t, |_| {})]).is_empty());
    // The share over 20,000 traces, and two instances with one salt agree.
    let yaml = "  - { name: p, type: probabilistic, probabilistic: { sampling_percentage: 20, hash_salt: s1 } }";
    let traces = |n: u128| {
        (1..=n)
            .map(|i| {
                one(
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                    |_| {},
                )
            })
            .collect::<Vec<_>>()
    };
    let a = run(&store(yaml), traces(20_000));
    let b = run(&store(yaml), traces(20_000));
    assert_eq!(a, b);
    // Binomial sd ~ 57; allow 4 sd.
    assert!((a.len() as i64 - 4_000).abs() < 230, "{}", a.len());
}

#[test]
fn whole_traces_leave_together_and_late_spans_follow_the_decision() {
    let m = Metrics::default();
    let cfg = config("decision_wait: 10s\npolicies:\n  - { name: err, type: status_code, status_code: { status_codes: [ERROR] } }");
    let st = store_from(&cfg, &m);
    let t0 = Instant::now();
    // Trace 1's error arrives in a later request; all three spans leave together.
    insert(
        &st,
        rs(
            vec![],
            vec![
                span(&Sp {
                    trace: 1,
                    id: 1,
                    ..Default::default()
                }),
                span(&Sp {
                    trace: 2,
                    id: 1,
                    ..Default::default()
                }),
            ],
        ),
        &[],
        t0,
    );
    insert(
        &st,
        rs(
            vec![kv("service.name", s_("b"))],
            vec![span(&Sp {
                trace: 1,
                id: 2,
                parent: 1,
                status: 2,
                ..Default::default()
            })],
        ),
        &[],
        t0 + Duration::from_secs(1),
    );
    insert(
        &st,
        rs(
            vec![],
            vec![span(&Sp {
                trace: 1,
                id: 3,
                parent: 1,
                ..Default::default()
            })],
        ),
        &[],
        t0 + Duration::from_secs(2),
    );
    let out = assemble(st.decide_due(t0 + WAIT).kept).0;
    let spans: Vec<&Span> = out
        .resource_spans()
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s.trace_id == tid(1)));
    // Resources are kept per span group.
    assert!(out.resource_spans().iter().any(|r| r
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .first()
        .is_some_and(|a| a.key == "service.name")));
    // Late spans: trace 1 was kept (forwarded at once), trace 2 dropped (counted).
    let late = insert(
        &st,
        rs(
            vec![],
            vec![
                span(&Sp {
                    trace: 1,
                    id: 4,
                    ..Default::default()
                }),
                span(&Sp {
                    trace: 2,
                    id: 2,
                    ..Default::default()
                }),
            ],
        ),
        &[],
        t0 + WAIT,
    );
    assert_eq!(kept_traces(late), ids(&[1]));
    assert_eq!(
        m.tail_sampling_late_spans("tail_sampling", "sampled").get(),
        1
    );
    assert_eq!(
        m.tail_sampling_late_spans("tail_sampling", "not_sampled")
            .get(),
        1
    );
    assert_eq!(m.processor_dropped("tail_sampling", "sampled_out").get(), 2);
    assert_eq!(st.traces(), 0);
}

#[test]
fn num_traces_overflow_decides_oldest_early() {
    let m = Metrics::default();
    let cfg = config("decision_wait: 10s\nnum_traces: 10\nnum_shards: 1\npolicies:\n  - { name: all, type: always_sample }");
    let st = store_from(&cfg, &m);
    let t0 = Instant::now();
    let mut early = HashSet::new();
    for t in 1..=15u128 {
        early.extend(kept_traces(insert(
            &st,
            rs(
                vec![],
                vec![span(&Sp {
                    trace: t,
                    id: 1,
                    ..Default::default()
                })],
            ),
            &[],
            t0,
        )));
    }
    assert_eq!(
        early,
        ids(&[1, 2, 3, 4, 5]),
        "the oldest are decided early, not lost"
    );
    assert_eq!(st.traces(), 10);
    assert_eq!(
        m.tail_sampling_early_decisions("tail_sampling", "num_traces")
            .get(),
        5
    );
    assert_eq!(kept_traces(st.decide_due(t0 + WAIT)).len(), 10);
}

#[test]
fn byte_bounds_root_wait_and_shutdown() {
    let m = Metrics::default();
    let cfg = config("decision_wait: 10s\nmax_buffered_bytes: 2000\nnum_shards: 1\nmaximum_trace_size_bytes: 1500\ndecision_wait_after_root_received: 1s\npolicies:\n  - { name: all, type: always_sample }");
    let st = store_from(&cfg, &m);
    let t0 = Instant::now();
    let blob = |t: u128, id: u8, n: usize| {
        span(&Sp {
            trace: t,
            id,
            parent: 9,
            attrs: vec![kv("b", s_(&"x".repeat(n)))],
            ..Default::default()
        })
    };
    // Two traces of ~700 bytes fit; a third pushes the oldest out early.
    insert(&st, rs(vec![], vec![blob(1, 1, 650)]), &[], t0);
    insert(&st, rs(vec![], vec![blob(2, 1, 650)]), &[], t0);
    let early = kept_traces(insert(&st, rs(vec![], vec![blob(3, 1, 650)]), &[], t0));
    assert_eq!(early, ids(&[1]));
    assert!(st.buffered_bytes() <= 2000);
    assert_eq!(
        m.tail_sampling_early_decisions("tail_sampling", "max_buffered_bytes")
            .get(),
        1
    );
    // A trace over maximum_trace_size_bytes is dropped, as contrib does.
    insert(
        &st,
        rs(vec![], vec![blob(4, 1, 800), blob(4, 2, 800)]),
        &[],
        t0,
    );
    assert_eq!(
        m.processor_dropped("tail_sampling", "trace_too_large")
            .get(),
        2
    );
    // A root span makes its trace due 1s later instead of 10s.
    insert(
        &st,
        rs(
            vec![],
            vec![span(&Sp {
                trace: 5,
                id: 1,
                ..Default::default()
            })],
        ),
        &[],
        t0,
    );
    assert_eq!(
        kept_traces(st.decide_due(t0 + Duration::from_secs(1))),
        ids(&[5])
    );
    // Shutdown decides what is left.
    assert_eq!(kept_traces(st.decide_all(t0, false)), ids(&[2, 3]));
    assert_eq!(st.traces(), 0);
    assert_eq!(st.buffered_bytes(), 0);
}

/// The policies block of the contrib tail_sampling README (supported types), pasted unchanged.
const CONTRIB_README: &str = r#"
decision_wait: 10s
num_traces: 100
expected_new_traces_per_sec: 10
decision_cache:
  sampled_cache_size: 100_000
  non_sampled_cache_size: 100_000
policies:
  [
      {
        name: test-policy-1,
        type: always_sample
      },
      {
        name: test-policy-2,
        type: latency,
        latency: {threshold_ms: 5000, upper_threshold_ms: 10000}
      },
      {
        name: test-policy-3,
        type: numeric_attribute,
        numeric_attribute: {key: key1, min_value: 50, max_value: 100}
      },
      {
        name: test-policy-4,
        type: probabilistic,
        probabilistic: {sampling_percentage: 10}
      },
      {
        name: test-policy-5,
        type: status_code,
        status_code: {status_codes: [ERROR, UNSET]}
      },
      {
        name: test-policy-6,
        type: string_attribute,
        string_attribute: {key: key2, values: [value1, value2]}
      },
      {
        name: test-policy-7,
        type: string_attribute,
        string_attribute: {key: key2, values: [value1, val*], enabled_regex_matching: true, cache_max_size: 10}
      },
      {
        name: test-policy-8,
        type: rate_limiting,
        rate_limiting: {spans_per_second: 35}
      },
      {
        name: test-policy-9,
        type: string_attribute,
        string_attribute: {key: http.url, values: [\/health, \/metrics], enabled_regex_matching: true, invert_match: true}
      },
      {
        name: test-policy-10,
        type: span_count,
        span_count: {min_spans: 2, max_spans: 20}
      },
      {
         name: test-policy-11,
         type: trace_state,
         trace_state: { key: key3, values: [value1, value2] }
      },
      {
          name: test-policy-12,
          type: bytes_limiting,
          bytes_limiting: {bytes_per_second: 10240, burst_capacity: 20480}
      },
      {
        name: test-policy-13,
        type: boolean_attribute,
        boolean_attribute: {key: key4, value: true}
      },
      {
        name: and-policy-1,
        type: and,
        and: {
          and_sub_policy:
          [
            {
              name: test-and-policy-1,
              type: numeric_attribute,
              numeric_attribute: { key: key1, min_value: 50, max_value: 100 }
            },
            {
                name: test-and-policy-2,
                type: string_attribute,
                string_attribute: { key: key2, values: [ value1, value2 ] }
            },
          ]
        }
      },
      {
        name: drop-policy-1,
        type: drop,
        drop: {
          drop_sub_policy:
          [
            {
              name: test-drop-policy-1,
              type: string_attribute,
              string_attribute: {key: url.path, values: [\/health, \/metrics], enabled_regex_matching: true}
            }
          ]
        }
      },
  ]
"#;

#[test]
fn contrib_readme_block_parses_and_behaves_as_documented() {
    let cfg = config(CONTRIB_README);
    assert_eq!(cfg.policies.len(), 15);
    assert_eq!(cfg.decision_cache.sampled_cache_size, 100_000);
    let m = Metrics::default();
    let st = store_from(&cfg, &m);
    // always_sample keeps an ordinary trace; a /health url (invert match) is not sampled; a
    // url.path of /metrics is dropped by the drop policy whatever else matched.
    let kept = run(
        &st,
        vec![
            one(1, |_| {}),
            one(2, |s| s.attrs = vec![kv("http.url", s_("/health"))]),
            one(3, |s| s.attrs = vec![kv("url.path", s_("/metrics"))]),
        ],
    );
    assert_eq!(kept, ids(&[1]));
    assert_eq!(
        m.tail_sampling_policy_decisions("tail_sampling", "test-policy-9", "inverted_not_sampled")
            .get(),
        1
    );
    assert_eq!(
        m.tail_sampling_policy_decisions("tail_sampling", "drop-policy-1", "dropped")
            .get(),
        1
    );
}

#[test]
fn config_errors_name_the_policy_field() {
    let bad = |yaml: &str| {
        parse_config::<TailSamplingConfig>(&crate::config::yaml::parse(yaml, 0).unwrap().0)
            .unwrap_err()
    };
    let e = bad("policies:\n  - { name: a, type: latency }\n");
    assert_eq!(e[0].0, "policies[0].latency");
    let e = bad(
        "policies:\n  - { name: a, type: status_code, status_code: { status_codes: [FAIL] } }\n",
    );
    assert_eq!(e[0].0, "policies[0].status_code.status_codes[0]");
    let e = bad("policies:\n  - { name: a, type: and, and: { and_sub_policy: [ { name: b, type: string_attribute, string_attribute: { key: k, values: ['('], enabled_regex_matching: true } } ] } }\n");
    assert_eq!(
        e[0].0,
        "policies[0].and.and_sub_policy[0].string_attribute.values[0]"
    );
    let e = bad("policies:\n  - { name: a, type: composite }\n");
    assert!(e[0].1.contains("unknown variant `composite`"), "{e:?}");
}

#[test]
fn source_acks_wait_for_the_decision() {
    use crate::data::ack::Ack;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let st = store("  - { name: err, type: status_code, status_code: { status_codes: [ERROR] } }");
    let done = Arc::new(AtomicUsize::new(0));
    let ack = |d: &Arc<AtomicUsize>| {
        let d = d.clone();
        Ack::new(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
    };
    let t0 = Instant::now();
    // Message 1 holds a trace that will be kept and one that will be dropped.
    insert(
        &st,
        rs(
            vec![],
            vec![
                span(&Sp {
                    trace: 1,
                    id: 1,
                    status: 2,
                    ..Default::default()
                }),
                span(&Sp {
                    trace: 2,
                    id: 1,
                    ..Default::default()
                }),
            ],
        ),
        &[ack(&done)],
        t0,
    );
    assert_eq!(done.load(Ordering::SeqCst), 0, "buffered: not done");
    let released = st.decide_due(t0 + WAIT);
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "the kept trace still holds the ack"
    );
    let (_, acks) = assemble(released.kept);
    assert_eq!(acks.len(), 1);
    drop(acks);
    assert_eq!(
        done.load(Ordering::SeqCst),
        1,
        "done once the kept spans are handed on"
    );
}

/// The byte path (spans read where they lie in received requests, kept traces assembled from
/// their bytes) and the struct path keep the same traces, span for span, with the same books.
#[test]
fn encoded_and_decoded_batches_sample_alike() {
    use prost::Message;
    let policies =
        "  - { name: vip, type: string_attribute, string_attribute: { key: tier, values: [gold] } }
  - { name: errors, type: status_code, status_code: { status_codes: [ERROR] } }
  - { name: slow, type: latency, latency: { threshold_ms: 50 } }
";
    let (wire, decoded) = (store(policies), store(policies));
    let t0 = Instant::now();
    for i in 1..=40u128 {
        let tier = if i % 5 == 0 { "gold" } else { "tin" };
        let spans: Vec<Span> = (1..=3u8)
            .map(|id| {
                span(&Sp {
                    trace: i,
                    id,
                    parent: id - 1,
                    start_ms: 0,
                    end_ms: if i % 7 == 0 { 80 } else { 10 },
                    status: if i % 11 == 0 && id == 2 { 2 } else { 0 },
                    attrs: vec![kv("n", Value::IntValue(id as i64))],
                    ..Default::default()
                })
            })
            .collect();
        let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: rs(vec![kv("tier", s(tier))], spans),
        };
        let bytes = req.encode_to_vec();
        let n = crate::data::wire::walk(&bytes).unwrap().spans;
        let _ = wire.insert(&crate::data::SpanBatch::from_wire(bytes.into(), n), &[], t0);
        let _ = insert(&decoded, req.resource_spans, &[], t0);
    }
    assert_eq!(wire.buffered_bytes(), decoded.buffered_bytes());
    let (a, _) = assemble(wire.decide_due(t0 + WAIT).kept);
    let (b, _) = assemble(decoded.decide_due(t0 + WAIT).kept);
    assert!(a.is_encoded_only(), "kept traces leave as bytes");
    assert_eq!(a.len(), b.len());
    assert_eq!(a.resource_spans(), b.resource_spans());
    // gold (8), slow (7..35: 4 more, 35 is gold), errors (11, 22, 33): 15 traces of 3 spans.
    assert_eq!(a.len(), 15 * 3);
}
