//! A counting OTLP sink: gRPC (h2c) and HTTP/protobuf on one port, gzip or not. It counts spans
//! by walking the protobuf wire format instead of decoding, so counting costs far less than the
//! collector under test spends; anything it cannot walk is counted as malformed and refused.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What arrived so far.
#[derive(Default)]
pub struct SinkStats {
    pub spans: AtomicU64,
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    pub malformed: AtomicU64,
    /// Milliseconds every request waits before it is answered (a slow backend); 0 = none.
    pub delay_ms: AtomicU64,
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// Serves on `addr` until the process ends; returns the bound address and the counters.
pub async fn start(addr: SocketAddr) -> std::io::Result<(SocketAddr, Arc<SinkStats>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let stats = Arc::new(SinkStats::default());
    let shared = stats.clone();
    tokio::spawn(async move {
        let builder = Arc::new(hyper_util::server::conn::auto::Builder::new(
            TokioExecutor::new(),
        ));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (builder, stats) = (builder.clone(), shared.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let stats = stats.clone();
                    async move { Ok::<_, Infallible>(handle(req, &stats).await) }
                });
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    Ok((local, stats))
}

async fn handle(req: Request<hyper::body::Incoming>, stats: &SinkStats) -> Response<Body> {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let gzip = header_is(
        req.headers(),
        if grpc {
            "grpc-encoding"
        } else {
            "content-encoding"
        },
        "gzip",
    );
    let Ok(body) = req.into_body().collect().await else {
        stats.malformed.fetch_add(1, Ordering::Relaxed);
        return reply(grpc, false);
    };
    let body = body.to_bytes();
    let delay = stats.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    let spans = if grpc {
        grpc_frames(body, gzip)
    } else {
        payload(&body, gzip)
    };
    match spans {
        Some(n) => {
            stats.spans.fetch_add(n, Ordering::Relaxed);
            stats.requests.fetch_add(1, Ordering::Relaxed);
            reply(grpc, true)
        }
        None => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            reply(grpc, false)
        }
    }
}

fn header_is(h: &HeaderMap, name: &str, value: &str) -> bool {
    h.get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Spans in the gRPC length-prefixed messages of `body`.
fn grpc_frames(mut body: Bytes, gzip: bool) -> Option<u64> {
    let mut spans = 0;
    while body.has_remaining() {
        if body.len() < 5 {
            return None;
        }
        let compressed = body.get_u8() == 1;
        let len = body.get_u32() as usize;
        if body.len() < len {
            return None;
        }
        let msg = body.split_to(len);
        spans += payload(&msg, compressed && gzip)?;
    }
    Some(spans)
}

fn payload(bytes: &[u8], gzip: bool) -> Option<u64> {
    if gzip {
        let raw = spangate::data::gzip::decompress(bytes, 512 << 20).ok()?;
        count_spans(&raw)
    } else {
        count_spans(bytes)
    }
}

fn reply(grpc: bool, ok: bool) -> Response<Body> {
    if grpc {
        let mut trailers = HeaderMap::new();
        let status = if ok { "0" } else { "3" }; // INVALID_ARGUMENT
        trailers.insert("grpc-status", HeaderValue::from_static(status));
        // One empty ExportTraceServiceResponse message.
        let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]))
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed_unsync();
        let mut r = Response::new(body);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::new()).boxed_unsync());
        if !ok {
            *r.status_mut() = StatusCode::BAD_REQUEST;
        }
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        r
    }
}

/// Spans in an encoded ExportTraceServiceRequest: resource_spans (1) > scope_spans (2) >
/// spans (2), skipping every other field. `None` when the bytes are not valid protobuf.
pub fn count_spans(buf: &[u8]) -> Option<u64> {
    let mut n = 0;
    for_each_len_field(buf, 1, |rs| {
        for_each_len_field(rs, 2, |ss| {
            n += for_each_len_field(ss, 2, |_| Some(()))?;
            Some(())
        })?;
        Some(())
    })?;
    Some(n)
}

/// Calls `f` on every length-delimited field numbered `field`; returns how many there were.
fn for_each_len_field(
    mut buf: &[u8],
    field: u64,
    mut f: impl FnMut(&[u8]) -> Option<()>,
) -> Option<u64> {
    let mut n = 0;
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        match key & 7 {
            0 => {
                varint(&mut buf)?;
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                if key >> 3 == field {
                    f(value)?;
                    n += 1;
                }
                buf = rest;
            }
            _ => return None,
        }
    }
    Some(n)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn counts_like_a_full_decode() {
        for req in crate::corpus::decoded(50, 37, 7) {
            let bytes = req.encode_to_vec();
            let want = spangate::data::count_spans(&req.resource_spans) as u64;
            assert_eq!(count_spans(&bytes), Some(want));
            let gz = spangate::data::gzip::compress(&bytes);
            let mut framed = vec![1u8];
            framed.extend((gz.len() as u32).to_be_bytes());
            framed.extend(&gz);
            assert_eq!(grpc_frames(Bytes::from(framed), true), Some(want));
        }
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(count_spans(&[0x0a, 0x05, 1]), None);
        assert_eq!(count_spans(&[0x0f]), None);
        assert_eq!(
            grpc_frames(Bytes::from_static(&[0, 0, 0, 0, 9, 1]), false),
            None
        );
    }
}
