//! The OTLP receiver: gRPC and HTTP on their own listeners, one shared path into the pipelines.

pub mod auth;
pub mod config;
pub mod grpc;
pub mod http;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::intake::{Accepted, Intake, Received};
use crate::component::Refusal;
use crate::component::{BuildError, ReceiverContext, RunningReceiver};
use config::OtlpReceiverConfig;

/// Requests bigger than this are decompressed and decoded on the blocking pool, so one big
/// request does not stall the runtime thread serving other connections.
pub(crate) const OFFLOAD_BYTES: usize = 256 * 1024;

/// Longest a durable answer waits for its spans to reach the disk: past it the client is
/// asked to retry (well under the SDKs' 10 s export timeout).
const DURABLE_WAIT: Duration = Duration::from_secs(5);

/// How long a refused client should wait before retrying.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// Reads a refused request body to its end without keeping it: at most `limit` bytes and
/// `within`, false past either or on a read error. A refusal sent under a body still arriving
/// makes HTTP/1.1 close the connection and h2 reset the stream, and past 1,024 resets h2 drops
/// the whole connection: SDKs see CANCELLED or UNKNOWN, which they do not retry. Each frame is
/// let go as it comes, so this holds no more than the transport's own read buffer (16 KiB on
/// HTTP/1.1, the flow-control window on h2).
pub(crate) async fn discard(
    body: hyper::body::Incoming,
    limit: usize,
    within: std::time::Duration,
) -> bool {
    use http_body_util::BodyExt;
    let drain = async {
        let mut body = body;
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                read += data.len();
                if read > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(within, drain).await.unwrap_or(false)
}

/// State shared by both transports' handlers.
pub struct Shared {
    pub intake: Intake,
    pub token: Option<String>,
    /// Every pipeline fed ends in disk queues (`Consumer::durable`): answer once on disk.
    pub durable: bool,
}

impl Shared {
    /// Hands the spans over; with [`Shared::durable`], returns only once they are written to
    /// every disk queue (or dropped by a processor): "accepted" then survives a `kill -9`. The
    /// wait is what the pipeline's batch processor holds them for (its `timeout`) plus the
    /// write.
    pub async fn accept(
        &self,
        transport: Transport,
        request: Received,
    ) -> Result<Accepted, Refusal> {
        if !self.durable {
            return self
                .intake
                .accept(transport.label(), request, Vec::new())
                .await;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let on_disk = crate::data::ack::Ack::new(move || {
            if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(());
            }
        });
        let accepted = self
            .intake
            .accept(transport.label(), request, vec![on_disk])
            .await?;
        // Not on disk in time (a full disk, a stalled one): the client is told to retry. The
        // spans stay where they are and are written later, so a retry duplicates, never loses.
        let deadline = tokio::time::Instant::now() + DURABLE_WAIT;
        tokio::pin!(rx);
        loop {
            match tokio::time::timeout(Duration::from_millis(50), &mut rx).await {
                Ok(_) => return Ok(accepted),
                Err(_) if self.intake.unwritable() || tokio::time::Instant::now() >= deadline => {
                    self.refused(transport, "disk_wait", 0);
                    return Err(Refusal::Full);
                }
                Err(_) => {}
            }
        }
    }

    pub fn refused(&self, transport: Transport, reason: &str, spans: u64) {
        self.intake.refused(transport.label(), reason, spans)
    }
}

pub async fn start(
    cfg: OtlpReceiverConfig,
    ctx: ReceiverContext,
) -> Result<RunningReceiver, BuildError> {
    let shared = Arc::new(Shared {
        intake: Intake::new(
            ctx.id.clone(),
            ctx.fanout.clone(),
            ctx.telemetry.clone(),
            &["grpc", "http"],
        )
        .with_limits(cfg.limits()),
        token: cfg.auth.as_ref().map(|a| a.bearer_token.clone()),
        durable: ctx.fanout.durable(),
    });
    if shared.durable {
        tracing::info!(receiver = %ctx.id, "every pipeline ends in a disk queue: requests are answered once their spans are on disk");
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(g) = &cfg.protocols.grpc {
        let limit = (g.max_recv_msg_size_mib * 1024 * 1024) as usize;
        let handler = grpc::GrpcHandler::new(shared.clone(), limit, g.read_timeout);
        let protocol = server::Protocol::Http2Only;
        // h2 has no header phase to time out; its streams' messages are bounded by read_timeout.
        tasks.push(listen(
            &ctx,
            &cfg,
            &g.endpoint,
            protocol,
            handler,
            g.read_timeout,
            &stopped,
        )?);
    }
    if let Some(h) = &cfg.protocols.http {
        let limit = h.max_request_body_size as usize;
        let handler = http::HttpHandler::new(
            shared.clone(),
            limit,
            h.traces_url_path.clone(),
            h.read_timeout,
        );
        let protocol = server::Protocol::Auto;
        tasks.push(listen(
            &ctx,
            &cfg,
            &h.endpoint,
            protocol,
            handler,
            h.read_header_timeout,
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
    header_timeout: Duration,
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
        header_timeout,
        stopped.clone(),
    )))
}
