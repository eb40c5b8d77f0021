//! The wire walk (`spangate::data::wire`) against prost's decode, its reference: on generated
//! OTLP requests (attributes of every type, nested arrays and maps, empty scopes, bad ids) and
//! on those requests mutated (bytes changed, cut, inserted, unknown fields of every wire type),
//! the walk accepts exactly what prost accepts and counts the same spans and invalid spans; and
//! a batch kept as those bytes gives what a batch of the decoded structs gives, read, filtered
//! or edited (by a test editor and by the processors that change spans).

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
use spangate::component::{InlineProcessor, Processor, ProcessorContext};
use spangate::config::ComponentId;
use spangate::data::edit::{At, Edit, Editor, Level, Plan, Text};
use spangate::data::validate::remove_invalid;
use spangate::data::view::{ResourceRef, SpanRef, ValueRef};
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
        let removed = ours.retain_spans(|_, s| s.kind() != drop_kind);
        prop_assert!(ours.is_encoded_only() || ours.is_empty(), "filtering rewrote the bytes without decoding");
        prop_assert_eq!(removed, theirs.retain_spans(|_, s| s.kind() != drop_kind));
        prop_assert_eq!(decode(&ours), decode(&theirs));
        prop_assert_eq!(ours.len(), theirs.len());
    }

    /// Every view accessor reads from the bytes (unknown fields at every level among them) what
    /// the struct gives.
    #[test]
    fn views_over_bytes_read_what_the_structs_hold(req in request(), a in request()) {
        let bytes = with_unknown_fields(&req);
        let mut wire = SpanBatch::from_wire(bytes.into(), walk(&with_unknown_fields(&req)).unwrap().spans);
        let mut decoded = SpanBatch::new(req.resource_spans.clone());
        // And after batching, still as bytes.
        wire.absorb(SpanBatch::from_wire(a.encode_to_vec().into(), walk(&a.encode_to_vec()).unwrap().spans));
        decoded.absorb(SpanBatch::new(a.resource_spans.clone()));
        prop_assert!(wire.is_encoded_only());
        prop_assert_eq!(project(&wire), project(&decoded));
        prop_assert!(wire.is_encoded_only(), "reading decoded nothing");
    }

    /// Removing spans by resource and span fields from bytes with unknown fields gives what the
    /// struct path gives; the kept spans' bytes are the received ones.
    #[test]
    fn filtering_bytes_equals_filtering_structs(req in request(), drop_kind in 0..3i32, key in "[a-z.]{0,2}") {
        let bytes = with_unknown_fields(&req);
        let mut wire = SpanBatch::from_wire(bytes.clone().into(), walk(&bytes).unwrap().spans);
        let mut decoded = SpanBatch::new(req.resource_spans.clone());
        let keep = |r: ResourceRef<'_>, s: SpanRef<'_>| {
            s.kind() != drop_kind || r.attribute(&key).is_some()
        };
        let removed = wire.retain_spans(keep);
        prop_assert_eq!(removed, decoded.retain_spans(keep));
        prop_assert_eq!(wire.len(), decoded.len());
        prop_assert_eq!(wire.len() as u64 + removed, walk(&bytes).unwrap().spans as u64);
        let decode = |b: &SpanBatch| ExportTraceServiceRequest::decode(&b.encoded()[..]).unwrap();
        prop_assert_eq!(decode(&wire), decode(&decoded));
        prop_assert!(walk(&wire.encoded()).is_ok());
    }

    /// Every kind of edit (drop, set, append, a list edited whole, texts), applied to bytes with
    /// unknown fields, gives what it gives applied to the structs; an editor that changes
    /// nothing leaves the received bytes as they are.
    #[test]
    fn editing_bytes_equals_editing_structs(req in request(), salt in 0..12u8) {
        let bytes = with_unknown_fields(&req);
        let spans = walk(&bytes).unwrap().spans;
        let mut wire = SpanBatch::from_wire(bytes.clone().into(), spans);
        let mut decoded = SpanBatch::new(req.resource_spans.clone());
        wire.edit(&mut Scramble { salt });
        decoded.edit(&mut Scramble { salt });
        let decode = |b: &SpanBatch| ExportTraceServiceRequest::decode(&b.encoded()[..]).unwrap();
        prop_assert!(wire.is_encoded_only());
        prop_assert_eq!(wire.len(), decoded.len());
        prop_assert_eq!(decode(&wire), decode(&decoded));
        prop_assert!(walk(&wire.encoded()).is_ok());
        let mut untouched = SpanBatch::from_wire(bytes.clone().into(), spans);
        untouched.edit(&mut Scramble { salt: 255 });
        prop_assert_eq!(&untouched.encoded()[..], &bytes[..]);
    }

    /// The processors that change spans (redaction, allowlist, session stamping) give the same
    /// spans from received bytes as from structs, and the bytes stay bytes.
    #[test]
    fn processors_edit_bytes_as_they_edit_structs(req in request(), salt in 0..3u8) {
        let bytes = with_unknown_fields(&req);
        let spans = walk(&bytes).unwrap().spans;
        let decode = |b: &SpanBatch| ExportTraceServiceRequest::decode(&b.encoded()[..]).unwrap();
        for (kind, config) in editing_processors(salt) {
            let mut wire = SpanBatch::from_wire(bytes.clone().into(), spans);
            let mut decoded = SpanBatch::new(req.resource_spans.clone());
            inline(kind, &config).process(&mut wire);
            inline(kind, &config).process(&mut decoded);
            prop_assert!(wire.is_encoded_only(), "{} decoded", kind);
            prop_assert_eq!(decode(&wire), decode(&decoded), "{}", kind);
        }
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

/// Unknown fields of each wire type, appended to a message (prost skips them).
const UNKNOWN: &[u8] = &[
    0xb8, 0x06, 0x05, // field 103 varint
    0xc1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, // field 104 fixed64
    0xca, 0x06, 0x02, 0xff, 0xfe, // field 105 bytes
    0xd5, 0x06, 1, 2, 3, 4, // field 106 fixed32
];

fn put(out: &mut Vec<u8>, key: u8, body: &[u8]) {
    out.push(key);
    prost::encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// `req` encoded with unknown fields after every resource, scope and span (and the request).
fn with_unknown_fields(req: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let mut r = Vec::new();
        if let Some(res) = &rs.resource {
            prost::encoding::message::encode(1, res, &mut r);
        }
        for ss in &rs.scope_spans {
            let mut s = Vec::new();
            if let Some(scope) = &ss.scope {
                prost::encoding::message::encode(1, scope, &mut s);
            }
            for span in &ss.spans {
                let mut body = span.encode_to_vec();
                body.extend_from_slice(UNKNOWN);
                put(&mut s, 0x12, &body);
            }
            if !ss.schema_url.is_empty() {
                prost::encoding::string::encode(3, &ss.schema_url, &mut s);
            }
            s.extend_from_slice(UNKNOWN);
            put(&mut r, 0x12, &s);
        }
        if !rs.schema_url.is_empty() {
            prost::encoding::string::encode(3, &rs.schema_url, &mut r);
        }
        r.extend_from_slice(UNKNOWN);
        put(&mut out, 0x0a, &r);
    }
    out.extend_from_slice(UNKNOWN);
    out
}

type Pairs = Vec<(String, Option<Value>)>;

fn pairs(attrs: spangate::data::view::Attrs<'_>) -> Pairs {
    attrs.map(|(k, v)| (k.to_string(), v.to_value())).collect()
}

/// Everything the views read from a batch, owned, to compare.
#[derive(Debug, PartialEq)]
enum Seen {
    Resource(Pairs, String),
    Scope(String, String, Pairs, String),
    Span(Box<SpanSeen>),
}

#[derive(Debug, PartialEq)]
struct SpanSeen {
    ids: [Vec<u8>; 3],
    trace_state: String,
    name: String,
    kind: i32,
    times: (u64, u64),
    flags: u32,
    status: (i32, String),
    attributes: Pairs,
    first_attribute: Option<Option<Value>>,
    events: Vec<(u64, String, Pairs)>,
    links: Vec<(Vec<u8>, Vec<u8>, Pairs)>,
    encoded: Span,
}

fn project(batch: &SpanBatch) -> Vec<Seen> {
    let mut out = Vec::new();
    for r in batch.resources() {
        out.push(Seen::Resource(pairs(r.attributes()), r.schema_url().into()));
        for sc in r.scopes() {
            out.push(Seen::Scope(
                sc.name().into(),
                sc.version().into(),
                pairs(sc.attributes()),
                sc.schema_url().into(),
            ));
            for s in sc.spans() {
                let first_key = s.attributes().next().map(|(k, _)| k.to_string());
                out.push(Seen::Span(Box::new(SpanSeen {
                    ids: [
                        s.trace_id().to_vec(),
                        s.span_id().to_vec(),
                        s.parent_span_id().to_vec(),
                    ],
                    trace_state: s.trace_state().into(),
                    name: s.name().into(),
                    kind: s.kind(),
                    times: (s.start_time_unix_nano(), s.end_time_unix_nano()),
                    flags: s.flags(),
                    status: (s.status_code(), s.status_message().into()),
                    attributes: pairs(s.attributes()),
                    first_attribute: first_key.map(|k| s.attribute(&k).and_then(|v| v.to_value())),
                    events: s
                        .events()
                        .map(|e| (e.time_unix_nano(), e.name().into(), pairs(e.attributes())))
                        .collect(),
                    links: s
                        .links()
                        .map(|l| {
                            (
                                l.trace_id().to_vec(),
                                l.span_id().to_vec(),
                                pairs(l.attributes()),
                            )
                        })
                        .collect(),
                    encoded: s.to_span(),
                })));
            }
        }
    }
    out
}

/// A test editor that does everything an editor can, by a hash of each key and `salt`
/// (255: nothing at all).
struct Scramble {
    salt: u8,
}

impl Scramble {
    fn roll(&self, key: &str) -> u8 {
        key.bytes()
            .fold(self.salt, |h, b| h.wrapping_mul(31).wrapping_add(b))
            % 6
    }
}

impl Editor for Scramble {
    fn wants(&self, level: Level) -> bool {
        self.salt != 255 && !(level as u8 + self.salt).is_multiple_of(5)
    }

    fn begin(&mut self, at: At<'_>) -> Plan {
        match (at.level() as u8 + self.salt) % 4 {
            0 => Plan::Keep,
            1 => Plan::Whole,
            _ => Plan::Stream,
        }
    }

    fn attr(&mut self, _level: Level, key: &str, value: ValueRef<'_>) -> Edit {
        match self.roll(key) {
            0 => Edit::Drop,
            1 => Edit::Set(Value::IntValue(key.len() as i64)),
            2 => Edit::Set(Value::StringValue(format!("{:?}", value.to_value()))),
            _ => Edit::Keep,
        }
    }

    fn end(&mut self, level: Level, append: &mut Vec<KeyValue>) {
        if self.salt.is_multiple_of(2) {
            append.push(KeyValue {
                key: format!("end.{level:?}"),
                value: Some(AnyValue {
                    value: Some(Value::BoolValue(true)),
                }),
                ..Default::default()
            });
        }
    }

    fn whole(&mut self, _level: Level, attrs: &mut Vec<KeyValue>) {
        attrs.reverse();
        attrs.truncate(2);
    }

    fn texts(&self) -> bool {
        self.salt != 255 && !self.salt.is_multiple_of(3)
    }

    fn text(&mut self, which: Text, text: &str) -> Option<String> {
        (self.roll(text) < 3).then(|| format!("{which:?}:{}", text.to_uppercase()))
    }
}

/// Configs of the processors that change spans, varied by `salt`.
fn editing_processors(salt: u8) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::json;
    let key = ["a", "b", "c"][salt as usize];
    vec![
        (
            "allowlist",
            match salt {
                0 => json!({ "resource": ["a*", "b.c"], "span": ["*.*"], "event": [] }),
                1 => json!({ "scope": ["*b*"], "link": ["a", "c*"] }),
                _ => json!({ "span": ["*"], "event": ["e.*"], "link": [] }),
            },
        ),
        (
            "redaction",
            match salt {
                0 => {
                    json!({ "allow_all_keys": true, "blocked_values": ["[a-c]{2}"], "summary": "debug" })
                }
                1 => {
                    json!({ "allowed_keys": ["a", "b.c", "ab"], "blocked_key_patterns": ["^b"], "redact_all_types": true })
                }
                _ => {
                    json!({ "allow_all_keys": true, "ignored_keys": ["a"], "allowed_values": ["^x"], "builtin": ["email", "ipv4"], "summary": "info" })
                }
            },
        ),
        ("session", json!({ "key_attributes": [key] })),
    ]
}

fn inline(kind: &str, config: &serde_json::Value) -> Box<dyn InlineProcessor> {
    let parse = match kind {
        "allowlist" => spangate::processors::allowlist::parse,
        "redaction" => spangate::processors::redaction::parse,
        "session" => spangate::processors::session::parse,
        _ => unreachable!("{kind}"),
    };
    let ctx = ProcessorContext {
        id: ComponentId::parse(kind).unwrap(),
        pipeline: ComponentId::parse("traces").unwrap(),
        telemetry: Default::default(),
        state: Default::default(),
        session: Default::default(),
    };
    match parse(config).unwrap().build(&ctx).unwrap() {
        Processor::Inline(p) => p,
        _ => panic!("{kind} is inline"),
    }
}
