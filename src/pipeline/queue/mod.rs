//! The bounded sending queue, its consumers, and the retry loop around one exporter.
//!
//! Accounting: each batch handed to an exporter is wrapped in a [`Queued`] guard that counts its
//! spans as sent or failed exactly once, including when the task holding it is aborted at the
//! shutdown deadline or the queue is dropped with batches still in it.

pub mod disk;
pub mod wal;

use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::component::{ExportError, Exporter};
use crate::config::ComponentId;
use crate::data::SpanBatch;
use crate::settings::queue::{HelperSettings, Sizer};
use crate::telemetry::metrics::{Counter, Gauge, Histogram};
use crate::telemetry::Telemetry;
use disk::{DiskQueue, DiskSlot};
use wal::WalError;

/// One exporter with its metrics and settings; runs export attempts with retry.
pub struct Runner {
    id: String,
    exporter: Arc<dyn Exporter>,
    settings: HelperSettings,
    sent: Counter,
    failed: Counter,
    latency: Histogram,
}

/// What one batch takes of a queue: its spans and encoded bytes (computed once per batch, for
/// every exporter it goes to).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub spans: usize,
    pub bytes: usize,
}

impl Cost {
    pub fn of(batch: &SpanBatch) -> Cost {
        Cost {
            spans: batch.len(),
            bytes: batch.encoded_len(),
        }
    }
}

/// A batch owned by one exporter until it is counted.
pub struct Queued {
    batch: Arc<SpanBatch>,
    runner: Arc<Runner>,
    counted: bool,
    /// From the disk queue: unsent, it stays there for the next run instead of failing.
    durable: bool,
    /// In a memory queue: the room it takes there, given back when a consumer takes it.
    room: Option<Room>,
}

/// A batch's share of a memory queue: its units of the sizer, and what it adds to the gauges.
struct Room {
    _units: OwnedSemaphorePermit,
    units: usize,
    bytes: usize,
}

impl Room {
    fn new(permit: OwnedSemaphorePermit, units: usize, cost: Cost) -> Room {
        Room {
            _units: permit,
            units,
            bytes: cost.bytes,
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        if !self.counted && self.durable && !self.batch.is_empty() {
            tracing::info!(
                exporter = %self.runner.id,
                spans = self.batch.len(),
                "export cut short by the shutdown; the batch stays in the disk queue"
            );
        } else if !self.counted && !self.batch.is_empty() {
            self.runner.failed.inc_by(self.batch.len() as u64);
            tracing::warn!(
                exporter = %self.runner.id,
                spans = self.batch.len(),
                "spans not exported before the shutdown deadline, counted as failed"
            );
        }
    }
}

impl Queued {
    fn new(batch: Arc<SpanBatch>, runner: Arc<Runner>) -> Self {
        Queued {
            batch,
            runner,
            counted: false,
            durable: false,
            room: None,
        }
    }

    /// A batch read back from the disk queue.
    pub fn durable(batch: Arc<SpanBatch>, runner: Arc<Runner>) -> Self {
        let mut q = Queued::new(batch, runner);
        q.durable = true;
        q
    }

    pub async fn run(mut self) {
        let (sent, failed) = self.runner.send_with_retry(&self.batch).await;
        self.runner.sent.inc_by(sent);
        self.runner.failed.inc_by(failed);
        self.counted = true;
    }
}

impl Runner {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn count_failed(&self, spans: u64) {
        self.failed.inc_by(spans);
    }

    /// Exports with retry; returns (sent, failed) span counts.
    async fn send_with_retry(&self, batch: &SpanBatch) -> (u64, u64) {
        let n = batch.len() as u64;
        if n == 0 {
            return (0, 0);
        }
        let started = Instant::now();
        let mut backoff = self.settings.retry.backoff();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let t0 = Instant::now();
            let result = match tokio::time::timeout(
                self.settings.timeout,
                self.exporter.export(batch),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ExportError::Retryable {
                    reason: format!("timed out after {:?}", self.settings.timeout),
                    retry_after: None,
                }),
            };
            self.latency.observe(t0.elapsed());
            match result {
                Ok(()) => return (n, 0),
                Err(ExportError::Permanent { reason, rejected }) => {
                    let rejected = rejected.unwrap_or(n).min(n);
                    tracing::error!(exporter = %self.id, spans = rejected, %reason, "export failed permanently, spans dropped");
                    return (n - rejected, rejected);
                }
                Err(ExportError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    let retry = &self.settings.retry;
                    let delay = retry_after.unwrap_or_else(|| backoff.next_delay());
                    let budget_left = retry.max_elapsed_time.is_zero()
                        || started.elapsed() + delay <= retry.max_elapsed_time;
                    if !retry.enabled || !budget_left {
                        tracing::error!(exporter = %self.id, spans = n, attempt, %reason, "export failed, no retries left, spans dropped");
                        return (0, n);
                    }
                    tracing::warn!(exporter = %self.id, attempt, delay = ?delay, %reason, "export failed, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// How pipelines reach one exporter; shared by every pipeline that names it.
pub struct ExporterHandle {
    pub id: ComponentId,
    runner: Arc<Runner>,
    /// `None` when `sending_queue.enabled: false` (senders export directly) or on disk.
    tx: Option<mpsc::Sender<Queued>>,
    /// With `tx`: the queue's capacity in units of its sizer.
    units: Option<Units>,
    /// `sending_queue.storage`: the queue is a write-ahead log.
    disk: Option<Arc<DiskQueue>>,
}

/// A memory queue's capacity, in units of its sizer, and its gauges.
struct Units {
    sizer: Sizer,
    room: Arc<Semaphore>,
    capacity: usize,
    gauges: QueueGauges,
}

/// What a memory queue holds: units of its sizer (`spangate_exporter_queue_size`), batches and
/// bytes.
#[derive(Clone)]
struct QueueGauges {
    units: Gauge,
    batches: Gauge,
    bytes: Gauge,
}

impl QueueGauges {
    fn add(&self, room: &Room) {
        self.units.add(room.units as i64);
        self.batches.add(1);
        self.bytes.add(room.bytes as i64);
    }

    fn sub(&self, room: &Room) {
        self.units.sub(room.units as i64);
        self.batches.sub(1);
        self.bytes.sub(room.bytes as i64);
    }
}

impl Units {
    /// The units `cost` takes; one batch larger than the whole queue takes all of it (it goes
    /// in alone, once the queue is empty).
    fn of(&self, cost: Cost) -> usize {
        self.sizer
            .cost(cost.spans, cost.bytes)
            .clamp(1, self.capacity)
    }

    fn try_take(&self, cost: Cost) -> Option<Room> {
        let units = self.of(cost);
        let permit = self.room.clone().try_acquire_many_owned(units as u32);
        Some(Room::new(permit.ok()?, units, cost))
    }

    async fn take(&self, cost: Cost) -> Option<Room> {
        let units = self.of(cost);
        let permit = self.room.clone().acquire_many_owned(units as u32).await;
        Some(Room::new(permit.ok()?, units, cost))
    }
}

impl Drop for ExporterHandle {
    fn drop(&mut self) {
        if let Some(d) = &self.disk {
            d.close();
        }
    }
}

/// A reserved queue slot (or nothing to reserve for a direct exporter).
pub struct Slot<'a> {
    handle: &'a ExporterHandle,
    place: Place<'a>,
}

enum Place<'a> {
    Memory(mpsc::Permit<'a, Queued>, Room),
    Disk(&'a DiskQueue, DiskSlot<'a>),
    Direct,
}

impl Slot<'_> {
    /// Fills the slot; for a direct exporter, returns the export to await. `Err` when a disk
    /// queue could not write the batch (a full disk): nothing was taken, the sender refuses.
    pub fn send(self, batch: Arc<SpanBatch>) -> Result<Option<DirectExport>, QueueFull> {
        match self.place {
            Place::Memory(p, room) => {
                if let Some(u) = &self.handle.units {
                    u.gauges.add(&room);
                }
                let mut queued = Queued::new(batch, self.handle.runner.clone());
                queued.room = Some(room);
                p.send(queued);
                Ok(None)
            }
            Place::Disk(q, slot) => q.write(slot, &batch).map(|_| None).map_err(|_| QueueFull),
            Place::Direct => Ok(Some(DirectExport(Queued::new(
                batch,
                self.handle.runner.clone(),
            )))),
        }
    }
}

/// An export the sender awaits itself (queue disabled).
pub struct DirectExport(Queued);

impl DirectExport {
    pub async fn run(self) {
        self.0.run().await
    }
}

#[derive(Debug, PartialEq)]
pub struct QueueFull;

impl ExporterHandle {
    /// True while its disk queue cannot write (a full disk) and takes nothing.
    pub fn unwritable(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.unwritable())
    }

    /// True when batches handed over are written to a disk queue before `send` returns.
    pub fn is_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Reserves room for a batch of `cost` without waiting; `Err` when the queue is full.
    pub fn try_reserve(&self, cost: Cost) -> Result<Slot<'_>, QueueFull> {
        let place = match (&self.tx, &self.units, &self.disk) {
            (Some(tx), Some(units), _) => {
                let room = units.try_take(cost).ok_or(QueueFull)?;
                Place::Memory(tx.try_reserve().map_err(|_| QueueFull)?, room)
            }
            (Some(_), None, _) => unreachable!("a memory queue has its units"),
            (None, _, Some(d)) => Place::Disk(d, d.try_reserve().ok_or(QueueFull)?),
            (None, _, None) => Place::Direct,
        };
        Ok(Slot {
            handle: self,
            place,
        })
    }

    /// Hands a batch of `cost` over, waiting for queue space (or for the export, when direct).
    pub async fn send(&self, batch: Arc<SpanBatch>, cost: Cost) {
        if let Some(d) = &self.disk {
            return d.send(&batch).await;
        }
        let mut queued = Queued::new(batch, self.runner.clone());
        match (&self.tx, &self.units) {
            (Some(tx), Some(units)) => match (units.take(cost).await, tx.reserve().await) {
                (Some(room), Ok(permit)) => {
                    units.gauges.add(&room);
                    queued.room = Some(room);
                    permit.send(queued);
                }
                // The consumer side only goes away when aborted at the deadline; `queued`
                // drops here and is counted as failed.
                _ => drop(queued),
            },
            _ => queued.run().await,
        }
    }
}

/// Builds the queue and starts its consumers. The returned task ends when every handle clone is
/// dropped and the queue is drained (a disk queue keeps what is left for the next run).
pub fn start(
    id: &ComponentId,
    exporter: Arc<dyn Exporter>,
    settings: HelperSettings,
    telemetry: &Telemetry,
) -> Result<(Arc<ExporterHandle>, JoinHandle<()>), WalError> {
    let name = id.to_string();
    let m = &telemetry.metrics;
    let runner = Arc::new(Runner {
        id: name.clone(),
        exporter,
        sent: m.exporter_sent(&name),
        failed: m.exporter_send_failed(&name),
        latency: m.exporter_latency(&name),
        settings: settings.clone(),
    });
    let queue_size = m.exporter_queue_size(&name);
    let capacity = m.exporter_queue_capacity(&name);
    if !settings.queue.enabled {
        capacity.set(0);
        let handle = Arc::new(ExporterHandle {
            id: id.clone(),
            runner,
            tx: None,
            units: None,
            disk: None,
        });
        return Ok((handle, tokio::spawn(async {})));
    }
    if let Some(storage) = &settings.queue.storage {
        capacity.set(settings.queue.queue_size as i64);
        let dir = std::path::Path::new(storage).join(name.replace('/', "_"));
        let queue = DiskQueue::open(
            &dir,
            settings.queue.queue_size,
            settings.queue.max_size_mib.saturating_mul(1024 * 1024),
            settings.queue.fsync_interval.is_zero(),
            queue_size,
            m.exporter_queue_bytes(&name),
            runner.clone(),
        )?;
        let task = tokio::spawn({
            let q = queue.clone();
            let every = settings.queue.fsync_interval;
            async move {
                let sync = tokio::spawn(disk::sync_every(q.clone(), every));
                disk::consume(q.clone(), settings.queue.num_consumers).await;
                // A last flush of what this instance wrote.
                let _ = tokio::task::spawn_blocking(move || q.shared.wal.sync()).await;
                sync.abort();
            }
        });
        let handle = Arc::new(ExporterHandle {
            id: id.clone(),
            runner,
            tx: None,
            units: None,
            disk: Some(queue),
        });
        return Ok((handle, task));
    }
    // Every batch takes at least one unit, so `queue_size` batches is also the most the
    // channel ever holds; the units bound it first.
    let size = settings.queue.queue_size.min(MAX_UNITS);
    capacity.set(size as i64);
    let (tx, rx) = mpsc::channel(size);
    let gauges = QueueGauges {
        units: queue_size,
        batches: m.exporter_queue_batches(&name),
        bytes: m.exporter_queue_bytes(&name),
    };
    let task = tokio::spawn(consume(rx, settings.queue.num_consumers, gauges.clone()));
    let handle = Arc::new(ExporterHandle {
        id: id.clone(),
        runner,
        tx: Some(tx),
        units: Some(Units {
            sizer: settings.queue.sizer,
            room: Arc::new(Semaphore::new(size)),
            capacity: size,
            gauges,
        }),
        disk: None,
    });
    Ok((handle, task))
}

/// The most units a memory queue has: a tokio semaphore takes at most `u32::MAX` at once (4 GiB
/// with `sizer: bytes`, far above any memory limit).
const MAX_UNITS: usize = u32::MAX as usize;

async fn consume(mut rx: mpsc::Receiver<Queued>, consumers: usize, gauges: QueueGauges) {
    let slots = Arc::new(Semaphore::new(consumers));
    let mut running = JoinSet::new();
    loop {
        // A free consumer first, then a batch: the queue then holds exactly `queue_size`.
        // The semaphore is never closed, so acquiring only waits.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(mut item) = rx.recv().await else {
            break;
        };
        // Out of the queue: its room is free for the next batch.
        if let Some(room) = item.room.take() {
            gauges.sub(&room);
        }
        running.spawn(async move {
            item.run().await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Test helper: polls until `f` is true (5s at most).
#[cfg(test)]
pub(crate) async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not met in 5s");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::BoxFuture;
    use crate::settings::queue::{QueueConfig, RetryConfig};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// Fails `fail_first` times with a retryable error, then succeeds.
    struct Flaky {
        calls: AtomicU32,
        fail_first: u32,
        permanent: bool,
    }

    impl Exporter for Flaky {
        fn export<'a>(&'a self, _: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
            Box::pin(async move {
                let c = self.calls.fetch_add(1, Ordering::SeqCst);
                if self.permanent {
                    return Err(ExportError::Permanent {
                        reason: "bad".into(),
                        rejected: Some(1),
                    });
                }
                if c < self.fail_first {
                    Err(ExportError::Retryable {
                        reason: "down".into(),
                        retry_after: None,
                    })
                } else {
                    Ok(())
                }
            })
        }
    }

    fn settings(queue: bool) -> HelperSettings {
        HelperSettings {
            timeout: Duration::from_secs(1),
            retry: RetryConfig {
                initial_interval: Duration::from_millis(5),
                max_interval: Duration::from_millis(10),
                ..Default::default()
            },
            queue: QueueConfig {
                enabled: queue,
                queue_size: 2,
                num_consumers: 1,
                ..Default::default()
            },
        }
    }

    /// A cost the default sizer (requests) counts as one batch.
    const ONE: Cost = Cost { spans: 1, bytes: 1 };

    fn batch(n: usize) -> Arc<SpanBatch> {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        Arc::new(SpanBatch::new(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }]))
    }

    #[tokio::test]
    async fn retries_then_counts_sent() {
        let t = Telemetry::new();
        let id = ComponentId::parse("otlp/x").unwrap();
        let exp = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            fail_first: 2,
            permanent: false,
        });
        let (h, task) = start(&id, exp.clone(), settings(true), &t).unwrap();
        h.send(batch(3), ONE).await;
        drop(h);
        task.await.unwrap();
        assert_eq!(exp.calls.load(Ordering::SeqCst), 3);
        assert_eq!(t.metrics.exporter_sent("otlp/x").get(), 3);
        assert_eq!(t.metrics.exporter_send_failed("otlp/x").get(), 0);
        assert_eq!(t.metrics.exporter_queue_size("otlp/x").get(), 0);
        assert_eq!(t.metrics.exporter_latency("otlp/x").count(), 3);
    }

    /// Always throttled, with the backend's hint; records when each attempt came.
    struct Throttled {
        calls: std::sync::Mutex<Vec<tokio::time::Instant>>,
    }

    impl Exporter for Throttled {
        fn export<'a>(&'a self, _: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
            Box::pin(async move {
                self.calls.lock().unwrap().push(tokio::time::Instant::now());
                Err(ExportError::Retryable {
                    reason: "slow down".into(),
                    retry_after: Some(Duration::from_secs(7)),
                })
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_gives_up_at_max_elapsed() {
        let t = Telemetry::new();
        let id = ComponentId::parse("otlp/throttled").unwrap();
        let exp = Arc::new(Throttled {
            calls: Default::default(),
        });
        let mut s = settings(false);
        s.retry.max_elapsed_time = Duration::from_secs(20);
        let (h, _task) = start(&id, exp.clone(), s, &t).unwrap();
        h.send(batch(2), ONE).await;
        let calls = exp.calls.lock().unwrap().clone();
        // 0s, 7s, 14s; a fourth at 21s would pass max_elapsed_time.
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[1] - calls[0], Duration::from_secs(7));
        assert_eq!(calls[2] - calls[1], Duration::from_secs(7));
        assert_eq!(t.metrics.exporter_send_failed("otlp/throttled").get(), 2);
    }

    #[tokio::test]
    async fn permanent_partial_rejection_and_direct_mode() {
        let t = Telemetry::new();
        let id = ComponentId::parse("otlp/p").unwrap();
        let exp = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            fail_first: 0,
            permanent: true,
        });
        let (h, _task) = start(&id, exp.clone(), settings(false), &t).unwrap();
        let slot = h.try_reserve(ONE).unwrap();
        slot.send(batch(4)).unwrap().unwrap().run().await;
        assert_eq!(
            exp.calls.load(Ordering::SeqCst),
            1,
            "permanent errors are not retried"
        );
        assert_eq!(t.metrics.exporter_sent("otlp/p").get(), 3);
        assert_eq!(t.metrics.exporter_send_failed("otlp/p").get(), 1);
    }

    #[tokio::test]
    async fn full_queue_refuses_and_abort_counts_failed() {
        let t = Telemetry::new();
        let id = ComponentId::parse("otlp/down").unwrap();
        let exp = Arc::new(Flaky {
            calls: AtomicU32::new(0),
            fail_first: u32::MAX,
            permanent: false,
        });
        let (h, task) = start(&id, exp, settings(true), &t).unwrap();
        // One in the consumer (retrying forever), two queued: the fourth reservation fails.
        for _ in 0..3 {
            h.try_reserve(ONE).unwrap().send(batch(1)).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.try_reserve(ONE).err(), Some(QueueFull));
        task.abort();
        let _ = task.await;
        drop(h);
        wait_until(|| t.metrics.exporter_send_failed("otlp/down").get() == 3).await;
        assert_eq!(t.metrics.exporter_sent("otlp/down").get(), 0);
    }

    /// Fails (retryably) until `up` is set, counting the spans it accepted.
    struct Switch {
        up: std::sync::atomic::AtomicBool,
        spans: AtomicU32,
    }

    impl Exporter for Switch {
        fn export<'a>(&'a self, b: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
            Box::pin(async move {
                if self.up.load(Ordering::SeqCst) {
                    self.spans.fetch_add(b.len() as u32, Ordering::SeqCst);
                    Ok(())
                } else {
                    Err(ExportError::Retryable {
                        reason: "down".into(),
                        retry_after: None,
                    })
                }
            })
        }
    }

    fn disk_settings(dir: &std::path::Path, queue_size: usize) -> HelperSettings {
        let mut s = settings(true);
        s.retry.max_elapsed_time = Duration::ZERO;
        s.queue = QueueConfig {
            queue_size,
            num_consumers: 2,
            storage: Some(dir.display().to_string()),
            fsync_interval: Duration::from_millis(10),
            ..Default::default()
        };
        s
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disk_queue_keeps_batches_across_a_crash_and_sends_them_after() {
        let dir = tempfile::tempdir().unwrap();
        let id = ComponentId::parse("otlp/disk").unwrap();
        let t = Telemetry::new();
        let down = Arc::new(Switch {
            up: false.into(),
            spans: AtomicU32::new(0),
        });
        let (h, task) = start(&id, down.clone(), disk_settings(dir.path(), 100), &t).unwrap();
        for n in [3, 4, 5] {
            let slot = h.try_reserve(ONE).unwrap();
            assert!(slot.send(batch(n)).unwrap().is_none());
        }
        assert_eq!(t.metrics.exporter_queue_size("otlp/disk").get(), 3);
        assert!(t.metrics.exporter_queue_bytes("otlp/disk").get() > 0);
        // The process dies: exports under way are cut, nothing is counted as failed.
        task.abort();
        let _ = task.await;
        drop(h);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(t.metrics.exporter_send_failed("otlp/disk").get(), 0);
        assert_eq!(t.metrics.exporter_sent("otlp/disk").get(), 0);

        // The next run finds them and sends them.
        let t2 = Telemetry::new();
        let up = Arc::new(Switch {
            up: true.into(),
            spans: AtomicU32::new(0),
        });
        let (h, task) = start(&id, up.clone(), disk_settings(dir.path(), 100), &t2).unwrap();
        wait_until(|| t2.metrics.exporter_sent("otlp/disk").get() == 12).await;
        wait_until(|| t2.metrics.exporter_queue_size("otlp/disk").get() == 0).await;
        assert_eq!(up.spans.load(Ordering::SeqCst), 12);
        // Finished segments go at the next sync (every 10 ms here).
        wait_until(|| t2.metrics.exporter_queue_bytes("otlp/disk").get() == 0).await;
        drop(h);
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_queue_refuses_and_a_waiting_sender_gets_in_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let id = ComponentId::parse("otlp/full").unwrap();
        let t = Telemetry::new();
        let exp = Arc::new(Switch {
            up: false.into(),
            spans: AtomicU32::new(0),
        });
        // fsync before answering each sender, this time.
        let mut s = disk_settings(dir.path(), 2);
        s.queue.fsync_interval = Duration::ZERO;
        let (h, task) = start(&id, exp.clone(), s, &t).unwrap();
        let (a, b) = (h.try_reserve(ONE).unwrap(), h.try_reserve(ONE).unwrap());
        assert!(h.try_reserve(ONE).is_err(), "two places, both reserved");
        a.send(batch(1)).unwrap();
        b.send(batch(1)).unwrap();
        assert!(h.try_reserve(ONE).is_err());
        let waiting = {
            let h = h.clone();
            tokio::spawn(async move { h.send(batch(2), ONE).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        exp.up.store(true, Ordering::SeqCst);
        waiting.await.unwrap();
        wait_until(|| t.metrics.exporter_sent("otlp/full").get() == 4).await;
        drop(h);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn sizers_count_spans_or_bytes_and_the_gauges_show_all_three() {
        let t = Telemetry::new();
        let gate = Arc::new(Switch {
            up: false.into(),
            spans: AtomicU32::new(0),
        });
        for (sizer, queue_size, fits) in [(Sizer::Items, 10, 2), (Sizer::Bytes, 0, 2)] {
            let id = ComponentId::parse(&format!("otlp/{sizer:?}")).unwrap();
            let name = id.to_string();
            let b = batch(4);
            let cost = Cost::of(&b);
            assert_eq!(cost.spans, 4);
            assert_eq!(cost.bytes, b.encoded().len());
            let mut s = settings(true);
            s.queue.sizer = sizer;
            // Room for two 4-span batches and a bit, not three.
            s.queue.queue_size = if queue_size > 0 {
                queue_size
            } else {
                cost.bytes * 5 / 2
            };
            gate.up.store(false, Ordering::SeqCst);
            let (h, task) = start(&id, gate.clone(), s, &t).unwrap();
            // One batch goes to the (blocked) consumer; `fits` more wait in the queue.
            h.try_reserve(cost).unwrap().send(b.clone()).unwrap();
            let m = &t.metrics;
            wait_until(|| m.exporter_queue_batches(&name).get() == 0).await;
            for _ in 0..fits {
                h.try_reserve(cost).unwrap().send(b.clone()).unwrap();
            }
            assert!(h.try_reserve(cost).is_err(), "{sizer:?}: full");
            assert_eq!(m.exporter_queue_batches(&name).get(), fits as i64);
            assert_eq!(
                m.exporter_queue_bytes(&name).get(),
                (fits * cost.bytes) as i64
            );
            let units = sizer.cost(cost.spans, cost.bytes) * fits;
            assert_eq!(m.exporter_queue_size(&name).get(), units as i64);
            // A batch bigger than the whole queue still goes in, alone, once it is empty.
            gate.up.store(true, Ordering::SeqCst);
            wait_until(|| m.exporter_queue_batches(&name).get() == 0).await;
            let huge = Cost {
                spans: 1000,
                bytes: 1 << 20,
            };
            h.send(batch(1), huge).await;
            drop(h);
            task.await.unwrap();
            assert_eq!(m.exporter_queue_bytes(&name).get(), 0);
            assert_eq!(m.exporter_queue_size(&name).get(), 0);
        }
    }
}
