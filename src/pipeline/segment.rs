//! A pipeline is a chain of segments: inline processors, then a hop to the next staged
//! processor's bounded channel or to the exporters. The receiver runs the first segment; each
//! staged processor runs the segment after it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::component::{BoxFuture, Consumer, InlineProcessor, Output, Refusal, Verdict};
use crate::data::SpanBatch;
use crate::pipeline::queue::{Cost, ExporterHandle};
use crate::pipeline::queue::{DirectExport, QueueFull, Slot};
use crate::telemetry::metrics::{Counter, Gauge};

pub struct Inline {
    pub id: String,
    pub processor: Box<dyn InlineProcessor>,
    /// Counts spans of a batch this processor refuses after a staged processor, where the
    /// receiver has already answered and refusing is no longer possible.
    pub refused_late: Counter,
}

pub enum Hop {
    /// Into a staged processor; `loss` counts what its task still holds if it is aborted.
    /// `durable`: it holds spans briefly and everything after it ends in disk queues.
    Stage {
        tx: mpsc::Sender<SpanBatch>,
        loss: Counter,
        durable: bool,
    },
    /// Fan-out to every exporter of the pipeline.
    Exporters(Vec<Arc<ExporterHandle>>),
}

pub struct Segment {
    pub inline: Vec<Inline>,
    pub next: Hop,
}

/// A reserved place for one batch at a segment's hop.
pub enum Reservation<'a> {
    Stage(mpsc::Permit<'a, SpanBatch>, &'a Counter),
    Exporters(Vec<Slot<'a>>),
}

impl Reservation<'_> {
    /// Sends; collects into `direct` the exports to await when some exporter runs without a
    /// queue. `Err` when a disk queue could not write (a full disk): the exporters after it
    /// get nothing, those before it keep their copy (a retry then duplicates, never loses).
    pub fn send(
        self,
        mut batch: SpanBatch,
        direct: &mut Vec<DirectExport>,
    ) -> Result<(), QueueFull> {
        match self {
            Reservation::Stage(permit, loss) => {
                batch.set_holder(Some(loss.clone()));
                permit.send(batch);
                Ok(())
            }
            Reservation::Exporters(slots) => {
                batch.set_holder(None);
                let shared = Arc::new(batch);
                for slot in slots {
                    direct.extend(slot.send(shared.clone())?);
                }
                Ok(())
            }
        }
    }
}

impl Segment {
    /// True when every path from here ends in exporters with a disk queue, through staged
    /// processors that hold spans only briefly: spans handed here are soon on disk.
    pub fn durable(&self) -> bool {
        match &self.next {
            Hop::Stage { durable, .. } => *durable,
            Hop::Exporters(handles) => !handles.is_empty() && handles.iter().all(|h| h.is_disk()),
        }
    }

    /// Runs the inline processors in order. Stops early on an emptied batch or a refusal, and
    /// then names the refusing processor.
    pub fn run_inline(&self, batch: &mut SpanBatch) -> Result<(), (&Inline, Duration)> {
        for p in &self.inline {
            if batch.is_empty() {
                break;
            }
            if let Verdict::Refuse { retry_after } = p.processor.process(batch) {
                return Err((p, retry_after));
            }
        }
        Ok(())
    }

    /// Reserves room at the hop for `batch` without waiting; `None` when full. `cost` is the
    /// batch's [`Cost`], computed once for every pipeline, and only when an exporter queue needs it.
    pub fn try_reserve<'a>(
        &'a self,
        batch: &SpanBatch,
        cost: &mut Option<Cost>,
    ) -> Option<Reservation<'a>> {
        match &self.next {
            Hop::Stage { tx, loss, .. } => {
                tx.try_reserve().ok().map(|p| Reservation::Stage(p, loss))
            }
            Hop::Exporters(handles) => {
                let cost = *cost.get_or_insert_with(|| Cost::of(batch));
                let mut slots = Vec::with_capacity(handles.len());
                for h in handles {
                    slots.push(h.try_reserve(cost).ok()?);
                }
                Some(Reservation::Exporters(slots))
            }
        }
    }

    /// Processes and forwards a batch, waiting for room (used after staged processors, where
    /// waiting is the backpressure that eventually makes receivers refuse).
    pub async fn send(&self, mut batch: SpanBatch) {
        if let Err((p, _)) = self.run_inline(&mut batch) {
            // Only reachable with a refusing processor placed after a staged one: the client
            // has its answer already, so the refusal becomes a counted drop.
            p.refused_late.inc_by(batch.len() as u64);
            batch.recount_as_dropped();
            return;
        }
        if batch.is_empty() {
            return;
        }
        match &self.next {
            Hop::Stage { tx, loss, .. } => {
                batch.set_holder(Some(loss.clone()));
                // A closed channel means the next stage was aborted at the deadline; the batch
                // drops here and its holder counts it.
                let _ = tx.send(batch).await;
            }
            Hop::Exporters(handles) => {
                batch.set_holder(None);
                let cost = Cost::of(&batch);
                let shared = Arc::new(batch);
                for h in handles {
                    h.send(shared.clone(), cost).await;
                }
            }
        }
    }
}

/// The first segment of one pipeline, as a receiver sees it.
pub struct Head {
    pub pipeline: String,
    pub segment: Segment,
    pub inflight: Gauge,
    /// The pipeline's exporters, wherever its segments end (for [`Fanout::unwritable`]).
    pub exporters: Vec<Arc<ExporterHandle>>,
}

/// Everything one receiver feeds: one head per pipeline that names it.
pub struct Fanout {
    pub heads: Vec<Arc<Head>>,
}

impl Fanout {
    /// True when every pipeline this feeds is [`Segment::durable`]: a receiver can then answer
    /// once its spans are on disk rather than once they are queued in memory.
    pub fn durable(&self) -> bool {
        !self.heads.is_empty() && self.heads.iter().all(|h| h.segment.durable())
    }

    /// True while a disk queue of these pipelines cannot write (a full disk): spans waiting to
    /// be written will not be soon.
    pub fn unwritable(&self) -> bool {
        self.heads
            .iter()
            .any(|h| h.exporters.iter().any(|e| e.unwritable()))
    }

    /// All or nothing: every pipeline gets its copy, or none does and the caller refuses.
    pub async fn consume(&self, batch: SpanBatch) -> Result<(), Refusal> {
        let mut reservations = Vec::with_capacity(self.heads.len());
        let mut cost = None;
        for head in &self.heads {
            let reservation = head.segment.try_reserve(&batch, &mut cost);
            reservations.push(reservation.ok_or(Refusal::Full)?);
        }
        let mut copies = Vec::with_capacity(self.heads.len());
        let mut original = Some(batch);
        for (i, head) in self.heads.iter().enumerate() {
            // The last pipeline takes the original; the others get copies.
            let mut b = if i + 1 == self.heads.len() {
                original
                    .take()
                    .unwrap_or_else(|| SpanBatch::new(Vec::new()))
            } else {
                original
                    .as_ref()
                    .map(SpanBatch::duplicate)
                    .unwrap_or_else(|| SpanBatch::new(Vec::new()))
            };
            b.track(head.inflight.clone());
            if let Err((_, retry_after)) = head.segment.run_inline(&mut b) {
                return Err(Refusal::Refused { retry_after });
            }
            copies.push(b);
        }
        let mut direct = Vec::new();
        let mut written = Ok(());
        for (reservation, b) in reservations.into_iter().zip(copies) {
            if b.is_empty() {
                continue;
            }
            if reservation.send(b, &mut direct).is_err() {
                written = Err(Refusal::Full);
                break;
            }
        }
        for d in direct {
            d.run().await;
        }
        written
    }
}

impl Consumer for Fanout {
    fn consume(&self, batch: SpanBatch) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(Fanout::consume(self, batch))
    }
    fn durable(&self) -> bool {
        Fanout::durable(self)
    }
    fn unwritable(&self) -> bool {
        Fanout::unwritable(self)
    }
}

impl Output for Segment {
    fn send(&self, batch: SpanBatch) -> BoxFuture<'_, ()> {
        Box::pin(Segment::send(self, batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metrics;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn batch(names: &[&str]) -> SpanBatch {
        SpanBatch::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| Span {
                        name: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn names(b: &SpanBatch) -> Vec<String> {
        b.resource_spans()
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    /// Drops spans named "drop" (counting them), refuses a batch holding "refuse".
    struct Filter(Counter);

    impl InlineProcessor for Filter {
        fn process(&self, batch: &mut SpanBatch) -> Verdict {
            if names(batch).iter().any(|n| n == "refuse") {
                return Verdict::Refuse {
                    retry_after: Duration::from_secs(2),
                };
            }
            let mut dropped = 0;
            for rs in batch.resource_spans_mut() {
                for ss in &mut rs.scope_spans {
                    let before = ss.spans.len();
                    ss.spans.retain(|s| s.name != "drop");
                    dropped += before - ss.spans.len();
                }
            }
            self.0.inc_by(dropped as u64);
            batch.recount();
            Verdict::Continue
        }
    }

    /// Appends a suffix to every span name, to show the order processors run in.
    struct Suffix(&'static str);

    impl InlineProcessor for Suffix {
        fn process(&self, batch: &mut SpanBatch) -> Verdict {
            for rs in batch.resource_spans_mut() {
                for ss in &mut rs.scope_spans {
                    for s in &mut ss.spans {
                        s.name.push_str(self.0);
                    }
                }
            }
            Verdict::Continue
        }
    }

    fn inline(m: &Metrics, p: Box<dyn InlineProcessor>) -> Inline {
        Inline {
            id: "test".into(),
            processor: p,
            refused_late: m.processor_dropped("test", "refused"),
        }
    }

    fn head(
        m: &Metrics,
        pipeline: &str,
        capacity: usize,
        inline: Vec<Inline>,
    ) -> (Arc<Head>, mpsc::Receiver<SpanBatch>) {
        let (tx, rx) = mpsc::channel(capacity);
        let head = Head {
            pipeline: pipeline.into(),
            inflight: m.pipeline_inflight(pipeline),
            exporters: Vec::new(),
            segment: Segment {
                inline,
                next: Hop::Stage {
                    tx,
                    loss: m.processor_dropped(pipeline, "shutdown"),
                    durable: false,
                },
            },
        };
        (Arc::new(head), rx)
    }

    #[tokio::test]
    async fn inline_processors_run_in_order_and_count_drops() {
        let m = Metrics::default();
        let dropped = m.processor_dropped("filter", "filtered");
        let (h, mut rx) = head(
            &m,
            "traces",
            4,
            vec![
                inline(&m, Box::new(Suffix("-a"))),
                inline(&m, Box::new(Filter(dropped.clone()))),
                inline(&m, Box::new(Suffix("-b"))),
            ],
        );
        let fanout = Fanout { heads: vec![h] };
        // "drop-a" is not "drop": the first suffix ran before the filter.
        fanout.consume(batch(&["x", "drop"])).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(names(&got), vec!["x-a-b", "drop-a-b"]);
        assert_eq!(dropped.get(), 0);
        let (h, mut rx) = head(
            &m,
            "traces/f",
            4,
            vec![inline(&m, Box::new(Filter(dropped.clone())))],
        );
        let fanout = Fanout { heads: vec![h] };
        fanout.consume(batch(&["x", "drop", "drop"])).await.unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(names(&got), vec!["x"]);
        assert_eq!(got.len(), 1);
        assert_eq!(dropped.get(), 2);
        assert_eq!(m.pipeline_inflight("traces/f").get(), 1);
        drop(got);
        assert_eq!(m.pipeline_inflight("traces/f").get(), 0);
    }

    #[tokio::test]
    async fn fan_out_is_all_or_nothing() {
        let m = Metrics::default();
        let (a, mut rx_a) = head(&m, "a", 1, vec![]);
        let (b, mut rx_b) = head(
            &m,
            "b",
            2,
            vec![inline(&m, Box::new(Filter(Counter::default())))],
        );
        let fanout = Fanout { heads: vec![a, b] };
        fanout.consume(batch(&["one"])).await.unwrap();
        // `a` is full now: the next request is refused and `b` gets nothing either.
        assert_eq!(fanout.consume(batch(&["two"])).await, Err(Refusal::Full));
        // A processor refusal in one pipeline also sends nothing to the other.
        rx_a.recv().await.unwrap();
        assert_eq!(
            fanout.consume(batch(&["refuse"])).await,
            Err(Refusal::Refused {
                retry_after: Duration::from_secs(2)
            })
        );
        assert_eq!(names(&rx_b.recv().await.unwrap()), vec!["one"]);
        assert!(rx_a.try_recv().is_err());
        assert!(rx_b.try_recv().is_err());
        assert_eq!(m.pipeline_inflight("a").get(), 0);
        assert_eq!(m.pipeline_inflight("b").get(), 0);
        // Each pipeline got its own copy; accounting is per pipeline.
        fanout.consume(batch(&["three", "four"])).await.unwrap();
        assert_eq!(m.pipeline_inflight("a").get(), 2);
        assert_eq!(m.pipeline_inflight("b").get(), 2);
    }

    #[tokio::test]
    async fn batch_dropped_in_a_stage_channel_counts_as_lost() {
        let m = Metrics::default();
        let (h, rx) = head(&m, "traces", 4, vec![]);
        let fanout = Fanout { heads: vec![h] };
        fanout.consume(batch(&["x", "y"])).await.unwrap();
        // The stage was aborted at the deadline: its channel drops with the batch inside.
        drop(rx);
        assert_eq!(m.processor_dropped("traces", "shutdown").get(), 2);
        assert_eq!(m.pipeline_inflight("traces").get(), 0);
    }
}
