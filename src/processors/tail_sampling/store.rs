//! The buffer of undecided traces: sharded by trace id (one `std` mutex per shard, never held
//! across an await), each span kept as its encoded bytes next to a shared, encoded
//! resource/scope header, plus the few facts policies read. Spans are read where they lie in
//! the incoming batch (no decode), and kept traces leave as encoded requests assembled from
//! those bytes: nothing on the way decodes or re-encodes a span.
//!
//! Span bytes are written into blocks of one size per shard ([`Log`]) and held as shared
//! slices of them: a block is freed when the last trace with spans in it is decided. Traces
//! wait about as long as each other, so blocks are freed roughly in the order they filled, and
//! one block size keeps the allocator reusing what it freed instead of fragmenting under
//! traces that grow at different rates (measured at 20k spans/s with `decision_wait: 5s`:
//! peak heap and RSS, see the README).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};

use super::policy::{Policies, TraceFacts};
use super::TsMetrics;
use crate::component::SessionLink;
use crate::data::ack::Ack;
use crate::data::trace_map::{TraceHash, TraceMap};
use crate::data::{trace_key, SpanBatch};
use crate::processors::trace_cache::{NotSampledFilter, SampledCache, TraceId};
use crate::telemetry::metrics::Gauge;

/// Where a group of spans came from, encoded: the `ResourceSpans` fields but its scopes, and
/// the `ScopeSpans` fields but its spans. Shared by every span of one incoming `ScopeSpans`.
pub struct Header {
    resource: Box<[u8]>,
    scope: Box<[u8]>,
}

struct Group {
    header: Arc<Header>,
    /// Spans encoded as `ScopeSpans` field 2 (key, length, message), back to back: a slice of
    /// a shard's [`Log`] block.
    spans: Bytes,
}

/// Bytes of the blocks span bytes are written into (a run larger than this gets a block of
/// its own).
const BLOCK: usize = 64 << 10;

/// Where one shard writes span bytes: the unused rest of its current block.
#[derive(Default)]
struct Log {
    block: BytesMut,
}

impl Log {
    /// Writes `parts` one after the other and returns them as one slice of a block.
    fn put<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]> + Clone) -> Bytes {
        let len: usize = parts.clone().map(<[u8]>::len).sum();
        if self.block.capacity() < len {
            // The rest of the old block stays with the slices already handed out.
            self.block = BytesMut::with_capacity(len.max(BLOCK));
        }
        for p in parts {
            self.block.extend_from_slice(p);
        }
        self.block.split().freeze()
    }
}

pub struct Trace {
    pub facts: TraceFacts,
    deadline: Instant,
    /// Arrival number: due traces are decided in arrival order across shards, as contrib does,
    /// which matters for stateful policies (rate and bytes limiting).
    seq: u64,
    groups: Vec<Group>,
    /// Sources (Kafka messages) waiting for this trace's decision.
    acks: Vec<Ack>,
}

impl Trace {
    fn new(id: TraceId, deadline: Instant, seq: u64) -> Self {
        Trace {
            facts: TraceFacts {
                trace_id: id.to_be_bytes(),
                min_start: u64::MAX,
                ..Default::default()
            },
            deadline,
            seq,
            groups: Vec::new(),
            acks: Vec::new(),
        }
    }

    /// Adds spans of one header (see [`Group::spans`]).
    fn push(&mut self, header: &Arc<Header>, spans: Bytes) {
        self.groups.push(Group {
            header: header.clone(),
            spans,
        });
    }

    /// Heap bytes this trace holds (its share of headers excluded: they are shared; its
    /// blocks counted by what it wrote in them).
    fn heap_bytes(&self) -> usize {
        self.groups.iter().map(|g| g.spans.len()).sum::<usize>()
            + self.groups.capacity() * std::mem::size_of::<Group>()
            + self.acks.capacity() * std::mem::size_of::<Ack>()
    }
}

/// The spans of kept traces as one encoded request (a `ResourceSpans` per header, spans of
/// one header together), with their sources' acks.
pub fn assemble(mut traces: Vec<Trace>) -> (SpanBatch, Vec<Ack>) {
    let mut acks: Vec<Ack> = Vec::new();
    let mut spans = 0;
    for t in &mut traces {
        acks.append(&mut t.acks);
        spans += t.facts.spans as usize;
    }
    // Per header: its spans' bytes (slices of the traces' buffers) and their total length.
    let mut slots: Vec<(&Header, Vec<&[u8]>, usize)> = Vec::new();
    let mut index: HashMap<*const Header, usize> = HashMap::new();
    for t in &traces {
        for g in &t.groups {
            let slice = &g.spans[..];
            let slot = *index.entry(Arc::as_ptr(&g.header)).or_insert_with(|| {
                slots.push((&g.header, Vec::new(), 0));
                slots.len() - 1
            });
            slots[slot].1.push(slice);
            slots[slot].2 += slice.len();
        }
    }
    let field = |len: usize| 1 + encoded_len_varint(len as u64) + len;
    let lens = |h: &Header, spans_len: usize| {
        let scope = h.scope.len() + spans_len;
        (h.resource.len() + field(scope), scope)
    };
    let total: usize = slots.iter().map(|(h, _, n)| field(lens(h, *n).0)).sum();
    let mut out = Vec::with_capacity(total);
    for (h, parts, n) in &slots {
        let (resource_len, scope_len) = lens(h, *n);
        out.push(0x0a);
        encode_varint(resource_len as u64, &mut out);
        out.extend_from_slice(&h.resource);
        out.push(0x12);
        encode_varint(scope_len as u64, &mut out);
        out.extend_from_slice(&h.scope);
        for p in parts {
            out.extend_from_slice(p);
        }
    }
    debug_assert_eq!(out.len(), total);
    (SpanBatch::from_wire(Bytes::from(out), spans), acks)
}

struct Shard {
    traces: TraceMap<Trace>,
    /// Arrival order = decision order (`decision_wait` is the same for all).
    order: VecDeque<(Instant, TraceId)>,
    /// Earlier deadlines set by a root span (`decision_wait_after_root_received`).
    root_order: VecDeque<(Instant, TraceId)>,
    sampled: SampledCache,
    not_sampled: NotSampledFilter,
    log: Log,
}

pub struct Limits {
    pub wait: Duration,
    pub after_root: Option<Duration>,
    pub num_traces: usize,
    pub max_bytes: u64,
    pub max_trace_bytes: u64,
    pub block_on_overflow: bool,
}

/// How big the buffer's parts are.
pub struct Sizing {
    pub shards: usize,
    /// Sampled trace ids remembered.
    pub sampled_cache: usize,
    /// Not-sampled trace ids remembered.
    pub non_sampled_cache: usize,
    /// Traces expected in flight (preallocation).
    pub expected: usize,
}

/// What an insertion or a decision round releases downstream.
#[derive(Default)]
pub struct Released {
    pub kept: Vec<Trace>,
}

struct Pending {
    id: TraceId,
    header: Arc<Header>,
    range: Range<usize>,
    bits: u64,
    start: u64,
    end: u64,
    root: bool,
}

pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    policies: Policies,
    limits: Limits,
    traces: AtomicUsize,
    bytes: AtomicU64,
    spans: AtomicU64,
    arrivals: AtomicU64,
    /// The generation of the processor instance that owns the store; a reload with the same
    /// config hands the store (and its waiting traces) to a new instance.
    owner: AtomicU64,
    /// The pipeline's in-flight gauge: buffered spans stay in flight until sent or dropped.
    inflight: OnceLock<Gauge>,
    metrics: TsMetrics,
    /// The session index of a `session` processor before us in the pipeline, if any.
    session: Arc<SessionLink>,
}

#[derive(Clone, Copy)]
enum Early {
    NumTraces,
    MaxBytes,
}

impl Store {
    pub fn new(
        policies: Policies,
        limits: Limits,
        sizing: Sizing,
        metrics: TsMetrics,
        session: Arc<SessionLink>,
    ) -> Self {
        let Sizing {
            shards,
            sampled_cache,
            non_sampled_cache,
            expected,
        } = sizing;
        let shards = shards.max(1);
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    traces: TraceMap::with_capacity_and_hasher(
                        expected / shards,
                        TraceHash::default(),
                    ),
                    order: VecDeque::new(),
                    root_order: VecDeque::new(),
                    sampled: SampledCache::new(sampled_cache.div_ceil(shards)),
                    not_sampled: NotSampledFilter::new(non_sampled_cache.div_ceil(shards)),
                    log: Log::default(),
                })
            })
            .collect();
        Store {
            shards,
            policies,
            limits,
            traces: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            arrivals: AtomicU64::new(0),
            owner: AtomicU64::new(0),
            inflight: OnceLock::new(),
            metrics,
            session,
        }
    }

    pub fn session_link(&self) -> &SessionLink {
        &self.session
    }

    /// Makes the caller the owner; returns its generation.
    pub fn claim(&self) -> u64 {
        self.owner.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn owned_by(&self, generation: u64) -> bool {
        self.owner.load(Ordering::SeqCst) == generation
    }

    pub fn adopt_gauge(&self, g: Option<Gauge>) {
        if let Some(g) = g {
            let _ = self.inflight.set(g);
        }
    }

    pub fn inflight(&self) -> Option<Gauge> {
        self.inflight.get().cloned()
    }

    pub fn traces(&self) -> usize {
        self.traces.load(Ordering::Relaxed)
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn full(&self) -> bool {
        self.traces() >= self.limits.num_traces
    }

    fn shard_of(&self, id: TraceId) -> usize {
        // Trace ids are random; mixing still spreads test ids and sequential generators.
        let x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
        (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % self.shards.len()
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sub_inflight(&self, n: u64) {
        if let Some(g) = self.inflight.get() {
            g.sub(n as i64);
        }
    }

    /// Buffers the spans of `batch`, read where they lie; every trace they touch holds `acks`
    /// until it is decided. Returns what must go downstream now: spans of traces already kept,
    /// and traces decided early to make room.
    pub fn insert(&self, batch: &SpanBatch, acks: &[Ack], now: Instant) -> Released {
        let mut scratch = Vec::with_capacity(match batch.is_encoded_only() {
            true => batch.encoded_len() + batch.len(),
            false => 0,
        });
        let mut pending: Vec<Vec<Pending>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for rs in batch.resources() {
            let res_bits = self.policies.resource_bits(rs.attributes());
            let mut resource = Vec::new();
            rs.write_header(&mut resource);
            let resource: Box<[u8]> = resource.into();
            for ss in rs.scopes() {
                let mut scope = Vec::new();
                ss.write_header(&mut scope);
                let header = Arc::new(Header {
                    resource: resource.clone(),
                    scope: scope.into(),
                });
                for span in ss.spans() {
                    let id = trace_key(span.trace_id());
                    let start = scratch.len();
                    span.write_field(&mut scratch);
                    pending[self.shard_of(id)].push(Pending {
                        id,
                        header: header.clone(),
                        range: start..scratch.len(),
                        bits: res_bits | self.policies.span_bits(span),
                        start: span.start_time_unix_nano(),
                        end: span.end_time_unix_nano(),
                        root: span.parent_span_id().is_empty(),
                    });
                }
            }
        }
        let mut out = Released::default();
        for (i, items) in pending.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let mut shard = self.lock(i);
            let mut touched: Vec<TraceId> = Vec::new();
            // Spans of one trace usually arrive side by side: each run of them (one trace, one
            // header) is placed at once, its bytes written as one slice.
            let mut rest = &items[..];
            while let Some(p) = rest.first() {
                let n = rest
                    .iter()
                    .take_while(|q| q.id == p.id && Arc::ptr_eq(&q.header, &p.header))
                    .count();
                if !acks.is_empty() && touched.last() != Some(&p.id) {
                    touched.push(p.id);
                }
                self.place(&mut shard, &rest[..n], &scratch, now, &mut out);
                rest = &rest[n..];
            }
            if !acks.is_empty() {
                touched.sort_unstable();
                touched.dedup();
                for id in touched {
                    if let Some(t) = shard.traces.get_mut(&id) {
                        t.acks.extend_from_slice(acks);
                    }
                }
                // Late spans of kept traces leave now; they carry the acks too.
                for t in out.kept.iter_mut().filter(|t| t.acks.is_empty()) {
                    t.acks.extend_from_slice(acks);
                }
            }
            let max = self.limits.max_bytes;
            while max > 0 && self.bytes.load(Ordering::Relaxed) > max {
                if !self.evict_oldest(&mut shard, now, &mut out, Early::MaxBytes) {
                    break;
                }
            }
        }
        self.update_gauges();
        out
    }

    /// Places `run`, spans of one trace under one header.
    fn place(
        &self,
        shard: &mut Shard,
        run: &[Pending],
        scratch: &[u8],
        now: Instant,
        out: &mut Released,
    ) {
        let Some(first) = run.first() else {
            return;
        };
        let (id, n) = (first.id, run.len() as u64);
        fn bytes_of<'a>(
            run: &'a [Pending],
            scratch: &'a [u8],
        ) -> impl Iterator<Item = &'a [u8]> + Clone {
            run.iter().map(move |p| &scratch[p.range.clone()])
        }
        if !shard.traces.contains_key(&id) {
            if shard.sampled.contains(id) {
                self.metrics.late_sampled.inc_by(n);
                let mut t = Trace::new(id, now, 0);
                t.push(&first.header, shard.log.put(bytes_of(run, scratch)));
                t.facts.spans = n;
                out.kept.push(t);
                return;
            }
            if shard.not_sampled.contains(id) {
                self.metrics.late_not_sampled.inc_by(n);
                self.metrics.sampled_out.inc_by(n);
                self.sub_inflight(n);
                return;
            }
            if self.full() && !self.limits.block_on_overflow {
                self.evict_oldest(shard, now, out, Early::NumTraces);
            }
            let deadline = now + self.limits.wait;
            let seq = self.arrivals.fetch_add(1, Ordering::Relaxed);
            shard.traces.insert(id, Trace::new(id, deadline, seq));
            shard.order.push_back((deadline, id));
            self.traces.fetch_add(1, Ordering::Relaxed);
        }
        let Some(trace) = shard.traces.get_mut(&id) else {
            return;
        };
        let limit = self.limits.max_trace_bytes;
        let mut placed = 0;
        let mut too_large = false;
        for p in run {
            placed += 1;
            let f = &mut trace.facts;
            f.spans += 1;
            // The span's length-delimited size (its key byte aside), as contrib counts it.
            f.bytes += p.range.len() as u64 - 1;
            f.matched |= p.bits;
            f.min_start = f.min_start.min(p.start);
            f.max_end = f.max_end.max(p.end);
            if p.root {
                if let Some(after) = self.limits.after_root {
                    let d = now + after;
                    if d < trace.deadline {
                        trace.deadline = d;
                        shard.root_order.push_back((d, id));
                    }
                }
            }
            if limit > 0 && trace.facts.bytes > limit {
                too_large = true;
                break;
            }
        }
        self.spans.fetch_add(placed, Ordering::Relaxed);
        if too_large {
            // contrib drops traces over maximum_trace_size_bytes; later spans follow (the rest
            // of the run among them). The spans counted above go with it, never written.
            if let Some(t) = self.take(shard, id) {
                shard.not_sampled.insert(id);
                self.metrics.too_large.inc_by(t.facts.spans);
                self.metrics.early_too_large.inc_by(1);
                self.sub_inflight(t.facts.spans);
            }
            self.place(shard, &run[placed as usize..], scratch, now, out);
            return;
        }
        let before = trace.heap_bytes();
        trace.push(&first.header, shard.log.put(bytes_of(run, scratch)));
        let grown = trace.heap_bytes().saturating_sub(before) as u64;
        self.bytes.fetch_add(grown, Ordering::Relaxed);
    }

    /// Removes a trace from the books.
    fn take(&self, shard: &mut Shard, id: TraceId) -> Option<Trace> {
        let t = shard.traces.remove(&id)?;
        self.traces.fetch_sub(1, Ordering::Relaxed);
        self.bytes
            .fetch_sub(t.heap_bytes() as u64, Ordering::Relaxed);
        self.spans.fetch_sub(t.facts.spans, Ordering::Relaxed);
        Some(t)
    }

    /// Decides this shard's oldest trace now. False when the shard has none.
    fn evict_oldest(
        &self,
        shard: &mut Shard,
        now: Instant,
        out: &mut Released,
        why: Early,
    ) -> bool {
        while let Some((_, id)) = shard.order.pop_front() {
            if let Some(t) = self.take(shard, id) {
                match why {
                    Early::NumTraces => self.metrics.early_num_traces.inc_by(1),
                    Early::MaxBytes => self.metrics.early_max_bytes.inc_by(1),
                }
                self.decide(shard, t, now, out);
                return true;
            }
        }
        false
    }

    fn decide(&self, shard: &mut Shard, t: Trace, now: Instant, out: &mut Released) {
        let keep = self.judge(&t, now);
        self.settle(shard, t, keep, out);
    }

    /// Runs the policies (and counts their decisions). A trace of a session whose earlier
    /// trace was kept is kept too, unless a `drop` policy matched.
    fn judge(&self, t: &Trace, now: Instant) -> bool {
        let (keep, seen) = self.policies.decide(&t.facts, now);
        let dropped = seen
            .iter()
            .any(|(_, d)| *d == super::policy::Decision::Dropped);
        for (i, d) in seen {
            self.metrics.policy_decision(i, d);
        }
        if keep || dropped {
            return keep;
        }
        let by_session = self.session.get().is_some_and(|sessions| {
            sessions.session_kept(TraceId::from_be_bytes(t.facts.trace_id), now)
        });
        if by_session {
            self.metrics.kept_by_session.inc_by(1);
        }
        by_session
    }

    /// Records a decision in the caches and the books; kept traces go to `out`.
    fn settle(&self, shard: &mut Shard, t: Trace, keep: bool, out: &mut Released) {
        let id = TraceId::from_be_bytes(t.facts.trace_id);
        if keep {
            if let Some(sessions) = self.session.get() {
                sessions.mark_kept(id, Instant::now());
            }
            shard.sampled.insert(id);
            self.metrics.traces_kept.inc_by(1);
            out.kept.push(t);
        } else {
            shard.not_sampled.insert(id);
            self.metrics.traces_dropped.inc_by(1);
            self.metrics.sampled_out.inc_by(t.facts.spans);
            self.sub_inflight(t.facts.spans);
        }
    }

    /// Decides every trace whose wait is over, in arrival order.
    pub fn decide_due(&self, now: Instant) -> Released {
        let mut due: Vec<(usize, Trace)> = Vec::new();
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            for root in [false, true] {
                loop {
                    let queue = if root {
                        &mut shard.root_order
                    } else {
                        &mut shard.order
                    };
                    match queue.front() {
                        Some((d, _)) if *d <= now => {}
                        _ => break,
                    }
                    let Some((_, id)) = queue.pop_front() else {
                        break;
                    };
                    // A trace decided earlier, or a newer trace reusing the id, is skipped.
                    let ready = shard.traces.get(&id).is_some_and(|t| t.deadline <= now);
                    if ready {
                        if let Some(t) = self.take(&mut shard, id) {
                            due.push((i, t));
                        }
                    }
                }
            }
        }
        due.sort_unstable_by_key(|(_, t)| t.seq);
        let mut out = Released::default();
        for (i, t) in due {
            let keep = self.judge(&t, now);
            self.settle(&mut self.lock(i), t, keep, &mut out);
        }
        self.update_gauges();
        out
    }

    /// Shutdown: decide everything still waiting (or drop it, counted, when configured to).
    pub fn decide_all(&self, now: Instant, drop: bool) -> Released {
        let mut out = Released::default();
        for i in 0..self.shards.len() {
            let mut shard = self.lock(i);
            let ids: Vec<TraceId> = shard.order.drain(..).map(|(_, id)| id).collect();
            shard.root_order.clear();
            for id in ids {
                let Some(t) = self.take(&mut shard, id) else {
                    continue;
                };
                if drop {
                    self.metrics.shutdown_dropped.inc_by(t.facts.spans);
                    self.sub_inflight(t.facts.spans);
                } else {
                    self.decide(&mut shard, t, now, &mut out);
                }
            }
        }
        self.update_gauges();
        out
    }

    fn update_gauges(&self) {
        self.metrics.traces_buffered.set(self.traces() as i64);
        self.metrics
            .bytes_buffered
            .set(self.buffered_bytes() as i64);
    }
}

impl Drop for Store {
    // Reached with spans only when the processor task was aborted at the shutdown deadline.
    fn drop(&mut self) {
        let spans = self.spans.load(Ordering::Relaxed);
        if spans > 0 {
            self.metrics.shutdown_dropped.inc_by(spans);
            self.sub_inflight(spans);
            tracing::warn!(
                spans,
                "tail sampling: spans still waiting at the shutdown deadline, counted as dropped"
            );
        }
    }
}
