//! The accept loop both transports share: TCP_NODELAY on every connection (tonic's
//! `serve_with_incoming` skips it, and gRPC answers then wait ~40 ms on delayed ACKs), optional
//! TLS, HTTP/1.1 and HTTP/2 through hyper, graceful stop.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request handler; cloned per connection.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>>;

    /// A connection closed because its request headers did not arrive in time.
    fn header_timed_out(&self) {}
}

#[derive(Clone, Copy)]
pub enum Protocol {
    /// gRPC: HTTP/2 only.
    Http2Only,
    /// OTLP/HTTP: HTTP/1.1 or HTTP/2.
    Auto,
}

impl Protocol {
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Http2Only => "grpc",
            Protocol::Auto => "http",
        }
    }
}

/// HTTP/1.1 read buffer, bytes (hyper's minimum is 8 KiB).
const READ_BUFFER: usize = 16 * 1024;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After the listener stops, how long connections get to send a request before the graceful
/// close. A connection accepted just before the stop (a reload swaps receivers under load) is
/// otherwise closed before its first request is read, and the client sees a broken pipe.
const STOP_GRACE: Duration = Duration::from_millis(300);

pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    protocol: Protocol,
    handler: H,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if let Protocol::Http2Only = protocol {
        builder = builder.http2_only();
    }
    // Headers that never finish would hold the connection (and its task) forever. The read
    // buffer stays small: hyper's grows to ~400 KiB, and every body chunk split off it pins the
    // whole allocation while the request is collected (or drained). Under a 1 MB-request flood
    // against a 300 MiB limit the process peaked at 332-364 MiB with it, 256-269 MiB without.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(READ_BUFFER);
    let builder = Arc::new(builder);
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    // Connection tasks live in this set, so aborting this task at the deadline ends them too.
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let svc = {
            let handler = handler.clone();
            hyper::service::service_fn(move |req| {
                let fut = handler.handle(req);
                async move { Ok::<_, Infallible>(fut.await) }
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match acceptor.clone() {
            None => {
                let handler = handler.clone();
                connections.spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    count_timeout(watcher.watch(conn.into_owned()).await, &handler);
                });
            }
            Some(acceptor) => {
                let handler = handler.clone();
                connections.spawn(async move {
                    let tls_stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "tls handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "tls handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                    count_timeout(watcher.watch(conn.into_owned()).await, &handler);
                });
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.try_join_next().is_some() {}
    if !connections.is_empty() {
        tokio::time::sleep(STOP_GRACE).await;
    }
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Counts a connection that ended on hyper's header read timeout.
fn count_timeout<H: Handler>(
    ended: Result<(), Box<dyn std::error::Error + Send + Sync>>,
    handler: &H,
) {
    if let Err(e) = ended {
        let timed_out = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(|e| e.is_timeout());
        if timed_out {
            handler.header_timed_out();
        }
    }
}
