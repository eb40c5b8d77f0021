//! The `kafka` receiver: a consumer group member reading one `ExportTraceServiceRequest` per
//! message, at least once. A message's offset is committed only when every span of it is done
//! (exported or counted as dropped by every pipeline: its ack completed). When the pipelines are
//! full the message is retried with backoff and nothing else is read meanwhile, so consumption
//! pauses instead of dropping. An undecodable message is counted, logged with its topic,
//! partition and offset, and skipped. Revoked partitions commit what is done first.

pub mod config;
pub mod offsets;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::intake::{Intake, Received};
use crate::component::{BuildError, ReceiverContext, RunningReceiver};
use crate::data::ack::Ack;
use crate::data::json;
use config::{Encoding, InitialOffset, KafkaReceiverConfig};
use offsets::Offsets;

const TRANSPORT: &str = "kafka";
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// After a stop, how long to wait for in-flight messages to finish before the last commit.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

struct Ctx {
    offsets: Arc<Offsets>,
    log: crate::settings::kafka::ClientLog,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.log.log(level, fac, log_message)
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.log.error(&error, reason)
    }
}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "kafka partitions assigned");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            // Commit what is done before the partitions move; the rest is read again by the
            // next owner (at least once).
            let done = self.offsets.committable(Some(&revoked));
            if let Some(tpl) = to_tpl(&done) {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!(error = %e, "commit on revoke failed");
                }
            }
            self.offsets.forget(&revoked);
        }
    }
}

fn to_tpl(offsets: &[(String, i32, i64)]) -> Option<TopicPartitionList> {
    if offsets.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    Some(tpl)
}

fn commit(consumer: &StreamConsumer<Ctx>, offsets: &Offsets) {
    if let Some(tpl) = to_tpl(&offsets.committable(None)) {
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}

pub async fn start(
    cfg: KafkaReceiverConfig,
    ctx: ReceiverContext,
) -> Result<RunningReceiver, BuildError> {
    let offsets = Arc::new(Offsets::default());
    let mut cc = cfg.client.client_config();
    let consumer: StreamConsumer<Ctx> = cc
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set(
            "auto.offset.reset",
            match cfg.initial_offset {
                InitialOffset::Latest => "latest",
                InitialOffset::Earliest => "earliest",
            },
        )
        .set(
            "session.timeout.ms",
            cfg.session_timeout.as_millis().to_string(),
        )
        // Bound what librdkafka prefetches while the pipelines push back.
        .set("queued.max.messages.kbytes", "16384")
        .create_with_context(Ctx {
            offsets: offsets.clone(),
            log: crate::settings::kafka::ClientLog::new(&ctx.id.to_string(), &ctx.telemetry),
        })
        .map_err(|e| BuildError::new(&ctx.id, format!("kafka consumer: {e}")))?;
    let topic = cfg.topic();
    consumer
        .subscribe(&[&topic])
        .map_err(|e| BuildError::new(&ctx.id, format!("subscribe to {topic}: {e}")))?;
    tracing::info!(receiver = %ctx.id, topic, group = %cfg.group_id, "kafka receiver consuming");
    let intake = Intake::new(
        ctx.id.clone(),
        ctx.fanout.clone(),
        ctx.telemetry.clone(),
        &[TRANSPORT],
    )
    .with_limits(cfg.limits());
    drop(ctx);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(consumer, offsets, intake, cfg.encoding(), stopped));
    Ok(RunningReceiver {
        stop,
        tasks: vec![task],
    })
}

/// A message's request: protobuf stays bytes where the intake takes it so ([`Received::proto`]).
fn decode(payload: &Bytes, encoding: Encoding, keep_encoded: bool) -> Result<Received, String> {
    match encoding {
        Encoding::OtlpProto => Received::proto(payload.clone(), keep_encoded),
        Encoding::OtlpJson => json::decode_request(payload)
            .map(Received::from)
            .map_err(|e| e.to_string()),
    }
}

async fn run(
    consumer: StreamConsumer<Ctx>,
    offsets: Arc<Offsets>,
    intake: Intake,
    encoding: Encoding,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(COMMIT_EVERY);
    loop {
        let (topic, partition, offset, payload) = tokio::select! {
            _ = stopped.changed() => break,
            _ = ticker.tick() => { commit(&consumer, &offsets); continue; }
            msg = consumer.recv() => match msg {
                Ok(m) => (m.topic().to_string(), m.partition(), m.offset(), Bytes::copy_from_slice(m.payload().unwrap_or_default())),
                Err(e) => {
                    tracing::warn!(receiver = %intake.id, error = %e, "kafka consume error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        offsets.register(&topic, partition, offset);
        let keep_encoded = intake.keeps_encoded();
        let mut request = match decode(&payload, encoding, keep_encoded) {
            Ok(r) => Some(r),
            Err(e) => {
                intake.refused(TRANSPORT, "decode_error", 0);
                tracing::warn!(receiver = %intake.id, topic, partition, offset, error = %e, "skipping undecodable message");
                offsets.complete(&topic, partition, offset);
                continue;
            }
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let req = match request.take() {
                Some(r) => r,
                // A retry decodes again rather than keeping a clone of every message.
                None => match decode(&payload, encoding, keep_encoded) {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let ack = {
                let (o, t) = (offsets.clone(), topic.clone());
                Ack::new(move || o.complete(&t, partition, offset))
            };
            match intake.accept(TRANSPORT, req, vec![ack.clone()]).await {
                Ok(_) => break,
                Err(_) => {
                    // Nothing was sent on; the refused copies must not mark the offset done.
                    ack.disarm();
                    drop(ack);
                    if *stopped.borrow() {
                        // Left pending: not committed, read again after a restart.
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
    // Stop reading; let the pipelines finish what they hold, committing as messages complete.
    drop(intake);
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    while offsets.pending() > 0 && tokio::time::Instant::now() < deadline {
        commit(&consumer, &offsets);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(tpl) = to_tpl(&offsets.committable(None)) {
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(error = %e, "final offset commit failed");
        }
    }
}
