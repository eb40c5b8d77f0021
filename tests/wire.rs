//! The wire walk (`spangate::data::wire`) against prost's decode, its reference: on generated
//! OTLP requests (attributes of every type, nested arrays and maps, empty scopes, bad ids) and
//! on those requests mutated (bytes changed, cut, inserted, unknown fields of every wire type),
//! the walk accepts exactly what prost accepts and counts the same spans and invalid spans; and
//! a batch kept as those bytes gives what a batch of the decoded structs gives.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link},
    ResourceSpans, ScopeSpans, Span, Status,
};
use proptest::prelude::*;
use prost::Message;
use spangate::data::validate::remove_invalid;
use spangate::data::wire::{walk, Walk};
use spangate::data::SpanBatch;

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        ".{0,12}".prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
    ];
    let leaf = prop::option::of(leaf).prop_map(|value| AnyValue { value });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values }))
            }),
            prop::collection::vec(("[a-z.]{0,6}", inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue {
                            key,
                            value: Some(value),
                            ..Default::default()
                        })
                        .collect(),
                }))
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(("[a-z.]{0,8}", prop::option::of(any_value())), 0..4).prop_map(|kvs| {
        kvs.into_iter()
            .map(|(key, value)| KeyValue {
                key,
                value,
                ..Default::default()
            })
            .collect()
    })
}

/// Ids mostly right, sometimes of the wrong length or all zeros.
fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), len..=len),
        1 => Just(vec![0; len]),
        1 => prop::collection::vec(any::<u8>(), 0..20),
    ]
}

fn span() -> impl Strategy<Value = Span> {
    (
        (id(16), id(8), prop_oneof![Just(Vec::new()), id(8)]),
        (
            ".{0,10}",
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        ),
        attributes(),
        prop::collection::vec((any::<u64>(), ".{0,6}", attributes()), 0..3),
        prop::collection::vec((id(16), id(8), attributes()), 0..2),
        prop::option::of((".{0,8}", 0..3i32)),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id),
                (name, kind, start, end, flags),
                attributes,
                events,
                links,
                status,
            )| Span {
                trace_id,
                span_id,
                parent_span_id,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                flags,
                attributes,
                events: events
                    .into_iter()
                    .map(|(time_unix_nano, name, attributes)| Event {
                        time_unix_nano,
                        name,
                        attributes,
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                links: links
                    .into_iter()
                    .map(|(trace_id, span_id, attributes)| Link {
                        trace_id,
                        span_id,
                        attributes,
                        ..Default::default()
                    })
                    .collect(),
                status: status.map(|(message, code)| Status { message, code }),
                ..Default::default()
            },
        )
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (
        prop::option::of((".{0,6}", attributes())),
        prop::collection::vec(span(), 0..4),
    )
        .prop_map(|(scope, spans)| ScopeSpans {
            scope: scope.map(|(name, attributes)| InstrumentationScope {
                name,
                attributes,
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        });
    let resource = (
        prop::option::of(attributes()),
        prop::collection::vec(scope, 0..3),
        "[a-z:/]{0,6}",
    )
        .prop_map(|(attributes, scope_spans, schema_url)| ResourceSpans {
            resource: attributes.map(|attributes| Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans,
            schema_url,
        });
    prop::collection::vec(resource, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// What prost's decode followed by the receivers' id checks finds in `bytes`, as a [`Walk`].
fn reference(bytes: &[u8]) -> Option<Walk> {
    let mut req = ExportTraceServiceRequest::decode(bytes).ok()?;
    let resource_spans = req.resource_spans.len();
    let spans = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let rejected = remove_invalid(&mut req.resource_spans);
    Some(Walk {
        resource_spans,
        spans,
        invalid_spans: rejected.spans as usize,
        first_problem: (rejected.spans > 0).then_some(rejected.message),
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
        match m {
            Mutation::Set(i, b) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] = *b;
            }
            Mutation::Cut(i) => bytes.truncate(at(*i, bytes.len() + 1)),
            Mutation::Insert(i, b) => {
                let i = at(*i, bytes.len() + 1);
                bytes.splice(i..i, b.iter().copied());
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_walk_counts_what_prost_decodes(req in request()) {
        let bytes = req.encode_to_vec();
        prop_assert_eq!(walk(&bytes).ok(), reference(&bytes));
    }

    /// The bytes path of a batch (received bytes, concatenated by batching, filtered) gives what
    /// the struct path gives.
    #[test]
    fn a_wire_batch_equals_its_decoded_twin(a in request(), b in request(), drop_kind in 0..3i32) {
        let wire_batch = |r: &ExportTraceServiceRequest| {
            let bytes = bytes::Bytes::from(r.encode_to_vec());
            let spans = walk(&bytes).unwrap().spans;
            SpanBatch::from_wire(bytes, spans)
        };
        let mut ours = wire_batch(&a);
        ours.absorb(wire_batch(&b));
        let mut theirs = SpanBatch::new(a.resource_spans.clone());
        theirs.absorb(SpanBatch::new(b.resource_spans.clone()));
        prop_assert_eq!(ours.len(), theirs.len());
        prop_assert_eq!(ours.encoded_len(), ours.encoded().len());
        let decode = |b: &SpanBatch| ExportTraceServiceRequest::decode(&b.encoded()[..]).unwrap();
        prop_assert_eq!(decode(&ours), decode(&theirs));
        let removed = ours.retain_spans(|s| s.kind != drop_kind);
        prop_assert_eq!(removed, theirs.retain_spans(|s| s.kind != drop_kind));
        prop_assert_eq!(decode(&ours), decode(&theirs));
        prop_assert_eq!(ours.len(), theirs.len());
    }

    #[test]
    fn the_walk_accepts_exactly_what_prost_accepts(
        req in request(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let bytes = mutate(req.encode_to_vec(), &mutations);
        prop_assert_eq!(walk(&bytes).ok(), reference(&bytes), "{:?}", mutations);
    }
}

/// Unknown fields of every wire type, a group holding a group among them, inside a span: both
/// skip them.
#[test]
fn unknown_fields_are_skipped_as_prost_skips_them() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "s".into(),
        ..Default::default()
    };
    let mut span_bytes = span.encode_to_vec();
    span_bytes.extend_from_slice(&[
        0xb8, 0x06, 0x05, // field 103 varint
        0xc1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // field 104 fixed64
        0xca, 0x06, 0x02, 0xff, 0xfe, // field 105 bytes (not UTF-8: unknown, so fine)
        0xd5, 0x06, 1, 2, 3, 4, // field 106 fixed32
        0xdb, 0x06, 0xe3, 0x06, 0xe0, 0x06, 0x01, 0xe4, 0x06, 0xdc,
        0x06, // groups 107 { 108 { 108: 1 } }
    ]);
    let scope = [&[0x12, span_bytes.len() as u8][..], &span_bytes].concat();
    let scope = [&[0x12, scope.len() as u8][..], &scope].concat();
    let req = [&[0x0a, scope.len() as u8][..], &scope].concat();
    let walked = walk(&req).expect("valid with unknown fields");
    assert_eq!(Some(walked.clone()), reference(&req));
    assert_eq!(walked.spans, 1);
}

/// prost refuses messages nested deeper than 100; so does the walk, at the same depth.
#[test]
fn nesting_is_limited_where_prost_limits_it() {
    let mut outcomes = Vec::new();
    // Each level is two messages (AnyValue, ArrayValue) under four (request to KeyValue).
    for depth in 44..=52 {
        let mut value = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        for _ in 0..depth {
            value = AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "deep".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        let (ours, prost) = (walk(&bytes).ok(), reference(&bytes));
        assert_eq!(ours, prost, "depth {depth}");
        outcomes.push(ours.is_some());
    }
    assert!(
        outcomes.contains(&true) && outcomes.contains(&false),
        "{outcomes:?}"
    );
}
