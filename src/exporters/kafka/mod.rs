//! The `kafka` exporter: every span of a trace (or session) lands in the partition Kafka's
//! Java-compatible murmur2 partitioner assigns to its trace id (or session), so a consumer group
//! of spangate samplers behind the topic sees whole traces, and producers keyed the same way
//! agree. Spans bound for one partition travel in one message (one `ExportTraceServiceRequest`),
//! which keeps messages few; until the topic's partition count is known (say, before it is
//! auto-created) each key gets its own message, keyed, and the broker-side partitioner decides.

pub mod config;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::settings::kafka::{ClientLog, LoggingContext};

use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::attrs::str_attr;
use crate::data::{heavy, json, SpanBatch};
use config::{Compression, Encoding, KafkaExporterConfig, PartitionBy};

/// How long a topic's partition count is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(30);

pub struct KafkaExporter {
    producer: FutureProducer<LoggingContext>,
    /// The topic's partition count and when it was read.
    partitions: Mutex<Option<(u32, Instant)>>,
    topic: String,
    encoding: Encoding,
    partition_by: PartitionBy,
    session_attribute: String,
    timeout: Duration,
    max_message_bytes: usize,
}

impl KafkaExporter {
    /// `log` takes librdkafka's errors (rate-limited, counted).
    /// `timeout`: how long librdkafka may try to deliver one message (the exporter's `timeout`).
    pub fn new(
        cfg: &KafkaExporterConfig,
        timeout: Duration,
        log: ClientLog,
    ) -> Result<Self, KafkaError> {
        let mut cc = cfg.client.client_config();
        let producer: FutureProducer<LoggingContext> = cc
            .set("partitioner", "murmur2_random")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "compression.type",
                match cfg.compression {
                    Compression::None => "none",
                    Compression::Gzip => "gzip",
                },
            )
            // The exporter helper owns retries; librdkafka gives up within one attempt's time.
            .set("message.timeout.ms", timeout.as_millis().max(1).to_string())
            .create_with_context(LoggingContext(log))?;
        Ok(KafkaExporter {
            producer,
            partitions: Mutex::new(None),
            topic: cfg.topic.clone(),
            encoding: cfg.encoding,
            partition_by: cfg.partition_by,
            session_attribute: cfg.session_attribute.clone(),
            timeout,
            max_message_bytes: cfg.max_message_bytes,
        })
    }
}

/// Splits spans by message key, keeping each span under its resource and scope.
pub fn split_by_key(
    resource_spans: &[ResourceSpans],
    key: impl Fn(&ResourceSpans, &Span) -> Vec<u8>,
) -> Vec<(Vec<u8>, Vec<ResourceSpans>)> {
    struct Group {
        key: Vec<u8>,
        spans: Vec<ResourceSpans>,
        /// (resource, scope) indices of the last entry, so runs of spans share one entry.
        last: (usize, usize),
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    for (ri, rs) in resource_spans.iter().enumerate() {
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for span in &ss.spans {
                let k = key(rs, span);
                let slot = match index.get(&k) {
                    Some(i) => *i,
                    None => {
                        index.insert(k.clone(), groups.len());
                        groups.push(Group {
                            key: k,
                            spans: Vec::new(),
                            last: (usize::MAX, usize::MAX),
                        });
                        groups.len() - 1
                    }
                };
                let g = &mut groups[slot];
                if g.last != (ri, si) {
                    g.last = (ri, si);
                    g.spans.push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    });
                }
                if let Some(entry) = g.spans.last_mut() {
                    entry.scope_spans[0].spans.push(span.clone());
                }
            }
        }
    }
    groups.into_iter().map(|g| (g.key, g.spans)).collect()
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's `murmur2_random`).
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition Kafka's default (murmur2) partitioner picks for `key`.
pub fn partition_for(key: &[u8], partitions: u32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions.max(1)) as i32
}

impl KafkaExporter {
    fn encode(&self, rs: Vec<ResourceSpans>) -> Vec<u8> {
        match self.encoding {
            Encoding::OtlpProto => {
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
                    resource_spans: rs,
                }
                .encode_to_vec()
            }
            Encoding::OtlpJson => json::encode_request(&rs).into_bytes(),
        }
    }

    /// Encodes spans bound for one partition as messages of at most `max_message_bytes`
    /// (a single span larger than that still goes alone, and the broker decides).
    fn encode_capped(&self, rs: Vec<ResourceSpans>) -> Vec<Vec<u8>> {
        let whole = self.encode(rs.clone());
        if whole.len() <= self.max_message_bytes {
            return vec![whole];
        }
        let mut rest = SpanBatch::new(rs);
        let per_span = whole.len() / rest.len().max(1) + 1;
        // A margin for the resource and scope headers repeated in each part.
        let per_message = (self.max_message_bytes * 9 / 10 / per_span).max(1);
        let mut out = Vec::new();
        while !rest.is_empty() {
            let mut part = rest.split_front(per_message);
            out.push(self.encode(std::mem::take(part.resource_spans_mut())));
        }
        out
    }

    /// The topic's partition count, from cached metadata (`None` while unknown).
    async fn partition_count(&self) -> Option<u32> {
        if let Some((n, at)) = *self.partitions.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < METADATA_TTL {
                return Some(n);
            }
        }
        let (producer, topic) = (self.producer.clone(), self.topic.clone());
        // A metadata request blocks; keep it off the runtime threads.
        let n = tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()?;
            let t = md.topics().iter().find(|t| t.name() == topic)?;
            (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len() as u32)
        })
        .await
        .ok()
        .flatten()?;
        *self.partitions.lock().unwrap_or_else(|p| p.into_inner()) = Some((n, Instant::now()));
        Some(n)
    }
}

fn classify(e: &KafkaError) -> ExportError {
    let code = e.rdkafka_error_code();
    let permanent = matches!(
        code,
        Some(RDKafkaErrorCode::MessageSizeTooLarge)
            | Some(RDKafkaErrorCode::InvalidMessageSize)
            | Some(RDKafkaErrorCode::TopicAuthorizationFailed)
            | Some(RDKafkaErrorCode::InvalidTopic)
    );
    if permanent {
        ExportError::Permanent {
            reason: format!("kafka: {e}"),
            rejected: None,
        }
    } else {
        ExportError::Retryable {
            reason: format!("kafka: {e}"),
            retry_after: None,
        }
    }
}

impl Exporter for KafkaExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(async move {
            let session = &self.session_attribute;
            let by = self.partition_by;
            let partitions = self.partition_count().await;
            let messages = heavy(batch.len(), || {
                let groups = split_by_key(batch.resource_spans(), |rs, span| {
                    let key = match by {
                        PartitionBy::TraceId => span.trace_id.clone(),
                        PartitionBy::Session => str_attr(&span.attributes, session)
                            .filter(|s| !s.is_empty())
                            .or_else(|| {
                                rs.resource
                                    .as_ref()
                                    .and_then(|r| str_attr(&r.attributes, session))
                                    .filter(|s| !s.is_empty())
                            })
                            .map(|s| s.as_bytes().to_vec())
                            .unwrap_or_else(|| span.trace_id.clone()),
                    };
                    // Known partition count: group by partition (few, larger messages).
                    match partitions {
                        Some(n) => partition_for(&key, n).to_be_bytes().to_vec(),
                        None => key,
                    }
                });
                let mut messages = Vec::with_capacity(groups.len());
                for (key, rs) in groups {
                    for payload in self.encode_capped(rs) {
                        messages.push((key.clone(), payload));
                    }
                }
                messages
            });
            let sends = messages.iter().map(|(key, payload)| {
                let record = FutureRecord::to(&self.topic).payload(payload);
                let record = match partitions {
                    // The group key is the partition number.
                    Some(_) => record
                        .partition(i32::from_be_bytes(key[..4].try_into().unwrap_or_default())),
                    None => record.key(key),
                };
                self.producer.send(record, self.timeout)
            });
            // Done when every delivery report is in; any failure retries the batch (at least
            // once: messages that made it may be sent again).
            for result in join_all(sends).await {
                if let Err((e, _)) = result {
                    return Err(classify(&e));
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    #[test]
    fn large_groups_are_split_under_the_message_cap() {
        let cfg: KafkaExporterConfig = config::parse_typed(&serde_json::json!({
            "brokers": ["127.0.0.1:1"], "max_message_bytes": 4096
        }))
        .unwrap();
        let telemetry = std::sync::Arc::new(crate::telemetry::Telemetry::new());
        let exporter = KafkaExporter::new(
            &cfg,
            crate::settings::queue::default_timeout(),
            ClientLog::new("kafka", &telemetry),
        )
        .unwrap();
        let spans: Vec<Span> = (0..200u32)
            .map(|i| Span {
                trace_id: vec![1; 16],
                span_id: i.to_be_bytes().repeat(2),
                name: "x".repeat(100),
                ..Default::default()
            })
            .collect();
        let rs = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }];
        let parts = exporter.encode_capped(rs);
        assert!(parts.len() > 1);
        assert!(
            parts.iter().all(|p| p.len() <= 4096),
            "{:?}",
            parts.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let total: usize = parts
            .iter()
            .map(|p| {
                let r = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(p.as_slice()).unwrap();
                crate::data::count_spans(&r.resource_spans)
            })
            .sum();
        assert_eq!(total, 200);
    }

    /// Kafka's own test vectors for `Utils.murmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        for (s, want) in [
            ("21", -973932308i32),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
        ] {
            assert_eq!(murmur2(s.as_bytes()) as i32, want, "{s}");
        }
        assert_eq!(partition_for(&[[1u8; 8], [9u8; 8]].concat(), 4), 3);
    }

    #[test]
    fn split_keeps_resources_and_groups_by_key() {
        let span = |t: u8| Span {
            trace_id: vec![t; 16],
            ..Default::default()
        };
        let rs = vec![
            ResourceSpans {
                resource: Some(Resource::default()),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1), span(2), span(1)],
                    ..Default::default()
                }],
                schema_url: "r0".into(),
            },
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1)],
                    ..Default::default()
                }],
                schema_url: "r1".into(),
                ..Default::default()
            },
        ];
        let groups = split_by_key(&rs, |_, s| s.trace_id.clone());
        assert_eq!(groups.len(), 2);
        let (k, one) = &groups[0];
        assert_eq!(k, &vec![1u8; 16]);
        assert_eq!(one.len(), 2, "two resources");
        assert_eq!(one[0].scope_spans[0].spans.len(), 2);
        assert_eq!(one[0].schema_url, "r0");
        assert_eq!(one[1].schema_url, "r1");
        assert_eq!(groups[1].1[0].scope_spans[0].spans.len(), 1);
    }
}
