//! The path every receiver shares into its pipelines: span validation, the all-or-nothing
//! fan-out, and the accepted/refused counts.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::component::{Consumer, Refusal};
use crate::config::ComponentId;
use crate::data::ack::Ack;
use crate::data::limits::{self, AttrLimits};
use crate::data::{count_spans, validate, wire, SpanBatch};
use crate::telemetry::metrics::Counter;
use crate::telemetry::Telemetry;

/// A request as a receiver hands it on: still encoded (walked by [`wire::walk`], every span
/// valid), or decoded.
pub enum Received {
    Wire { request: Bytes, spans: usize },
    Decoded(ExportTraceServiceRequest),
}

impl From<ExportTraceServiceRequest> for Received {
    fn from(r: ExportTraceServiceRequest) -> Self {
        Received::Decoded(r)
    }
}

impl Received {
    /// Checks a protobuf request. With `keep_encoded` (no attribute limits to apply) a request
    /// the wire walk finds whole and valid stays bytes; one with invalid spans, or any request
    /// without it, is decoded so the spans can be removed or cut. `Err` is the decode error.
    pub fn proto(raw: Bytes, keep_encoded: bool) -> Result<Received, String> {
        if keep_encoded {
            match wire::walk(&raw) {
                Ok(w) if w.invalid_spans == 0 => {
                    return Ok(Received::Wire {
                        request: raw,
                        spans: w.spans,
                    })
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        ExportTraceServiceRequest::decode(raw)
            .map(Received::Decoded)
            .map_err(|e| e.to_string())
    }

    fn spans(&self) -> usize {
        match self {
            Received::Wire { spans, .. } => *spans,
            Received::Decoded(r) => count_spans(&r.resource_spans),
        }
    }
}

/// What a receiver tells its client when it keeps a request.
#[derive(Debug, Default)]
pub struct Accepted {
    pub rejected_spans: u64,
    pub message: String,
}

impl Accepted {
    /// The OTLP response: `partial_success` only when spans were rejected.
    pub fn into_response(self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (self.rejected_spans > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: self.rejected_spans as i64,
                error_message: self.message,
            }),
        }
    }
}

/// Problems with a receiver's attribute limits.
pub fn check_limits(limits: &AttrLimits, out: &mut Vec<(String, String)>) {
    if limits.max_attributes_per_span == Some(0) {
        out.push((
            "max_attributes_per_span".into(),
            "must be at least 1 (omit it for no limit)".into(),
        ));
    }
    if limits.max_attribute_value_length == Some(0) {
        out.push((
            "max_attribute_value_length".into(),
            "must be at least 1 (omit it for no limit)".into(),
        ));
    }
}

pub struct Intake {
    pub id: ComponentId,
    fanout: Arc<dyn Consumer>,
    telemetry: Arc<Telemetry>,
    /// Accepted-span counters by transport label, resolved once.
    accepted: HashMap<&'static str, Counter>,
    limits: AttrLimits,
    /// Attributes dropped / values truncated by `limits`.
    limited: (Counter, Counter),
}

impl Intake {
    pub fn new(
        id: ComponentId,
        fanout: Arc<dyn Consumer>,
        telemetry: Arc<Telemetry>,
        transports: &[&'static str],
    ) -> Self {
        let name = id.to_string();
        let accepted = transports
            .iter()
            .map(|t| (*t, telemetry.metrics.receiver_accepted(&name, t)))
            .collect();
        let limited = (
            telemetry
                .metrics
                .receiver_limited_attributes(&name, "dropped"),
            telemetry
                .metrics
                .receiver_limited_attributes(&name, "truncated"),
        );
        Intake {
            id,
            fanout,
            telemetry,
            accepted,
            limits: AttrLimits::default(),
            limited,
        }
    }

    /// Applies `max_attributes_per_span` / `max_attribute_value_length` to what comes in.
    pub fn with_limits(mut self, limits: AttrLimits) -> Self {
        self.limits = limits;
        self
    }

    /// True when requests may stay encoded ([`Received::proto`]): no attribute limits to apply.
    pub fn keeps_encoded(&self) -> bool {
        self.limits == AttrLimits::default()
    }

    /// Validates spans, hands the rest to the pipelines (tied to `acks`), and counts.
    pub async fn accept(
        &self,
        transport: &'static str,
        request: Received,
        acks: Vec<Ack>,
    ) -> Result<Accepted, Refusal> {
        if self.over_memory() {
            self.refused(transport, "memory_limit", request.spans() as u64);
            return Err(Refusal::Memory);
        }
        let (mut batch, rejected) = match request {
            Received::Wire { request, spans } => (
                SpanBatch::from_wire(request, spans),
                validate::Rejected::default(),
            ),
            Received::Decoded(mut request) => {
                let rejected = validate::remove_invalid(&mut request.resource_spans);
                if rejected.spans > 0 {
                    self.refused(transport, "invalid_span", rejected.spans);
                    tracing::debug!(receiver = %self.id, spans = rejected.spans, reason = %rejected.message, "spans rejected");
                }
                let limited = limits::apply(&mut request.resource_spans, self.limits);
                self.limited.0.inc_by(limited.dropped);
                self.limited.1.inc_by(limited.truncated);
                (SpanBatch::new(request.resource_spans), rejected)
            }
        };
        for a in acks {
            batch.add_ack(a);
        }
        let n = batch.len() as u64;
        if n > 0 {
            if let Err(refusal) = self.fanout.consume(batch).await {
                let reason = match refusal {
                    Refusal::Full => "pipeline_full",
                    Refusal::Refused { .. } => "refused_by_processor",
                    Refusal::Memory => "memory_limit",
                };
                self.refused(transport, reason, n);
                return Err(refusal);
            }
            if let Some(c) = self.accepted.get(transport) {
                c.inc_by(n);
            }
        }
        Ok(Accepted {
            rejected_spans: rejected.spans,
            message: rejected.message,
        })
    }

    /// With `service.memory_limit_mib`: the bytes requests being decoded may take between them.
    pub fn memory_allowance(&self) -> Option<u64> {
        self.telemetry.memory.allowance()
    }

    /// True while a disk queue of the pipelines fed cannot write.
    pub fn unwritable(&self) -> bool {
        self.fanout.unwritable()
    }

    /// True while the process is near `service.memory_limit_mib`: refuse before reading more.
    pub fn over_memory(&self) -> bool {
        self.telemetry.memory.over()
    }

    /// Counts refused spans (when known) and the refused request.
    pub fn refused(&self, transport: &str, reason: &str, spans: u64) {
        let m = &self.telemetry.metrics;
        let id = self.id.to_string();
        if spans > 0 {
            m.receiver_refused(&id, transport, reason).inc_by(spans);
        }
        m.receiver_refused_requests(&id, transport, reason)
            .inc_by(1);
    }
}
