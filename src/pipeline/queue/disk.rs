//! The on-disk sending queue: the [`Wal`] with its waiting senders and consumers.
//!
//! One log per directory for the whole process: a reload (SIGHUP) builds the new exporter beside
//! the draining old one, and both must share the open log rather than recover it twice. Each
//! exporter instance has its own [`DiskQueue`] over the shared log, and stops taking records
//! when its handle is dropped; what it has not taken stays on disk for the next one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::wal::{Wal, WalError};
use super::{Queued, Runner};
use crate::data::{blocking_io, SpanBatch};
use crate::telemetry::metrics::Gauge;

/// A log and who waits on it.
pub struct SharedWal {
    pub wal: Wal,
    /// Records appended, or a queue closed.
    more: Notify,
    /// Records done: room for waiting senders.
    room: Notify,
    /// Reserved places not yet written (all-or-nothing fan-out reserves first).
    reserved: AtomicUsize,
    /// A write failed (disk full, I/O error): no room until the next sync tick tries again.
    unwritable: AtomicBool,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<SharedWal>>> {
    static R: OnceLock<Mutex<HashMap<PathBuf, Weak<SharedWal>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Opens the log in `dir`, or joins the one this process already has open there.
fn open_shared(dir: &Path, max_bytes: u64, exporter: &str) -> Result<Arc<SharedWal>, WalError> {
    let key = dir.to_path_buf();
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(shared) = reg.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let (wal, recovery) = Wal::open(dir, max_bytes)?;
    if recovery.batches > 0 || recovery.truncated_bytes > 0 {
        tracing::info!(
            exporter,
            batches = recovery.batches,
            spans = recovery.spans,
            truncated_bytes = recovery.truncated_bytes,
            "disk queue recovered what the last run left; sending it"
        );
    }
    let shared = Arc::new(SharedWal {
        wal,
        more: Notify::new(),
        room: Notify::new(),
        reserved: AtomicUsize::new(0),
        unwritable: AtomicBool::new(false),
    });
    reg.retain(|_, w| w.strong_count() > 0);
    reg.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

/// One exporter instance's view of its disk queue.
pub struct DiskQueue {
    pub shared: Arc<SharedWal>,
    capacity: usize,
    max_bytes: u64,
    closed: AtomicBool,
    /// The same, to wait on.
    closed_tx: tokio::sync::watch::Sender<bool>,
    /// `fsync_interval: 0`: flush every write before answering the sender.
    sync_each: bool,
    queue_size: Gauge,
    queue_bytes: Gauge,
    runner: Arc<Runner>,
}

/// A reserved place in a disk queue, released when written or dropped.
pub struct DiskSlot<'a>(&'a DiskQueue);

impl Drop for DiskSlot<'_> {
    fn drop(&mut self) {
        self.0.shared.reserved.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DiskQueue {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        dir: &Path,
        capacity: usize,
        max_bytes: u64,
        sync_each: bool,
        queue_size: Gauge,
        queue_bytes: Gauge,
        runner: Arc<Runner>,
    ) -> Result<Arc<DiskQueue>, WalError> {
        let shared = open_shared(dir, max_bytes, runner.id())?;
        let q = Arc::new(DiskQueue {
            shared,
            capacity,
            max_bytes,
            closed: AtomicBool::new(false),
            closed_tx: tokio::sync::watch::channel(false).0,
            sync_each,
            queue_size,
            queue_bytes,
            runner,
        });
        q.update_gauges();
        Ok(q)
    }

    fn update_gauges(&self) {
        self.queue_size.set(self.shared.wal.len() as i64);
        self.queue_bytes.set(self.shared.wal.bytes() as i64);
    }

    fn has_room(&self) -> bool {
        let s = &self.shared;
        !s.unwritable.load(Ordering::SeqCst)
            && s.wal.len() + s.reserved.load(Ordering::SeqCst) < self.capacity
            && s.wal.bytes() < self.max_bytes
    }

    /// True while a failed write keeps the queue from taking more (until the next sync tick).
    pub fn unwritable(&self) -> bool {
        self.shared.unwritable.load(Ordering::SeqCst)
    }

    /// Reserves a place without waiting.
    pub fn try_reserve(&self) -> Option<DiskSlot<'_>> {
        if !self.has_room() {
            return None;
        }
        self.shared.reserved.fetch_add(1, Ordering::SeqCst);
        Some(DiskSlot(self))
    }

    /// Writes a batch into a reserved place. The sources' acknowledgements go with the batch
    /// once it is on disk. A write that fails (a full disk) is `Err`, and nothing is counted:
    /// the caller still holds the spans and refuses them, or waits and writes again; the queue
    /// takes nothing more until the next sync tick.
    pub fn write(&self, slot: DiskSlot<'_>, batch: &SpanBatch) -> Result<(), WalError> {
        let n = batch.len();
        let mut result = Ok(());
        if n > 0 {
            let payload = batch.encoded();
            // The reservation was the admission check: the byte bound may be passed by the
            // batches reserved at once, never more.
            let wal = &self.shared.wal;
            // Even a plain write(2) can sleep in the kernel on a busy disk (seen: a receiver
            // silent for 10 s while its runtime threads waited on the log): off the workers.
            let written = blocking_io(|| -> Result<u64, WalError> {
                let seq = wal.append_unchecked(&payload, n as u32)?;
                if self.sync_each {
                    // The record is in the log either way and will be sent: only warn.
                    if let Err(e) = wal.sync() {
                        tracing::warn!(exporter = %self.runner.id(), error = %e, "disk queue fsync failed");
                    }
                }
                Ok(seq)
            });
            match written {
                Ok(_) => self.shared.more.notify_waiters(),
                Err(e) => {
                    // Once per episode: the flag is cleared by the next sync tick.
                    if !self.shared.unwritable.swap(true, Ordering::SeqCst) {
                        tracing::warn!(exporter = %self.runner.id(), spans = n, error = %e, "disk queue cannot write (disk full?): refusing new spans until a write succeeds");
                    }
                    result = Err(e);
                }
            }
        }
        drop(slot);
        self.update_gauges();
        result
    }

    /// Writes a batch, waiting for room, and for the disk when a write fails: never drops.
    pub async fn send(&self, batch: &SpanBatch) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(slot) = self.try_reserve() {
                if self.write(slot, batch).is_ok() {
                    return;
                }
                continue;
            }
            // A timeout too, in case room came from a queue of another instance.
            let _ = tokio::time::timeout(Duration::from_millis(200), room).await;
        }
    }

    /// No more records are taken from here (the handle is gone).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closed_tx.send_replace(true);
        self.shared.more.notify_waiters();
    }

    /// The next record as a batch; `None` once closed.
    async fn next(&self) -> Option<(u64, SpanBatch)> {
        loop {
            let more = self.shared.more.notified();
            tokio::pin!(more);
            more.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            match blocking_io(|| self.shared.wal.next()) {
                Some(Ok(r)) => {
                    match crate::data::decode_request(&r.payload) {
                        Ok(req) => return Some((r.seq, SpanBatch::new(req.resource_spans))),
                        Err(e) => {
                            // Checksummed, so this is a bug, not the disk: count and move on.
                            self.runner.count_failed(r.spans as u64);
                            tracing::error!(exporter = %self.runner.id(), seq = r.seq, error = %e, "disk queue record does not decode, spans dropped");
                            self.done(r.seq);
                        }
                    }
                }
                Some(Err((seq, spans, e))) => {
                    self.runner.count_failed(spans as u64);
                    tracing::error!(exporter = %self.runner.id(), seq, error = %e, "disk queue record unreadable, spans dropped");
                    self.done(seq);
                }
                None => more.await,
            }
        }
    }

    fn done(&self, seq: u64) {
        self.shared.wal.done(seq);
        self.update_gauges();
        self.shared.room.notify_waiters();
    }
}

/// A record out for export; given back to the queue if the export is abandoned (aborted at the
/// shutdown deadline of a reload), so another instance sharing the log sends it.
struct Handed {
    queue: Arc<DiskQueue>,
    seq: u64,
    finished: bool,
}

impl Drop for Handed {
    fn drop(&mut self) {
        if !self.finished {
            self.queue.shared.wal.requeue(self.seq);
            self.queue.shared.more.notify_waiters();
        }
    }
}

/// After the queue closes, how long exports under way may still finish; then they are cut
/// (their records stay on disk), so a stop never waits on a backend that is down.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Feeds records to up to `consumers` exports at once until the queue is closed; then gives
/// the exports under way [`CLOSE_GRACE`] (what is left stays on disk).
pub async fn consume(queue: Arc<DiskQueue>, consumers: usize) {
    let slots = Arc::new(Semaphore::new(consumers));
    let mut running = JoinSet::new();
    let mut closed = queue.closed_tx.subscribe();
    loop {
        // Every consumer may be busy retrying a down backend: closing must not wait for one.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = closed.wait_for(|c| *c) => break,
        };
        let Some((seq, batch)) = queue.next().await else {
            break;
        };
        let guard = Handed {
            queue: queue.clone(),
            seq,
            finished: false,
        };
        running.spawn(async move {
            let mut guard = guard;
            Queued::durable(Arc::new(batch), guard.queue.runner.clone())
                .run()
                .await;
            guard.finished = true;
            guard.queue.done(seq);
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// How often finished records are collected (segments deleted, the ack saved) when every
/// write is flushed anyway (`fsync_interval: 0`).
const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// Every `fsync_interval` (or [`COLLECT_EVERY`]) until the queue is closed, on a blocking
/// thread: flushes the log to the disk, deletes finished segments, saves the ack, and wakes
/// senders waiting for the bytes that freed.
pub async fn sync_every(queue: Arc<DiskQueue>, every: Duration) {
    let every = if every.is_zero() {
        COLLECT_EVERY
    } else {
        every
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !queue.closed.load(Ordering::SeqCst) {
        tick.tick().await;
        let q = queue.clone();
        let synced = tokio::task::spawn_blocking(move || q.shared.wal.sync()).await;
        if let Ok(Err(e)) = synced {
            tracing::warn!(exporter = %queue.runner.id(), error = %e, "disk queue fsync failed");
        }
        queue.shared.unwritable.store(false, Ordering::SeqCst);
        queue.update_gauges();
        queue.shared.room.notify_waiters();
    }
}
