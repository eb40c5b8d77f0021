//! The `kafka` exporter: one `ExportTraceServiceRequest` per message, keyed by trace id (or
//! session) so every span of a trace lands in one partition and a consumer group of spangate
//! samplers behind the topic sees whole traces. The partitioner is Kafka's Java-compatible
//! murmur2, so other producers keyed the same way agree on partitions.

pub mod config;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::{heavy, json, SpanBatch};
use config::{Compression, Encoding, KafkaExporterConfig, PartitionBy};

pub struct KafkaExporter {
    producer: FutureProducer,
    topic: String,
    encoding: Encoding,
    partition_by: PartitionBy,
    session_attribute: String,
    timeout: Duration,
}

impl KafkaExporter {
    pub fn new(cfg: &KafkaExporterConfig) -> Result<Self, KafkaError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cfg.brokers.join(","))
            .set("client.id", &cfg.client_id)
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
            .set(
                "message.timeout.ms",
                cfg.timeout.as_millis().max(1).to_string(),
            )
            .create()?;
        Ok(KafkaExporter {
            producer,
            topic: cfg.topic.clone(),
            encoding: cfg.encoding,
            partition_by: cfg.partition_by,
            session_attribute: cfg.session_attribute.clone(),
            timeout: cfg.timeout,
        })
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    })
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
            let messages = heavy(batch.len(), || {
                let groups = split_by_key(batch.resource_spans(), |rs, span| match by {
                    PartitionBy::TraceId => span.trace_id.clone(),
                    PartitionBy::Session => string_attr(&span.attributes, session)
                        .or_else(|| {
                            rs.resource
                                .as_ref()
                                .and_then(|r| string_attr(&r.attributes, session))
                        })
                        .map(|s| s.as_bytes().to_vec())
                        .unwrap_or_else(|| span.trace_id.clone()),
                });
                groups
                    .into_iter()
                    .map(|(key, rs)| {
                        let payload = match self.encoding {
                            Encoding::OtlpProto => {
                                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
                                    resource_spans: rs,
                                }
                                .encode_to_vec()
                            }
                            Encoding::OtlpJson => json::encode_request(&rs).into_bytes(),
                        };
                        (key, payload)
                    })
                    .collect::<Vec<_>>()
            });
            let sends = messages.iter().map(|(key, payload)| {
                let record = FutureRecord::to(&self.topic).key(key).payload(payload);
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
