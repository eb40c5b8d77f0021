//! `session`: correlates traces into user sessions and stamps the session on every span of a
//! correlated trace; with a `tail_sampling` after it, keeping one trace of a session keeps the
//! session's later traces for `ttl`.
//!
//! A trace joins a session when any of its spans carries one of `key_attributes` (span
//! attributes first, then resource attributes). Spans passing this processor after that are
//! stamped here. Spans of the trace that passed before are stamped by the following tail
//! sampler when it releases the trace, since it still holds them.
//!
//! Across instances: the index is per instance, so a session's traces must reach one instance.
//! In a two-tier deployment the samplers consume a Kafka topic partitioned so that this holds
//! (`partition_by: session` on the agents' exporter, with the session stamped at the agent).

pub mod index;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{
    BuildError, InlineProcessor, Processor, ProcessorConfig, ProcessorContext, SessionLink,
    Sessions, Verdict,
};
use crate::data::attrs::{set_attr, str_attr};
use crate::data::edit::{At, Edit, Editor, Level, Plan};
use crate::data::view::{Attrs, ValueRef};
use crate::data::{trace_key, SpanBatch};
pub use index::SessionIndex;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Attributes naming the session, first found wins (span, then resource attributes).
    #[serde(default = "default_keys")]
    pub key_attributes: Vec<String>,
    /// Written on every span of a correlated trace.
    #[serde(default = "default_stamp")]
    pub stamp_attribute: String,
    /// How long a session (and a "kept" mark on it) lives after it was last seen.
    #[serde(default = "default_ttl", with = "crate::config::duration")]
    pub ttl: Duration,
    /// Bound on sessions remembered; the least recently seen go first.
    #[serde(default = "default_max")]
    pub max_sessions: usize,
    /// Hold spans this long before stamping and forwarding, so spans that arrive before the one
    /// naming the session are stamped too without a tail sampler after this processor
    /// (default 0s: stamp in place, no delay).
    #[serde(default, with = "crate::config::duration")]
    pub hold: Duration,
}

fn default_keys() -> Vec<String> {
    vec!["session.id".into()]
}
fn default_stamp() -> String {
    "session.id".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_max() -> usize {
    100_000
}

impl Check for SessionConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.key_attributes.is_empty() || self.key_attributes.iter().any(String::is_empty) {
            out.push((
                "key_attributes".into(),
                "list at least one non-empty key".into(),
            ));
        }
        if self.stamp_attribute.is_empty() {
            out.push(("stamp_attribute".into(), "must not be empty".into()));
        }
        if self.ttl.is_zero() {
            out.push(("ttl".into(), "must be greater than 0".into()));
        }
        if self.max_sessions == 0 {
            out.push(("max_sessions".into(), "must be at least 1".into()));
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ProcessorConfig>, Problems> {
    Ok(Arc::new(parse_config::<SessionConfig>(v)?))
}

/// What a tail sampler in the same pipeline asks of the session index.
impl Sessions for Stamped {
    fn session_kept(&self, trace_id: u128, now: Instant) -> bool {
        self.index.session_kept(trace_id, now)
    }
    fn mark_kept(&self, trace_id: u128, now: Instant) {
        self.index.mark_kept(trace_id, now)
    }
    fn stamp_all(&self, batch: &mut SpanBatch, now: Instant) {
        stamp_all(&self.index, &self.stamp, batch, now)
    }
}

/// The index with the attribute its sessions are stamped into.
struct Stamped {
    index: Arc<SessionIndex>,
    stamp: String,
}

impl ProcessorConfig for SessionConfig {
    fn build(&self, ctx: &ProcessorContext) -> Result<Processor, BuildError> {
        // Sessions outlive a reload that leaves this processor's config as it was.
        let key = format!("session-index:{}/{}", ctx.pipeline, ctx.id);
        let (index, _) = ctx.state.reuse_or_insert(&key, self.clone(), || {
            SessionIndex::new(self.ttl, self.max_sessions)
        });
        ctx.session.set(Arc::new(Stamped {
            index: index.clone(),
            stamp: self.stamp_attribute.clone(),
        }));
        let processor = SessionProcessor {
            index,
            keys: self.key_attributes.clone(),
            stamp: self.stamp_attribute.clone(),
            _link: ctx.session.clone(),
        };
        if self.hold.is_zero() {
            Ok(Processor::Inline(Box::new(processor)))
        } else {
            Ok(Processor::Staged(Box::new(hold::Hold {
                processor,
                hold: self.hold,
            })))
        }
    }
}

pub struct SessionProcessor {
    index: Arc<SessionIndex>,
    keys: Vec<String>,
    stamp: String,
    /// Keeps the pipeline's link alive for the tail sampler after us.
    _link: Arc<SessionLink>,
}

/// The first key attribute present with a usable value.
fn find_session<'a>(keys: &[String], attrs: Attrs<'a>) -> Option<std::borrow::Cow<'a, str>> {
    keys.iter().find_map(|k| match attrs.clone().get(k)? {
        ValueRef::Str(s) if !s.is_empty() => Some(std::borrow::Cow::Borrowed(s)),
        ValueRef::Int(i) => Some(std::borrow::Cow::Owned(i.to_string())),
        _ => None,
    })
}

/// Sets `key` to `session` on a span's attributes (no-op when it already says so).
pub fn stamp(attrs: &mut Vec<KeyValue>, key: &str, session: &str) {
    if str_attr(attrs, key) != Some(session) {
        set_attr(attrs, key, Value::StringValue(session.to_string()));
    }
}

/// Stamps every span whose trace belongs to a session, rewriting only the spans that lack the
/// stamp (received bytes stay bytes; a batch that needs no stamp keeps them as they are).
pub fn stamp_all(index: &SessionIndex, stamp_key: &str, batch: &mut SpanBatch, now: Instant) {
    let g = index.lock();
    batch.edit(&mut Stamp {
        index: &g,
        key: stamp_key,
        now,
        session: None,
        done: false,
        last: None,
    });
}

/// The stamping pass: a span of a known session whose stamp is missing or says otherwise is
/// streamed; the first attribute of the stamp key is set, or the stamp is appended.
struct Stamp<'a> {
    index: &'a index::Inner,
    key: &'a str,
    now: Instant,
    /// The current span's session, while it is being stamped.
    session: Option<Arc<str>>,
    done: bool,
    /// The last span's trace and its session: a trace's spans come in runs, looked up once.
    last: Option<(u128, Option<Arc<str>>)>,
}

impl Editor for Stamp<'_> {
    fn wants(&self, level: Level) -> bool {
        level == Level::Span
    }

    fn begin(&mut self, at: At<'_>) -> Plan {
        let At::Span(span) = at else {
            return Plan::Keep;
        };
        let trace = trace_key(span.trace_id());
        let known = match &self.last {
            Some((t, s)) if *t == trace => s.clone(),
            _ => {
                let s = self.index.session_of(trace, self.now);
                self.last = Some((trace, s.clone()));
                s
            }
        };
        let Some(session) = known else {
            return Plan::Keep;
        };
        if span.attribute(self.key).and_then(ValueRef::as_str) == Some(&*session) {
            return Plan::Keep;
        }
        self.session = Some(session);
        self.done = false;
        Plan::Stream
    }

    fn attr(&mut self, _level: Level, key: &str, _value: ValueRef<'_>) -> Edit {
        match &self.session {
            Some(s) if !self.done && key == self.key => {
                self.done = true;
                Edit::Set(Value::StringValue(s.to_string()))
            }
            _ => Edit::Keep,
        }
    }

    fn end(&mut self, _level: Level, append: &mut Vec<KeyValue>) {
        if let Some(s) = self.session.take() {
            if !self.done {
                append.push(KeyValue {
                    key: self.key.to_string(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(s.to_string())),
                    }),
                    ..Default::default()
                });
            }
        }
    }
}

impl SessionProcessor {
    /// Links the batch's traces to the sessions their key attributes name.
    fn observe(&self, batch: &SpanBatch, now: Instant) {
        let mut g = self.index.lock();
        // A trace's spans come in runs naming one session: link each run once.
        let mut last: Option<(u128, std::borrow::Cow<'_, str>)> = None;
        for rs in batch.resources() {
            let from_resource = find_session(&self.keys, rs.attributes());
            for span in rs.scopes().flat_map(|s| s.spans()) {
                if let Some(s) =
                    find_session(&self.keys, span.attributes()).or(from_resource.clone())
                {
                    let trace = trace_key(span.trace_id());
                    if last.as_ref().is_some_and(|(t, l)| *t == trace && *l == s) {
                        continue;
                    }
                    g.observe(trace, &s, now);
                    last = Some((trace, s));
                }
            }
        }
    }
}

impl InlineProcessor for SessionProcessor {
    fn process(&self, batch: &mut SpanBatch) -> Verdict {
        let now = Instant::now();
        self.observe(batch, now);
        stamp_all(&self.index, &self.stamp, batch, now);
        Verdict::Continue
    }
}

mod hold {
    //! `hold`: batches wait a short while (their sessions already recorded) before being
    //! stamped and sent on. Bounded in spans; over the bound the oldest leave early.
    use std::collections::VecDeque;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::{stamp_all, SessionProcessor};
    use crate::component::Output;
    use crate::component::{BoxFuture, StagedProcessor};
    use crate::data::SpanBatch;

    /// Spans held at most; past it the oldest batches leave before their hold ends.
    const MAX_HELD_SPANS: usize = 65_536;

    pub struct Hold {
        pub processor: SessionProcessor,
        pub hold: Duration,
    }

    impl StagedProcessor for Hold {
        fn run(
            self: Box<Self>,
            input: mpsc::Receiver<SpanBatch>,
            output: Box<dyn Output>,
        ) -> BoxFuture<'static, ()> {
            Box::pin(run(*self, input, output))
        }
    }

    async fn release(p: &SessionProcessor, mut batch: SpanBatch, output: &dyn Output) {
        stamp_all(&p.index, &p.stamp, &mut batch, std::time::Instant::now());
        output.send(batch).await;
    }

    async fn run(h: Hold, mut input: mpsc::Receiver<SpanBatch>, output: Box<dyn Output>) {
        let mut held: VecDeque<(Instant, SpanBatch)> = VecDeque::new();
        let mut spans = 0;
        loop {
            let next_due = held.front().map(|(t, _)| *t + h.hold);
            let timer = async {
                match next_due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = input.recv() => match msg {
                    Some(batch) => {
                        h.processor.observe(&batch, std::time::Instant::now());
                        spans += batch.len();
                        held.push_back((Instant::now(), batch));
                        while spans > MAX_HELD_SPANS {
                            let Some((_, b)) = held.pop_front() else { break };
                            spans -= b.len();
                            release(&h.processor, b, &*output).await;
                        }
                    }
                    None => break,
                },
                _ = timer => {
                    let now = Instant::now();
                    while held.front().is_some_and(|(t, _)| *t + h.hold <= now) {
                        let Some((_, b)) = held.pop_front() else { break };
                        spans -= b.len();
                        release(&h.processor, b, &*output).await;
                    }
                }
            }
        }
        for (_, b) in held {
            release(&h.processor, b, &*output).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn span(trace: u8, attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![1; 8],
            attributes: attrs,
            ..Default::default()
        }
    }

    fn processor(keys: &[&str]) -> SessionProcessor {
        SessionProcessor {
            index: Arc::new(SessionIndex::new(Duration::from_secs(60), 100)),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            stamp: "session.id".into(),
            _link: Default::default(),
        }
    }

    fn stamps(b: &SpanBatch) -> Vec<Option<String>> {
        b.resource_spans()
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key == "session.id")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        Value::StringValue(v) => Some(v.clone()),
                        _ => None,
                    })
            })
            .collect()
    }

    fn batch(resource: Vec<KeyValue>, spans: Vec<Span>) -> SpanBatch {
        SpanBatch::new(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    #[test]
    fn stamps_every_span_of_a_correlated_trace() {
        let p = processor(&["user.session_id", "session.id"]);
        // Trace 1's second span names the session; the first span (same batch) is stamped too.
        let mut b = batch(
            vec![],
            vec![
                span(1, vec![]),
                span(1, vec![kv("user.session_id", "s1")]),
                span(2, vec![]),
            ],
        );
        p.process(&mut b);
        assert_eq!(stamps(&b), vec![Some("s1".into()), Some("s1".into()), None]);
        // Later spans of trace 1 are stamped without carrying the key.
        let mut b = batch(vec![], vec![span(1, vec![])]);
        p.process(&mut b);
        assert_eq!(stamps(&b), vec![Some("s1".into())]);
        // Resource attributes name the session when spans do not; span attributes win.
        let mut b = batch(
            vec![kv("session.id", "r1")],
            vec![span(3, vec![]), span(4, vec![kv("user.session_id", "s4")])],
        );
        p.process(&mut b);
        assert_eq!(stamps(&b), vec![Some("r1".into()), Some("s4".into())]);
        // The first key in `key_attributes` order wins on one span.
        let mut b = batch(
            vec![],
            vec![span(
                5,
                vec![kv("session.id", "b"), kv("user.session_id", "a")],
            )],
        );
        p.process(&mut b);
        assert_eq!(stamps(&b), vec![Some("a".into())]);
    }
}
