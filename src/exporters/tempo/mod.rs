//! The `tempo` exporter: OTLP to Grafana Tempo with its tenancy (`X-Scope-OrgID`, fixed or
//! per resource attribute: one request per tenant) and basic auth.
//!
//! Tempo answers RESOURCE_EXHAUSTED (HTTP 429) both when a tenant is over its ingestion rate
//! and when one request is bigger than the rate limiter can ever allow; the message says
//! "ingestion rate limit (L bytes) exceeded while adding N bytes". When N > L the request is
//! split in halves (and again) instead of being retried whole forever; a single span still
//! refused that way is counted as failed with Tempo's reason. Plain rate limiting is retried.

pub mod config;

use http::{HeaderMap, HeaderValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::component::{BoxFuture, ExportError, Exporter};
use crate::data::attrs::str_attr;
use crate::data::SpanBatch;
use crate::exporters::otlp_client::config::Protocol;
use crate::exporters::otlp_client::grpc::GrpcExporter;
use crate::exporters::otlp_client::http::HttpExporter;
use config::{TempoExporterConfig, TENANT_HEADER};

enum Inner {
    Grpc(GrpcExporter),
    Http(HttpExporter),
}

pub struct TempoExporter {
    inner: Inner,
    tenant_attribute: Option<String>,
    /// With `tenant_from_attribute`: the headers for resources without the attribute.
    fallback: Option<HeaderMap>,
}

fn tenant_headers(tenant: &str) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(TENANT_HEADER, HeaderValue::from_str(tenant).ok()?);
    Some(h)
}

/// Tempo's "request larger than the limiter allows" (as opposed to "over the rate now").
pub fn too_large(reason: &str) -> bool {
    fn number_after(s: &str, marker: &str) -> Option<u64> {
        let rest = &s[s.find(marker)? + marker.len()..];
        let rest = rest.trim_start_matches("local: ");
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }
    if !(reason.contains("ResourceExhausted") || reason.starts_with("HTTP 429")) {
        return false;
    }
    let limit = number_after(reason, "ingestion rate limit (");
    let adding = number_after(reason, "exceeded while adding ");
    matches!((limit, adding), (Some(l), Some(a)) if a > l)
}

impl TempoExporter {
    pub fn new(cfg: &TempoExporterConfig) -> Result<Self, String> {
        let inner = match cfg.otlp.protocol() {
            Protocol::Grpc => Inner::Grpc(GrpcExporter::new(&cfg.otlp).map_err(|e| e.to_string())?),
            Protocol::Http => Inner::Http(HttpExporter::new(&cfg.otlp).map_err(|e| e.to_string())?),
        };
        let tenant_attribute = cfg.tenancy.tenant_from_attribute.clone();
        let fallback = match (&tenant_attribute, &cfg.tenancy.tenant) {
            (Some(_), Some(t)) => tenant_headers(t),
            _ => None,
        };
        Ok(TempoExporter {
            inner,
            tenant_attribute,
            fallback,
        })
    }

    async fn send(&self, batch: &SpanBatch, extra: Option<&HeaderMap>) -> Result<(), ExportError> {
        match &self.inner {
            Inner::Grpc(g) => g.send(batch, extra).await,
            Inner::Http(h) => h.send(batch, extra).await,
        }
    }

    /// Sends `batch`, halving what Tempo finds too large. Returns the spans refused for good
    /// and the last reason.
    async fn send_splitting(
        &self,
        batch: &SpanBatch,
        extra: Option<&HeaderMap>,
    ) -> Result<(u64, String), ExportError> {
        let halves = |b: &SpanBatch| {
            let mut back = SpanBatch::new(b.resource_spans().to_vec());
            let front = back.split_front(b.len() / 2);
            [back, front]
        };
        let (mut rejected, mut last) = (0u64, String::new());
        let mut work: Vec<SpanBatch> = Vec::new();
        let mut first = Some(batch);
        loop {
            let owned;
            let b = match first.take() {
                Some(b) => b,
                None => match work.pop() {
                    Some(w) => {
                        owned = w;
                        &owned
                    }
                    None => break,
                },
            };
            match self.send(b, extra).await {
                Ok(()) => {}
                Err(ExportError::Retryable { reason, .. }) if too_large(&reason) => {
                    if b.len() > 1 {
                        work.extend(halves(b));
                    } else {
                        rejected += b.len() as u64;
                        last = reason;
                    }
                }
                Err(ExportError::Permanent {
                    reason,
                    rejected: r,
                }) => {
                    rejected += r.unwrap_or(b.len() as u64);
                    last = reason;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((rejected, last))
    }

    async fn export_batch(&self, batch: &SpanBatch) -> Result<(), ExportError> {
        let (rejected, reason) = match &self.tenant_attribute {
            None => self.send_splitting(batch, None).await?,
            Some(attr) => {
                // Resources grouped by tenant, in first-seen order.
                let mut groups: Vec<(Option<&str>, Vec<&ResourceSpans>)> = Vec::new();
                for rs in batch.resource_spans() {
                    let tenant = rs
                        .resource
                        .as_ref()
                        .and_then(|r| str_attr(&r.attributes, attr));
                    match groups.iter_mut().find(|(t, _)| *t == tenant) {
                        Some((_, v)) => v.push(rs),
                        None => groups.push((tenant, vec![rs])),
                    }
                }
                let (mut rejected, mut reason) = (0, String::new());
                let single = groups.len() == 1;
                for (tenant, resources) in groups {
                    let headers = match tenant {
                        Some(t) => tenant_headers(t),
                        None => self.fallback.clone(),
                    };
                    // One tenant: the batch goes as it is, no copy.
                    let part;
                    let b = if single {
                        batch
                    } else {
                        part = SpanBatch::new(resources.into_iter().cloned().collect());
                        &part
                    };
                    let (r, why) = self.send_splitting(b, headers.as_ref()).await?;
                    rejected += r;
                    if r > 0 {
                        reason = why;
                    }
                }
                (rejected, reason)
            }
        };
        if rejected > 0 {
            return Err(ExportError::Permanent {
                reason,
                rejected: Some(rejected),
            });
        }
        Ok(())
    }
}

impl Exporter for TempoExporter {
    fn export<'a>(&'a self, batch: &'a SpanBatch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export_batch(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_too_large_from_rate_limited() {
        let big = "ResourceExhausted: RATE_LIMITED: ingestion rate limit (local: 15000000 bytes, global: 0 bytes) exceeded while adding 25000000 bytes for user single-tenant";
        let busy = "ResourceExhausted: RATE_LIMITED: ingestion rate limit (15000000 bytes) exceeded while adding 1000 bytes";
        assert!(too_large(big));
        assert!(too_large(&big.replace("ResourceExhausted:", "HTTP 429:")));
        assert!(!too_large(busy));
        assert!(!too_large("Unavailable: down"));
    }
}
