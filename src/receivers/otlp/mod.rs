//! The OTLP receiver: gRPC and HTTP on their own listeners, one shared path into the pipelines.

pub mod auth;
pub mod config;
pub mod grpc;
pub mod http;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::watch;

use crate::component::{BuildError, ReceiverContext, RunningReceiver};
use crate::config::ComponentId;
use crate::data::{validate, SpanBatch};
use crate::pipeline::{Fanout, Refusal};
use crate::telemetry::metrics::Counter;
use crate::telemetry::Telemetry;
use config::OtlpReceiverConfig;

/// Requests bigger than this are decompressed and decoded on the blocking pool, so one big
/// request does not stall the runtime thread serving other connections.
pub(crate) const OFFLOAD_BYTES: usize = 256 * 1024;

/// How long a refused client should wait before retrying.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// What the receiver tells the client when it keeps the request.
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

/// State shared by both transports' handlers.
pub struct Shared {
    pub id: ComponentId,
    fanout: Arc<Fanout>,
    telemetry: Arc<Telemetry>,
    pub token: Option<String>,
    accepted_grpc: Counter,
    accepted_http: Counter,
}

impl Shared {
    /// Validates spans, hands the rest to the pipelines, and counts.
    pub async fn accept(
        &self,
        transport: Transport,
        mut request: ExportTraceServiceRequest,
    ) -> Result<Accepted, Refusal> {
        let rejected = validate::remove_invalid(&mut request.resource_spans);
        if rejected.spans > 0 {
            self.refused(transport, "invalid_span", rejected.spans);
            tracing::debug!(receiver = %self.id, spans = rejected.spans, reason = %rejected.message, "spans rejected");
        }
        let batch = SpanBatch::new(request.resource_spans);
        let n = batch.len() as u64;
        if n > 0 {
            if let Err(refusal) = self.fanout.consume(batch).await {
                let reason = match refusal {
                    Refusal::Full => "pipeline_full",
                    Refusal::Refused { .. } => "refused_by_processor",
                };
                self.refused(transport, reason, n);
                return Err(refusal);
            }
            match transport {
                Transport::Grpc => self.accepted_grpc.inc_by(n),
                Transport::Http => self.accepted_http.inc_by(n),
            }
        }
        Ok(Accepted {
            rejected_spans: rejected.spans,
            message: rejected.message,
        })
    }

    /// Counts refused spans (when known) and the refused request.
    pub fn refused(&self, transport: Transport, reason: &str, spans: u64) {
        let m = &self.telemetry.metrics;
        let id = self.id.to_string();
        if spans > 0 {
            m.receiver_refused(&id, transport.label(), reason)
                .inc_by(spans);
        }
        m.receiver_refused_requests(&id, transport.label(), reason)
            .inc_by(1);
    }
}

pub async fn start(
    cfg: OtlpReceiverConfig,
    ctx: ReceiverContext,
) -> Result<RunningReceiver, BuildError> {
    let name = ctx.id.to_string();
    let m = &ctx.telemetry.metrics;
    let shared = Arc::new(Shared {
        accepted_grpc: m.receiver_accepted(&name, "grpc"),
        accepted_http: m.receiver_accepted(&name, "http"),
        id: ctx.id.clone(),
        fanout: ctx.fanout.clone(),
        telemetry: ctx.telemetry.clone(),
        token: cfg.auth.as_ref().map(|a| a.bearer_token.clone()),
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(g) = &cfg.protocols.grpc {
        let limit = (g.max_recv_msg_size_mib * 1024 * 1024) as usize;
        let handler = grpc::GrpcHandler::new(shared.clone(), limit);
        let protocol = server::Protocol::Http2Only;
        tasks.push(listen(
            &ctx,
            &cfg,
            &g.endpoint,
            protocol,
            handler,
            &stopped,
        )?);
    }
    if let Some(h) = &cfg.protocols.http {
        let limit = h.max_request_body_size as usize;
        let handler = http::HttpHandler::new(shared.clone(), limit, h.traces_url_path.clone());
        let protocol = server::Protocol::Auto;
        tasks.push(listen(
            &ctx,
            &cfg,
            &h.endpoint,
            protocol,
            handler,
            &stopped,
        )?);
    }
    Ok(RunningReceiver { stop, tasks })
}

/// Takes the listener for `endpoint` (TLS when configured) and serves `handler` until stopped.
fn listen<H: server::Handler>(
    ctx: &ReceiverContext,
    cfg: &OtlpReceiverConfig,
    endpoint: &str,
    protocol: server::Protocol,
    handler: H,
    stopped: &watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, BuildError> {
    let listener = ctx
        .listeners
        .listen(endpoint)
        .map_err(|e| BuildError::new(&ctx.id, format!("cannot listen on {endpoint}: {e}")))?;
    let alpn: &[&[u8]] = match protocol {
        server::Protocol::Http2Only => &[b"h2"],
        server::Protocol::Auto => &[b"h2", b"http/1.1"],
    };
    let tls = cfg
        .tls
        .as_ref()
        .map(|t| t.server_config(alpn))
        .transpose()
        .map_err(|e| BuildError::new(&ctx.id, e))?;
    tracing::info!(receiver = %ctx.id, endpoint, tls = tls.is_some(), transport = protocol.label(), "otlp listening");
    Ok(tokio::spawn(server::serve(
        listener,
        tls,
        protocol,
        handler,
        stopped.clone(),
    )))
}
