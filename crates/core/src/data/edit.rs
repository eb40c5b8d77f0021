//! Attribute and text edits over spans where they lie. A processor that changes spans (drops,
//! replaces or adds attributes; rewrites a span name, event name or status message) says what to
//! do as an [`Editor`], and the same calls, in the same order, run over received bytes
//! ([`edit_encoded`]: one pass that copies everything it is not told to change, unknown fields
//! included) or over decoded structs ([`edit_decoded`]). A request nobody changed keeps its bytes.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use super::view::{
    fields, kv_parts, Attrs, EventRef, LinkRef, Raw, ResourceRef, ScopeRef, SpanRef, ValueRef,
};

/// Where an attribute list sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Resource,
    Scope,
    Span,
    Event,
    Link,
}

/// The message whose attributes an editor is about to see.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// The `ResourceSpans` (its resource's attributes are the list).
    Resource(ResourceRef<'a>),
    /// The `ScopeSpans` (its instrumentation scope's attributes are the list).
    Scope(ScopeRef<'a>),
    Span(SpanRef<'a>),
    Event(EventRef<'a>),
    Link(LinkRef<'a>),
}

impl<'a> At<'a> {
    pub fn level(self) -> Level {
        match self {
            At::Resource(_) => Level::Resource,
            At::Scope(_) => Level::Scope,
            At::Span(_) => Level::Span,
            At::Event(_) => Level::Event,
            At::Link(_) => Level::Link,
        }
    }

    pub fn attributes(self) -> Attrs<'a> {
        match self {
            At::Resource(r) => r.attributes(),
            At::Scope(s) => s.attributes(),
            At::Span(s) => s.attributes(),
            At::Event(e) => e.attributes(),
            At::Link(l) => l.attributes(),
        }
    }
}

/// How an editor treats one attribute list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Leave it as it is (no further calls for this list).
    Keep,
    /// One [`Editor::attr`] call per attribute, in order, then [`Editor::end`].
    Stream,
    /// The whole list decoded, for [`Editor::whole`] to change as it likes (rare cases).
    Whole,
}

/// What becomes of one attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    Keep,
    Drop,
    /// The same key (and any other field of the pair) with this value.
    Set(Value),
}

/// A string field an editor may rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    SpanName,
    EventName,
    StatusMessage,
}

/// A processor's changes, told per attribute list: `begin`, then `attr` per attribute and `end`
/// (for [`Plan::Stream`]) or `whole` (for [`Plan::Whole`]). Lists come resource by resource,
/// scope by scope, span by span; a span's own list may stay open while those of its events and
/// links are edited (bytes come in their encoded order), so an editor keeps its state per
/// [`Level`]. Texts come only when [`Editor::texts`] says so, lists only at the levels
/// [`Editor::wants`] names. One liberty: a resource or scope message sent twice in one
/// `ResourceSpans`/`ScopeSpans` (which no encoder writes) is two lists in bytes, one in structs.
pub trait Editor {
    /// Whether lists at `level` may change at all (the rest are copied without a look).
    fn wants(&self, level: Level) -> bool;

    fn begin(&mut self, at: At<'_>) -> Plan;

    fn attr(&mut self, _level: Level, _key: &str, _value: ValueRef<'_>) -> Edit {
        Edit::Keep
    }

    /// After the last attribute of a streamed list: attributes to add at its end.
    fn end(&mut self, _level: Level, _append: &mut Vec<KeyValue>) {}

    fn whole(&mut self, _level: Level, _attrs: &mut Vec<KeyValue>) {}

    /// Whether span names, event names and status messages may change.
    fn texts(&self) -> bool {
        false
    }

    /// The new text, or `None` to keep it. Never called for an empty text (an empty string
    /// and a missing one are the same in protobuf).
    fn text(&mut self, _which: Text, _text: &str) -> Option<String> {
        None
    }
}

/// Applies `ed` to decoded spans.
pub fn edit_decoded(all: &mut [ResourceSpans], ed: &mut impl Editor) {
    for rs in all {
        if ed.wants(Level::Resource) && rs.resource.is_some() {
            let plan = ed.begin(At::Resource(ResourceRef::Decoded(rs)));
            if let Some(r) = rs.resource.as_mut() {
                apply(ed, Level::Resource, plan, &mut r.attributes);
            }
        }
        for ss in &mut rs.scope_spans {
            if ed.wants(Level::Scope) && ss.scope.is_some() {
                let plan = ed.begin(At::Scope(ScopeRef::Decoded(ss)));
                if let Some(s) = ss.scope.as_mut() {
                    apply(ed, Level::Scope, plan, &mut s.attributes);
                }
            }
            for span in &mut ss.spans {
                let texts = ed.texts();
                if texts {
                    retext(ed, Text::SpanName, &mut span.name);
                }
                if ed.wants(Level::Span) {
                    let plan = ed.begin(At::Span(SpanRef::Decoded(span)));
                    apply(ed, Level::Span, plan, &mut span.attributes);
                }
                for e in &mut span.events {
                    if texts {
                        retext(ed, Text::EventName, &mut e.name);
                    }
                    if ed.wants(Level::Event) {
                        let plan = ed.begin(At::Event(EventRef::Decoded(e)));
                        apply(ed, Level::Event, plan, &mut e.attributes);
                    }
                }
                if ed.wants(Level::Link) {
                    for l in &mut span.links {
                        let plan = ed.begin(At::Link(LinkRef::Decoded(l)));
                        apply(ed, Level::Link, plan, &mut l.attributes);
                    }
                }
                if texts {
                    if let Some(st) = span.status.as_mut() {
                        retext(ed, Text::StatusMessage, &mut st.message);
                    }
                }
            }
        }
    }
}

fn retext(ed: &mut impl Editor, which: Text, s: &mut String) {
    if s.is_empty() {
        return;
    }
    if let Some(new) = ed.text(which, s) {
        *s = new;
    }
}

fn apply(ed: &mut impl Editor, level: Level, plan: Plan, attrs: &mut Vec<KeyValue>) {
    match plan {
        Plan::Keep => {}
        Plan::Whole => ed.whole(level, attrs),
        Plan::Stream => {
            attrs.retain_mut(
                |kv| match ed.attr(level, &kv.key, ValueRef::of(kv.value.as_ref())) {
                    Edit::Keep => true,
                    Edit::Drop => false,
                    Edit::Set(v) => {
                        kv.value = Some(AnyValue { value: Some(v) });
                        true
                    }
                },
            );
            ed.end(level, attrs);
        }
    }
}

/// Applies `ed` to the encoded request `chunk`: `None` when nothing changed (the chunk stands),
/// else the new request.
pub fn edit_encoded(chunk: &[u8], ed: &mut impl Editor) -> Option<Vec<u8>> {
    let mut w = Writer {
        out: Vec::with_capacity(chunk.len() + chunk.len() / 16),
        changed: false,
        appended: Vec::new(),
    };
    for f in fields(chunk) {
        match (f.number, f.value) {
            (1, Raw::Len(rs)) => {
                let mark = w.open(0x0a, rs.len());
                w.resource_spans(ed, rs);
                w.close(mark);
            }
            _ => w.out.extend_from_slice(f.bytes),
        }
    }
    w.changed.then_some(w.out)
}

struct Writer {
    out: Vec<u8>,
    changed: bool,
    /// Scratch for [`Editor::end`], reused.
    appended: Vec<KeyValue>,
}

/// Where a length-delimited field's length was reserved: its offset and size.
struct Mark(usize, usize);

impl Writer {
    /// Starts a field `key` whose body will likely take `guess` bytes: the length is reserved
    /// at that size and fixed by [`Writer::close`] (moving the body only if its size changed
    /// the length's own size, which is rare).
    fn open(&mut self, key: u8, guess: usize) -> Mark {
        self.out.push(key);
        let at = self.out.len();
        let n = encoded_len_varint(guess as u64);
        self.out.resize(at + n, 0);
        Mark(at, n)
    }

    fn close(&mut self, Mark(at, n): Mark) {
        let end = self.out.len();
        let len = end - at - n;
        let need = encoded_len_varint(len as u64);
        if need > n {
            self.out.resize(end + need - n, 0);
            self.out.copy_within(at + n..end, at + need);
        } else if need < n {
            self.out.copy_within(at + n..end, at + need);
            self.out.truncate(end - (n - need));
        }
        encode_varint(len as u64, &mut &mut self.out[at..at + need]);
    }

    fn resource_spans(&mut self, ed: &mut impl Editor, rs: &[u8]) {
        let wants = ed.wants(Level::Resource);
        for f in fields(rs) {
            match (f.number, f.value) {
                (1, Raw::Len(r)) if wants => {
                    let plan = ed.begin(At::Resource(ResourceRef::Wire(rs)));
                    self.list_in(ed, 0x0a, r, 1, Level::Resource, plan);
                }
                (2, Raw::Len(ss)) => {
                    let mark = self.open(0x12, ss.len());
                    self.scope_spans(ed, ss);
                    self.close(mark);
                }
                _ => self.out.extend_from_slice(f.bytes),
            }
        }
    }

    fn scope_spans(&mut self, ed: &mut impl Editor, ss: &[u8]) {
        let wants = ed.wants(Level::Scope);
        let deep =
            ed.texts() || ed.wants(Level::Span) || ed.wants(Level::Event) || ed.wants(Level::Link);
        for f in fields(ss) {
            match (f.number, f.value) {
                (1, Raw::Len(s)) if wants => {
                    let plan = ed.begin(At::Scope(ScopeRef::Wire(ss)));
                    // An instrumentation scope's attributes are its field 3.
                    self.list_in(ed, 0x0a, s, 3, Level::Scope, plan);
                }
                (2, Raw::Len(span)) if deep => {
                    let mark = self.open(0x12, span.len());
                    self.span(ed, span);
                    self.close(mark);
                }
                _ => self.out.extend_from_slice(f.bytes),
            }
        }
    }

    /// A message (field `key`) holding an attribute list (field `attr_field`): the list edited
    /// as `plan` says, every other field copied.
    fn list_in(
        &mut self,
        ed: &mut impl Editor,
        key: u8,
        body: &[u8],
        attr_field: u32,
        level: Level,
        plan: Plan,
    ) {
        if plan == Plan::Keep {
            self.out.push(key);
            encode_varint(body.len() as u64, &mut self.out);
            self.out.extend_from_slice(body);
            return;
        }
        let mark = self.open(key, body.len());
        let mut whole = (plan == Plan::Whole).then(|| self.whole(ed, level, body, attr_field));
        for f in fields(body) {
            match (f.number, f.value) {
                (n, Raw::Len(kv)) if n == attr_field => {
                    if let Some(list) = whole.take() {
                        self.put_attrs(attr_field, &list);
                    } else if plan == Plan::Stream {
                        self.attr(ed, level, attr_field, kv, f.bytes);
                    }
                }
                _ => self.out.extend_from_slice(f.bytes),
            }
        }
        match whole {
            Some(list) => self.put_attrs(attr_field, &list),
            None if plan == Plan::Stream => self.end(ed, level, attr_field),
            None => {}
        }
        self.close(mark);
    }

    fn whole(
        &mut self,
        ed: &mut impl Editor,
        level: Level,
        body: &[u8],
        attr_field: u32,
    ) -> Vec<KeyValue> {
        let mut list: Vec<KeyValue> = fields(body)
            .filter_map(|f| match f.value {
                Raw::Len(kv) if f.number == attr_field => {
                    Some(KeyValue::decode(kv).unwrap_or_default())
                }
                _ => None,
            })
            .collect();
        ed.whole(level, &mut list);
        self.changed = true;
        list
    }

    fn put_attrs(&mut self, attr_field: u32, list: &[KeyValue]) {
        for kv in list {
            prost::encoding::message::encode(attr_field, kv, &mut self.out);
        }
    }

    /// One attribute of a streamed list (`kv` the pair's body, `bytes` the whole field).
    fn attr(
        &mut self,
        ed: &mut impl Editor,
        level: Level,
        attr_field: u32,
        kv: &[u8],
        bytes: &[u8],
    ) {
        let (key, value) = kv_parts(kv);
        let key = std::str::from_utf8(key).unwrap_or("");
        match ed.attr(level, key, ValueRef::wire(value)) {
            Edit::Keep => self.out.extend_from_slice(bytes),
            Edit::Drop => self.changed = true,
            Edit::Set(v) => {
                self.changed = true;
                let value = AnyValue { value: Some(v) };
                let mark = self.open(tag(attr_field), kv.len());
                for f in fields(kv) {
                    if f.number != 2 {
                        self.out.extend_from_slice(f.bytes);
                    }
                }
                prost::encoding::message::encode(2, &value, &mut self.out);
                self.close(mark);
            }
        }
    }

    fn end(&mut self, ed: &mut impl Editor, level: Level, attr_field: u32) {
        let mut appended = std::mem::take(&mut self.appended);
        ed.end(level, &mut appended);
        if !appended.is_empty() {
            self.changed = true;
            self.put_attrs(attr_field, &appended);
            appended.clear();
        }
        self.appended = appended;
    }

    /// A string field rewritten if the editor says so.
    fn text(&mut self, ed: &mut impl Editor, which: Text, number: u32, s: &[u8], bytes: &[u8]) {
        if s.is_empty() {
            self.out.extend_from_slice(bytes);
            return;
        }
        match ed.text(which, std::str::from_utf8(s).unwrap_or("")) {
            Some(new) => {
                self.changed = true;
                prost::encoding::string::encode(number, &new, &mut self.out);
            }
            None => self.out.extend_from_slice(bytes),
        }
    }

    fn span(&mut self, ed: &mut impl Editor, span: &[u8]) {
        let texts = ed.texts();
        let wants = ed.wants(Level::Span);
        let plan = if wants {
            ed.begin(At::Span(SpanRef::Wire(span)))
        } else {
            Plan::Keep
        };
        let mut whole = (plan == Plan::Whole).then(|| self.whole(ed, Level::Span, span, 9));
        let (events, links) = (ed.wants(Level::Event), ed.wants(Level::Link));
        for f in fields(span) {
            match (f.number, f.value) {
                (5, Raw::Len(name)) if texts => self.text(ed, Text::SpanName, 5, name, f.bytes),
                (9, Raw::Len(kv)) if plan != Plan::Keep => {
                    if let Some(list) = whole.take() {
                        self.put_attrs(9, &list);
                    } else if plan == Plan::Stream {
                        self.attr(ed, Level::Span, 9, kv, f.bytes);
                    }
                }
                (11, Raw::Len(e)) if texts || events => {
                    let mark = self.open(0x5a, e.len());
                    self.event(ed, e, texts, events);
                    self.close(mark);
                }
                (13, Raw::Len(l)) if links => {
                    let plan = ed.begin(At::Link(LinkRef::Wire(l)));
                    self.list_in(ed, 0x6a, l, 4, Level::Link, plan);
                }
                (15, Raw::Len(st)) if texts => {
                    let mark = self.open(0x7a, st.len());
                    for g in fields(st) {
                        match (g.number, g.value) {
                            (2, Raw::Len(m)) => self.text(ed, Text::StatusMessage, 2, m, g.bytes),
                            _ => self.out.extend_from_slice(g.bytes),
                        }
                    }
                    self.close(mark);
                }
                _ => self.out.extend_from_slice(f.bytes),
            }
        }
        match whole {
            Some(list) => self.put_attrs(9, &list),
            None if plan == Plan::Stream => self.end(ed, Level::Span, 9),
            None => {}
        }
    }

    fn event(&mut self, ed: &mut impl Editor, e: &[u8], texts: bool, wants: bool) {
        let plan = if wants {
            ed.begin(At::Event(EventRef::Wire(e)))
        } else {
            Plan::Keep
        };
        let mut whole = (plan == Plan::Whole).then(|| self.whole(ed, Level::Event, e, 3));
        for f in fields(e) {
            match (f.number, f.value) {
                (2, Raw::Len(name)) if texts => self.text(ed, Text::EventName, 2, name, f.bytes),
                (3, Raw::Len(kv)) if plan != Plan::Keep => {
                    if let Some(list) = whole.take() {
                        self.put_attrs(3, &list);
                    } else if plan == Plan::Stream {
                        self.attr(ed, Level::Event, 3, kv, f.bytes);
                    }
                }
                _ => self.out.extend_from_slice(f.bytes),
            }
        }
        match whole {
            Some(list) => self.put_attrs(3, &list),
            None if plan == Plan::Stream => self.end(ed, Level::Event, 3),
            None => {}
        }
    }
}

/// The key byte of length-delimited field `n` (every attribute field number is below 16).
fn tag(n: u32) -> u8 {
    debug_assert!(n < 16);
    (n << 3 | 2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn kv(key: &str, len: usize) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("x".repeat(len))),
            }),
            ..Default::default()
        }
    }

    /// Drops `drop` and appends `add` on spans.
    struct Resize {
        drop: &'static str,
        add: Option<KeyValue>,
    }

    impl Editor for Resize {
        fn wants(&self, level: Level) -> bool {
            level == Level::Span
        }
        fn begin(&mut self, _at: At<'_>) -> Plan {
            Plan::Stream
        }
        fn attr(&mut self, _level: Level, key: &str, _value: ValueRef<'_>) -> Edit {
            if key == self.drop {
                Edit::Drop
            } else {
                Edit::Keep
            }
        }
        fn end(&mut self, _level: Level, append: &mut Vec<KeyValue>) {
            append.extend(self.add.clone());
        }
    }

    fn request(attrs: Vec<KeyValue>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "s".into(),
                        attributes: attrs,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// Lengths whose varint grows (127 → 128+ bytes) or shrinks move the body and stay right,
    /// at every level of nesting.
    #[test]
    fn lengths_that_change_size_are_rewritten() {
        for (before, drop, add) in [
            (vec![kv("a", 100)], "", Some(kv("b", 200))),
            (vec![kv("a", 200), kv("b", 3)], "a", None),
            (vec![kv("a", 20_000)], "a", Some(kv("c", 1))),
            (vec![kv("a", 1)], "", Some(kv("c", 20_000))),
        ] {
            let req = request(before);
            let bytes = req.encode_to_vec();
            let mut ed = Resize { drop, add };
            let out = edit_encoded(&bytes, &mut ed).expect("changed");
            let mut want = req.resource_spans.clone();
            edit_decoded(&mut want, &mut ed);
            let got = ExportTraceServiceRequest::decode(&out[..]).unwrap();
            assert_eq!(got.resource_spans, want);
            assert_eq!(
                out,
                ExportTraceServiceRequest {
                    resource_spans: want
                }
                .encode_to_vec(),
                "canonical bytes"
            );
        }
    }

    #[test]
    fn nothing_changed_is_none() {
        let bytes = request(vec![kv("a", 3)]).encode_to_vec();
        let mut ed = Resize {
            drop: "zz",
            add: None,
        };
        assert!(edit_encoded(&bytes, &mut ed).is_none());
    }
}
