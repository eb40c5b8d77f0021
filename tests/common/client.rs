//! Clients: the OpenTelemetry SDK with `opentelemetry-otlp` (gRPC and HTTP), and raw HTTP and
//! gRPC requests for malformed input.

use std::io::{Read, Write};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Otlp {
    Grpc,
    Http,
}

/// What the SDK sent for one trace: its id and the span ids.
#[derive(Debug, Clone)]
pub struct SentTrace {
    pub trace_id: [u8; 16],
    pub root_span_id: [u8; 8],
    pub child_span_id: [u8; 8],
}

/// Sends `traces` traces of two spans each (a server root with a client child carrying an event
/// and a link to the previous trace) through the real SDK, and flushes.
pub fn send_with_sdk(
    protocol: Otlp,
    port: u16,
    traces: usize,
    token: Option<&str>,
) -> Vec<SentTrace> {
    // The SDK's reqwest shares our build of it, which has no built-in crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut headers = std::collections::HashMap::new();
    if let Some(t) = token {
        headers.insert("authorization".to_string(), format!("Bearer {t}"));
    }
    let exporter = match protocol {
        Otlp::Grpc => {
            let _guard = rt.enter();
            let mut md = tonic::metadata::MetadataMap::new();
            if let Some(t) = token {
                md.insert("authorization", format!("Bearer {t}").parse().unwrap());
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_metadata(md)
                .with_timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        }
        Otlp::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
            .with_headers(headers)
            .with_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("checkout")
                .with_attribute(KeyValue::new("deployment.environment", "test"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("spangate-tests");
    let mut sent = Vec::new();
    let mut previous: Option<opentelemetry::trace::SpanContext> = None;
    for i in 0..traces {
        let root = tracer
            .span_builder(format!("GET /cart/{i}"))
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200i64),
                KeyValue::new("index", i as i64),
                KeyValue::new("ratio", 0.5),
                KeyValue::new("cached", true),
            ])
            .start(&tracer);
        let root_ctx = root.span_context().clone();
        let cx = opentelemetry::Context::current_with_span(root);
        let mut links = Vec::new();
        if let Some(p) = previous.take() {
            links.push(Link::new(
                p,
                vec![KeyValue::new("link.kind", "previous")],
                0,
            ));
        }
        let mut child = tracer
            .span_builder("SELECT cart")
            .with_kind(SpanKind::Client)
            .with_links(links)
            .start_with_context(&tracer, &cx);
        child.add_event(
            "cache.miss",
            vec![KeyValue::new("key", format!("cart:{i}"))],
        );
        child.set_status(Status::error("db timeout"));
        let child_ctx = child.span_context().clone();
        child.end();
        cx.span().end();
        sent.push(SentTrace {
            trace_id: root_ctx.trace_id().to_bytes(),
            root_span_id: root_ctx.span_id().to_bytes(),
            child_span_id: child_ctx.span_id().to_bytes(),
        });
        previous = Some(child_ctx);
    }
    let flushed = std::thread::spawn(move || {
        let r = provider.force_flush();
        let _ = provider.shutdown();
        r
    })
    .join()
    .unwrap();
    flushed.expect("sdk flush");
    drop(rt);
    sent
}

/// Status, headers (names lowercased) and body of an HTTP response.
pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// A raw HTTP/1.1 POST on 127.0.0.1; returns (status, headers lowercased, body).
pub fn http_post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
    try_http_post(port, path, headers, body).expect("an HTTP response")
}

/// [`http_post`], but `None` when no response came: a server that answers before reading the
/// whole body (refusing it) may reset the connection under a client still writing.
pub fn try_http_post(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<HttpAnswer> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Not a wait for work under way: a receiver silent this long is stalled, which is a bug to
    // report (one was: a disk write on its runtime threads), never to wait out.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // An early answer can close the connection under the body: read what came anyway.
    let _ = s.write_all(req.as_bytes()).and_then(|_| s.write_all(body));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hdrs: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    Some((status, hdrs, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

/// gRPC framing: flag byte, big-endian length, payload.
pub fn grpc_frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(payload.len() + 5);
    b.put_u8(compressed as u8);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.to_vec()
}

/// A raw gRPC call over h2c: returns (grpc-status, grpc-message, response message bytes,
/// grpc-status-details-bin present).
pub fn grpc_call(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (i32, String, Bytes, bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .build_http::<Full<Bytes>>();
        let mut req = http::Request::post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("grpc request");
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.expect("grpc body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let pick = |name: &str| {
            trailers
                .get(name)
                .or_else(|| parts.headers.get(name))
                .map(|v| v.to_str().unwrap_or("").to_string())
        };
        let status = pick("grpc-status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let message = percent_decode(&pick("grpc-message").unwrap_or_default());
        let details = pick("grpc-status-details-bin").is_some();
        let bytes = collected.to_bytes();
        let msg = if bytes.len() >= 5 {
            bytes.slice(5..)
        } else {
            Bytes::new()
        };
        (status, message, msg, details)
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
