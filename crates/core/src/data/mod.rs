//! The unit of work: [`SpanBatch`], spans as the encoded requests they arrived in (checked by
//! [`wire::walk`], decoded into OTLP protobuf `ResourceSpans` only when something reads them),
//! with a cached span count, its accounting guard and a shared encoding cache.

pub mod ack;
pub mod attrs;
pub mod edit;
pub mod gzip;
pub mod json;
pub mod limits;
pub mod rpc;
pub mod trace_map;
pub mod validate;
pub mod view;
pub mod wire;

/// The OTLP types spans are made of, for plugins (no version-matched dependency of their own).
pub use opentelemetry_proto::tonic::common::v1 as common;
pub use opentelemetry_proto::tonic::resource::v1 as resource;
pub use opentelemetry_proto::tonic::trace::v1 as trace;

use std::sync::OnceLock;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use crate::telemetry::metrics::{Counter, Gauge};

/// Length of the gRPC message header (compression flag and length).
const GRPC_HEADER: usize = 5;

/// Batches at least this big are encoded/compressed with the runtime's permission to block
/// (a few ms of CPU), so other tasks on the same worker move elsewhere meanwhile.
const HEAVY_SPANS: usize = 1024;

/// Runs CPU-heavy work for a batch of `spans` spans without stalling the tasks that share this
/// runtime thread (`block_in_place` on a multi-thread runtime; inline otherwise).
pub fn heavy<R>(spans: usize, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi = Handle::try_current()
        .map(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if spans >= HEAVY_SPANS && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Runs file I/O that can sleep in the kernel (dirty-page throttling, a journal commit behind
/// another process's fsync) off the runtime's worker threads, so a slow disk delays only the
/// caller, never the other requests on the same thread (`block_in_place` on a multi-thread
/// runtime; inline otherwise).
pub fn blocking_io<R>(f: impl FnOnce() -> R) -> R {
    heavy(usize::MAX, f)
}

/// A trace id as a map key (ids shorter than 16 bytes are right-aligned; longer, truncated).
pub fn trace_key(id: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = id.len().min(16);
    b[16 - n..].copy_from_slice(&id[id.len() - n..]);
    u128::from_be_bytes(b)
}

/// Spans in a list of `ResourceSpans`.
pub fn count_spans(rs: &[ResourceSpans]) -> usize {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Accounting that follows spans through a pipeline.
///
/// While a batch is held by a pipeline stage, dropping it unsent (a task aborted at the shutdown
/// deadline) counts its spans on that stage's loss counter; once handed to the exporters their
/// own counters take over. Either way the pipeline's in-flight gauge comes down exactly once.
#[derive(Default)]
struct Tally {
    inflight: Option<Gauge>,
    spans: u64,
    on_loss: Option<Counter>,
}

impl Drop for Tally {
    fn drop(&mut self) {
        if self.spans == 0 {
            return;
        }
        if let Some(g) = &self.inflight {
            g.sub(self.spans as i64);
        }
        if let Some(c) = &self.on_loss {
            c.inc_by(self.spans);
            tracing::warn!(spans = self.spans, "spans lost at shutdown deadline");
        }
    }
}

pub struct SpanBatch {
    /// The spans as structs: set from the start for a batch made of them, decoded from `raw`
    /// on first access otherwise.
    decoded: OnceLock<Vec<ResourceSpans>>,
    /// The spans as received, while nobody has changed them: encoded requests whose
    /// concatenation is one valid request (repeated field 1 concatenates). Each was checked by
    /// the wire walk (`wire::walk`), so decoding them cannot fail.
    raw: Vec<Bytes>,
    spans: usize,
    tally: Tally,
    /// Sources waiting for these spans to be done (dropped with the batch).
    acks: Vec<ack::Ack>,
    /// Protobuf encoding behind a 5-byte gRPC frame header, computed once and shared by every
    /// exporter of the batch (gRPC sends it as is; others take the message after the header).
    encoded: OnceLock<Bytes>,
}

impl std::fmt::Debug for SpanBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBatch")
            .field("spans", &self.spans)
            .field("encoded_chunks", &self.raw.len())
            .finish()
    }
}

impl SpanBatch {
    pub fn new(resource_spans: Vec<ResourceSpans>) -> Self {
        let spans = count_spans(&resource_spans);
        SpanBatch {
            decoded: OnceLock::from(resource_spans),
            raw: Vec::new(),
            spans,
            tally: Tally::default(),
            acks: Vec::new(),
            encoded: OnceLock::new(),
        }
    }

    /// A batch of an encoded request that [`wire::walk`] accepted, `spans` spans, kept as
    /// bytes: it is decoded only if a processor or exporter asks for the structs.
    pub fn from_wire(request: Bytes, spans: usize) -> Self {
        Self::from_chunks(vec![request], spans)
    }

    /// A batch of received requests (see `raw`) holding `spans` spans between them.
    fn from_chunks(raw: Vec<Bytes>, spans: usize) -> Self {
        SpanBatch {
            decoded: OnceLock::new(),
            raw,
            spans,
            tally: Tally::default(),
            acks: Vec::new(),
            encoded: OnceLock::new(),
        }
    }

    /// True while the batch is still its received bytes (nothing decoded it or changed it).
    pub fn is_encoded_only(&self) -> bool {
        self.has_wire() && self.decoded.get().is_none()
    }

    /// True while the received bytes still stand for the spans (nothing changed them; they
    /// may have been decoded to be read).
    fn has_wire(&self) -> bool {
        !self.raw.is_empty()
    }

    /// The structs, decoding the received bytes the first time.
    fn rs(&self) -> &Vec<ResourceSpans> {
        self.decoded.get_or_init(|| {
            let mut all = Vec::new();
            for chunk in &self.raw {
                match ExportTraceServiceRequest::decode(&chunk[..]) {
                    Ok(mut req) => all.append(&mut req.resource_spans),
                    // Unreachable: the walk accepts exactly what prost accepts (tests/wire.rs).
                    Err(e) => tracing::error!(error = %e, "walked request failed to decode"),
                }
            }
            all
        })
    }

    /// The structs, to change: the received bytes and the cached encoding no longer stand
    /// for them.
    fn rs_mut(&mut self) -> &mut Vec<ResourceSpans> {
        // Decoded before the bytes go: they are what it decodes.
        self.rs();
        self.raw.clear();
        self.encoded = OnceLock::new();
        self.decoded.get_mut().expect("decoded just now")
    }

    /// The structs, decoded if need be, for a change the caller may not make (the bytes stay).
    fn decoded_mut(&mut self) -> &mut Vec<ResourceSpans> {
        self.rs();
        self.decoded.get_mut().expect("decoded just now")
    }

    /// Ties these spans to a source acknowledgement.
    pub fn add_ack(&mut self, ack: ack::Ack) {
        self.acks.push(ack);
    }

    /// Moves the acknowledgements out (a stage that keeps the spans in another form holds them).
    pub fn take_acks(&mut self) -> Vec<ack::Ack> {
        std::mem::take(&mut self.acks)
    }

    pub fn len(&self) -> usize {
        self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans == 0
    }

    pub fn resource_spans(&self) -> &[ResourceSpans] {
        self.rs()
    }

    /// Mutable access for processors. Call [`SpanBatch::recount`] after removing spans.
    pub fn resource_spans_mut(&mut self) -> &mut Vec<ResourceSpans> {
        self.rs_mut()
    }

    /// Re-counts spans after a processor removed some; the removed ones leave the in-flight
    /// gauge (the processor counts them as dropped with its reason).
    pub fn recount(&mut self) {
        if self.has_wire() {
            return; // nothing has changed it
        }
        let now = count_spans(self.rs());
        self.lose(self.spans.saturating_sub(now) as u64);
    }

    /// `removed` spans left the batch: they leave its count and the in-flight gauge.
    fn lose(&mut self, removed: u64) {
        if removed == 0 {
            return;
        }
        self.spans = self.spans.saturating_sub(removed as usize);
        let removed = removed.min(self.tally.spans);
        self.tally.spans -= removed;
        if let Some(g) = &self.tally.inflight {
            g.sub(removed as i64);
        }
    }

    /// The resources of the batch, read where they lie (the received bytes while nobody decoded
    /// them, else the structs).
    pub fn resources(&self) -> view::Resources<'_> {
        match self.decoded.get() {
            Some(rs) => view::Resources::decoded(rs),
            None => view::Resources::wire(&self.raw),
        }
    }

    /// Calls `f` with every span and its resource, in order, without decoding.
    pub fn for_each_span(&self, mut f: impl FnMut(view::ResourceRef<'_>, view::SpanRef<'_>)) {
        for rs in self.resources() {
            for ss in rs.scopes() {
                for span in ss.spans() {
                    f(rs, span);
                }
            }
        }
    }

    /// Keeps the spans `keep` says yes to, in order; a scope or resource left empty by the
    /// removal goes too, and the batch is recounted. Received bytes are rewritten in one pass
    /// without decoding (only the requests that lose spans). Returns how many spans went (the
    /// caller counts them as dropped with its reason).
    pub fn retain_spans(
        &mut self,
        mut keep: impl FnMut(view::ResourceRef<'_>, view::SpanRef<'_>) -> bool,
    ) -> u64 {
        let removed = if self.has_wire() {
            let mut removed = 0;
            let mut chunks = std::mem::take(&mut self.raw);
            for chunk in &mut chunks {
                if let Some((kept, gone)) = view::retain_encoded(chunk, &mut keep) {
                    *chunk = Bytes::from(kept);
                    removed += gone;
                }
            }
            if removed > 0 {
                chunks.retain(|c| !c.is_empty());
                self.decoded = OnceLock::new();
                self.encoded = OnceLock::new();
                if chunks.is_empty() {
                    self.decoded = OnceLock::from(Vec::new());
                }
            }
            self.raw = chunks;
            removed
        } else {
            let all = self.decoded_mut();
            let mut removed = 0u64;
            let mut emptied = Vec::new();
            for rs in all.iter_mut() {
                // The scopes come out so `keep` can see the resource beside each span.
                let mut scopes = std::mem::take(&mut rs.scope_spans);
                let mut lost_scope = false;
                scopes.retain_mut(|ss| {
                    let before = ss.spans.len();
                    ss.spans.retain(|s| {
                        keep(view::ResourceRef::Decoded(rs), view::SpanRef::Decoded(s))
                    });
                    let gone = before - ss.spans.len();
                    removed += gone as u64;
                    let goes = gone > 0 && ss.spans.is_empty();
                    lost_scope |= goes;
                    !goes
                });
                emptied.push(lost_scope && scopes.is_empty());
                rs.scope_spans = scopes;
            }
            let mut emptied = emptied.into_iter();
            all.retain(|_| !emptied.next().unwrap_or(false));
            if removed > 0 {
                self.encoded = OnceLock::new();
            }
            removed
        };
        self.lose(removed);
        removed
    }

    /// Applies an attribute/text editor (see [`edit`]): received bytes are rewritten in one
    /// pass without decoding, and only the requests it changes; decoded spans are changed in
    /// place.
    pub fn edit(&mut self, ed: &mut impl edit::Editor) {
        if self.has_wire() {
            let mut changed = false;
            for chunk in &mut self.raw {
                if let Some(new) = edit::edit_encoded(chunk, ed) {
                    *chunk = Bytes::from(new);
                    changed = true;
                }
            }
            if changed {
                self.decoded = OnceLock::new();
                self.encoded = OnceLock::new();
            }
        } else {
            edit::edit_decoded(self.decoded_mut(), ed);
            self.encoded = OnceLock::new();
        }
    }

    /// Empties the batch; the caller has counted its spans as dropped with a reason.
    pub fn recount_as_dropped(&mut self) {
        self.resource_spans_mut().clear();
        self.recount();
    }

    /// Starts in-flight accounting for a pipeline.
    pub fn track(&mut self, inflight: Gauge) {
        debug_assert!(self.tally.inflight.is_none());
        inflight.add(self.spans as i64);
        self.tally.inflight = Some(inflight);
        self.tally.spans = self.spans as u64;
    }

    /// Hands the in-flight accounting of these spans to the caller: a stage that keeps them in
    /// another form (tail sampling) and later re-creates batches with [`SpanBatch::adopt`].
    pub fn release_accounting(&mut self) -> Option<Gauge> {
        self.tally.spans = 0;
        self.tally.on_loss = None;
        self.tally.inflight.take()
    }

    /// Takes over spans already counted in flight (see [`SpanBatch::release_accounting`]).
    pub fn adopt(&mut self, inflight: Option<Gauge>) {
        self.tally.inflight = inflight;
        self.tally.spans = self.spans as u64;
    }

    /// Names the counter that counts these spans if they are dropped unsent (stage loss).
    pub fn set_holder(&mut self, on_loss: Option<Counter>) {
        self.tally.on_loss = on_loss;
    }

    /// A copy for another pipeline: same spans (and source acks), fresh accounting.
    pub fn duplicate(&self) -> SpanBatch {
        let mut b = if self.has_wire() {
            SpanBatch::from_chunks(self.raw.clone(), self.spans)
        } else {
            SpanBatch::new(self.rs().clone())
        };
        b.acks = self.acks.clone();
        b
    }

    /// Appends `other` (same pipeline), taking over its accounting.
    pub fn absorb(&mut self, mut other: SpanBatch) {
        if self.has_wire() && other.has_wire() {
            // Still bytes: the requests concatenate when encoded (see `raw`). Structs decoded
            // to read either part go; they are decoded again if someone asks.
            self.encoded = OnceLock::new();
            self.decoded = OnceLock::new();
            self.raw.append(&mut other.raw);
        } else if self.is_empty() && self.acks.is_empty() && other.has_wire() {
            self.encoded = OnceLock::new();
            self.decoded = OnceLock::new();
            self.raw = std::mem::take(&mut other.raw);
        } else {
            let theirs = std::mem::take(other.rs_mut());
            self.rs_mut().extend(theirs);
        }
        self.acks.append(&mut other.acks);
        self.spans += other.spans;
        self.tally.spans += std::mem::take(&mut other.tally.spans);
        if self.tally.inflight.is_none() {
            self.tally.inflight = other.tally.inflight.take();
        }
        if self.tally.on_loss.is_none() {
            self.tally.on_loss = other.tally.on_loss.take();
        }
    }

    /// Splits off the first `n` spans (cloning resource and scope headers where a split cuts
    /// through them) into a new batch that takes their share of the accounting.
    pub fn split_front(&mut self, n: usize) -> SpanBatch {
        if n >= self.spans {
            let mut out = if self.has_wire() {
                self.decoded = OnceLock::from(Vec::new());
                SpanBatch::from_chunks(std::mem::take(&mut self.raw), self.spans)
            } else {
                SpanBatch::new(std::mem::take(self.rs_mut()))
            };
            out.acks = std::mem::take(&mut self.acks);
            out.tally.spans = std::mem::take(&mut self.tally.spans);
            out.tally.inflight = self.tally.inflight.clone();
            out.tally.on_loss = self.tally.on_loss.clone();
            self.spans = 0;
            self.encoded = OnceLock::new();
            return out;
        }
        let all = self.rs_mut();
        let mut front = Vec::new();
        let mut need = n;
        while need > 0 {
            let rs = &mut all[0];
            let rs_count: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
            if rs_count <= need {
                need -= rs_count;
                front.push(all.remove(0));
                continue;
            }
            let mut taken = ResourceSpans {
                resource: rs.resource.clone(),
                scope_spans: Vec::new(),
                schema_url: rs.schema_url.clone(),
            };
            while need > 0 {
                let ss = &mut rs.scope_spans[0];
                if ss.spans.len() <= need {
                    need -= ss.spans.len();
                    taken.scope_spans.push(rs.scope_spans.remove(0));
                } else {
                    let rest = ss.spans.split_off(need);
                    let head = std::mem::replace(&mut ss.spans, rest);
                    taken.scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: head,
                        schema_url: ss.schema_url.clone(),
                    });
                    need = 0;
                }
            }
            front.push(taken);
        }
        let mut out = SpanBatch::new(front);
        // Both parts hold the sources' spans: each keeps the acks alive.
        out.acks = self.acks.clone();
        self.spans -= n;
        let moved = (n as u64).min(self.tally.spans);
        self.tally.spans -= moved;
        out.tally.spans = moved;
        out.tally.inflight = self.tally.inflight.clone();
        out.tally.on_loss = self.tally.on_loss.clone();
        out
    }

    /// The length of [`SpanBatch::encoded`], without encoding when it is not cached yet.
    pub fn encoded_len(&self) -> usize {
        if let Some(b) = self.encoded.get() {
            return b.len() - GRPC_HEADER;
        }
        match self.raw.is_empty() {
            false => self.raw.iter().map(Bytes::len).sum(),
            true => self
                .rs()
                .iter()
                .map(|rs| prost::encoding::message::encoded_len(1, rs))
                .sum(),
        }
    }

    /// The encoding as the pieces it is held in: the received requests while nothing changed
    /// them (their concatenation is the request), else the one cached encoding. For consumers
    /// that transform the bytes anyway (gzip): they read the pieces where they lie instead of
    /// concatenating, and caching, a copy of the whole batch first.
    pub fn encoded_parts(&self) -> Vec<Bytes> {
        match (self.encoded.get(), self.raw.is_empty()) {
            (None, false) => self.raw.clone(),
            _ => vec![self.encoded()],
        }
    }

    /// The OTLP protobuf `ExportTraceServiceRequest` bytes, encoded once (the received bytes
    /// as they are, while nothing changed them).
    pub fn encoded(&self) -> Bytes {
        if let [one] = &self.raw[..] {
            return one.clone();
        }
        self.grpc_frame().slice(GRPC_HEADER..)
    }

    /// The encoding as one uncompressed gRPC message: flag 0, big-endian length, message.
    pub fn grpc_frame(&self) -> Bytes {
        if let Some(b) = self.encoded.get() {
            return b.clone();
        }
        heavy(self.spans, || self.encode_once().clone())
    }

    fn encode_once(&self) -> &Bytes {
        self.encoded.get_or_init(|| {
            if !self.raw.is_empty() {
                let len: usize = self.raw.iter().map(Bytes::len).sum();
                let mut buf = Vec::with_capacity(GRPC_HEADER + len);
                buf.push(0);
                buf.extend_from_slice(&(len as u32).to_be_bytes());
                for chunk in &self.raw {
                    buf.extend_from_slice(chunk);
                }
                return Bytes::from(buf);
            }
            let resource_spans = self.rs();
            // prost's `encode` asks every nested message for its length at each level, so a
            // span's length was computed four times (request, resource, scope, span). Here each
            // span's length is computed once and the outer levels are written from the sums.
            use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
            let span_lens: Vec<usize> = resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(Message::encoded_len)
                .collect();
            let field = |len: usize| 1 + encoded_len_varint(len as u64) + len;
            let mut lens = span_lens.iter();
            let mut scope_lens = Vec::new();
            let mut resource_lens = Vec::with_capacity(resource_spans.len());
            for rs in resource_spans {
                let mut rs_len = rs
                    .resource
                    .as_ref()
                    .map_or(0, |r| prost::encoding::message::encoded_len(1, r))
                    + prost::encoding::string::encoded_len(3, &rs.schema_url)
                        * usize::from(!rs.schema_url.is_empty());
                for ss in &rs.scope_spans {
                    let mut ss_len = ss
                        .scope
                        .as_ref()
                        .map_or(0, |s| prost::encoding::message::encoded_len(1, s))
                        + prost::encoding::string::encoded_len(3, &ss.schema_url)
                            * usize::from(!ss.schema_url.is_empty());
                    ss_len += lens
                        .by_ref()
                        .take(ss.spans.len())
                        .map(|&l| field(l))
                        .sum::<usize>();
                    scope_lens.push(ss_len);
                    rs_len += field(ss_len);
                }
                resource_lens.push(rs_len);
            }
            let len: usize = resource_lens.iter().map(|&l| field(l)).sum();
            let mut buf = Vec::with_capacity(GRPC_HEADER + len);
            buf.push(0);
            buf.extend_from_slice(&(len as u32).to_be_bytes());
            let (mut spans, mut scopes) = (span_lens.iter(), scope_lens.iter());
            for (rs, &rs_len) in resource_spans.iter().zip(&resource_lens) {
                encode_key(1, WireType::LengthDelimited, &mut buf);
                encode_varint(rs_len as u64, &mut buf);
                if let Some(r) = &rs.resource {
                    prost::encoding::message::encode(1, r, &mut buf);
                }
                for (ss, &ss_len) in rs.scope_spans.iter().zip(scopes.by_ref()) {
                    encode_key(2, WireType::LengthDelimited, &mut buf);
                    encode_varint(ss_len as u64, &mut buf);
                    if let Some(s) = &ss.scope {
                        prost::encoding::message::encode(1, s, &mut buf);
                    }
                    for (span, &span_len) in ss.spans.iter().zip(spans.by_ref()) {
                        encode_key(2, WireType::LengthDelimited, &mut buf);
                        encode_varint(span_len as u64, &mut buf);
                        span.encode_raw(&mut buf);
                    }
                    if !ss.schema_url.is_empty() {
                        prost::encoding::string::encode(3, &ss.schema_url, &mut buf);
                    }
                }
                if !rs.schema_url.is_empty() {
                    prost::encoding::string::encode(3, &rs.schema_url, &mut buf);
                }
            }
            debug_assert_eq!(buf.len(), GRPC_HEADER + len);
            Bytes::from(buf)
        })
    }

    pub fn to_request(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: self.rs().clone(),
        }
    }
}

/// Decodes an OTLP protobuf request (for tests and tools; receivers decode in place).
pub fn decode_request(bytes: &[u8]) -> Result<ExportTraceServiceRequest, prost::DecodeError> {
    ExportTraceServiceRequest::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;
    use opentelemetry_proto::tonic::trace::v1::Span;

    pub(crate) fn batch(resources: &[&[usize]]) -> SpanBatch {
        let rs = resources
            .iter()
            .map(|scopes| ResourceSpans {
                scope_spans: scopes
                    .iter()
                    .map(|&n| ScopeSpans {
                        spans: (0..n)
                            .map(|i| Span {
                                name: format!("s{i}"),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        SpanBatch::new(rs)
    }

    #[test]
    fn encoding_equals_prost_byte_for_byte() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let mut b = batch(&[&[2, 0, 3], &[], &[200]]);
        let rs = b.resource_spans_mut();
        rs[0].resource = Some(Resource::default());
        rs[0].schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
        rs[0].scope_spans[0].scope = Some(InstrumentationScope {
            name: "lib".into(),
            ..Default::default()
        });
        rs[0].scope_spans[2].schema_url = "x".repeat(300);
        rs[2].scope_spans[0].spans[7].name = "n".repeat(70_000);
        b.recount();
        let want = ExportTraceServiceRequest {
            resource_spans: b.resource_spans().to_vec(),
        }
        .encode_to_vec();
        assert_eq!(b.encoded(), want);
        let frame = b.grpc_frame();
        assert_eq!(frame[0], 0);
        assert_eq!(
            u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize,
            want.len()
        );
    }

    #[test]
    fn split_front_cuts_through_scopes_and_moves_accounting() {
        let m = Metrics::default();
        let g = m.pipeline_inflight("traces");
        let mut b = batch(&[&[2, 3], &[4]]);
        b.track(g.clone());
        assert_eq!(g.get(), 9);
        let front = b.split_front(4);
        assert_eq!(front.len(), 4);
        assert_eq!(count_spans(front.resource_spans()), 4);
        assert_eq!(b.len(), 5);
        assert_eq!(count_spans(b.resource_spans()), 5);
        drop(front);
        assert_eq!(g.get(), 5);
        let rest = b.split_front(100);
        assert_eq!(rest.len(), 5);
        drop(b);
        assert_eq!(g.get(), 5);
        drop(rest);
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn absorb_and_loss_counting() {
        let m = Metrics::default();
        let g = m.pipeline_inflight("traces");
        let lost = m.processor_dropped("batch", "shutdown");
        let mut a = batch(&[&[1]]);
        a.track(g.clone());
        let mut b = batch(&[&[2]]);
        b.track(g.clone());
        a.absorb(b);
        assert_eq!(a.len(), 3);
        a.set_holder(Some(lost.clone()));
        drop(a);
        assert_eq!(g.get(), 0);
        assert_eq!(lost.get(), 3);
    }

    #[test]
    fn encoded_is_a_valid_request() {
        let b = batch(&[&[2], &[1]]);
        let req = decode_request(&b.encoded()).unwrap();
        assert_eq!(count_spans(&req.resource_spans), 3);
        assert_eq!(req, b.to_request());
        let frame = b.grpc_frame();
        assert_eq!(frame[0], 0);
        assert_eq!(&frame[1..5], &(b.encoded().len() as u32).to_be_bytes());
        assert_eq!(frame.slice(5..), b.encoded());
    }

    #[test]
    fn retain_spans_prunes_recounts_and_forgets_the_old_encoding() {
        let m = Metrics::default();
        let mut b = batch(&[&[2], &[1]]);
        b.track(m.pipeline_inflight("t"));
        let before = b.encoded();
        // s0 of both resources goes; the second resource is left empty and goes too.
        assert_eq!(b.retain_spans(|_, s| s.name() != "s0"), 2);
        assert_eq!(b.len(), 1);
        assert_eq!(b.resource_spans().len(), 1);
        assert_eq!(m.pipeline_inflight("t").get(), 1);
        let after = decode_request(&b.encoded()).unwrap();
        assert_eq!(count_spans(&after.resource_spans), 1);
        assert_ne!(b.encoded(), before);
        assert_eq!(b.retain_spans(|_, _| true), 0);
    }

    /// `batch` as received: its encoding, as a wire batch.
    fn wire(resources: &[&[usize]]) -> SpanBatch {
        let b = batch(resources);
        let bytes = b.encoded();
        assert!(wire::walk(&bytes).is_ok());
        SpanBatch::from_wire(bytes, b.len())
    }

    #[test]
    fn a_wire_batch_stays_bytes_until_asked_for_structs() {
        let reference = batch(&[&[2, 1], &[3]]);
        let mut a = wire(&[&[2, 1], &[3]]);
        assert!(a.is_encoded_only());
        assert_eq!(
            a.encoded(),
            reference.encoded(),
            "the received bytes, as they are"
        );
        assert_eq!(a.encoded_len(), reference.encoded_len());
        // Nothing removed: still the received bytes.
        assert_eq!(a.retain_spans(|_, _| true), 0);
        assert_eq!(a.encoded(), reference.encoded());
        // Fan-out copies share the bytes.
        let copy = a.duplicate();
        assert!(copy.is_encoded_only());
        assert_eq!(copy.encoded(), reference.encoded());
        // Batching concatenates: one valid request of both.
        a.absorb(wire(&[&[4]]));
        assert!(a.is_encoded_only());
        assert_eq!(a.len(), 10);
        let both = decode_request(&a.encoded()).unwrap();
        assert_eq!(count_spans(&both.resource_spans), 10);
        assert_eq!(both.resource_spans.len(), 3);
        assert_eq!(a.encoded_len(), a.encoded().len());
        // Reading decodes, lazily; the bytes still stand for it.
        assert_eq!(count_spans(a.resource_spans()), 10);
        assert_eq!(decode_request(&a.encoded()).unwrap(), both);
        // A change re-encodes from the structs.
        assert_eq!(a.retain_spans(|_, s| s.name() != "s0"), 4);
        assert_eq!(a.len(), 6);
        assert_eq!(
            count_spans(&decode_request(&a.encoded()).unwrap().resource_spans),
            6
        );
        // Mixed batching decodes the bytes it meets.
        let mut m = batch(&[&[1]]);
        m.absorb(wire(&[&[2]]));
        assert_eq!(m.len(), 3);
        assert_eq!(
            count_spans(&decode_request(&m.encoded()).unwrap().resource_spans),
            3
        );
    }

    #[test]
    fn a_wire_batch_splits_and_keeps_its_accounting() {
        let m = Metrics::default();
        let inflight = m.pipeline_inflight("p");
        let mut b = wire(&[&[3, 2], &[4]]);
        b.absorb(wire(&[&[1]]));
        b.track(inflight.clone());
        assert_eq!(inflight.get(), 10);
        let front = b.split_front(4);
        assert_eq!((front.len(), b.len()), (4, 6));
        assert_eq!(
            count_spans(&decode_request(&front.encoded()).unwrap().resource_spans),
            4
        );
        assert_eq!(
            count_spans(&decode_request(&b.encoded()).unwrap().resource_spans),
            6
        );
        drop(front);
        assert_eq!(inflight.get(), 6);
        // Taking all of a wire batch moves its bytes.
        let mut w = wire(&[&[2]]);
        let all = w.split_front(5);
        assert!(all.is_encoded_only() && w.is_empty());
        drop(b);
        assert_eq!(inflight.get(), 0);
    }
}
