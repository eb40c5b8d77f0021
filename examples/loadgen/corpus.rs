//! Generated traces shaped like a small shop's microservices, as their SDKs would export them:
//! six services, each trace crossing several of them (client and server spans, database and
//! cache calls), mixed attribute types (string, int, double, bool, array), events, ~2% failed
//! traces with exception events, ~5% of spans carrying PII (emails, card numbers, phone numbers,
//! client IPs, bearer tokens), and session ids on the front end. Each request holds the spans of
//! one service (one resource), as an SDK's batch exporter sends them.
//!
//! Requests are encoded once; `Corpus::request(i)` stamps a fresh trace-id suffix per pass over
//! the corpus, so traces never repeat however long a run lasts (tail sampling sees new traces).
#![allow(dead_code)] // shared with the benches, which use part of it

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

const SERVICES: [(&str, &str, &str); 6] = [
    ("frontend", "nodejs", "@opentelemetry/instrumentation-http"),
    (
        "checkout",
        "go",
        "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
    ),
    ("cart", "dotnet", "OpenTelemetry.Instrumentation.AspNetCore"),
    ("payment", "java", "io.opentelemetry.spring-webmvc-6.0"),
    (
        "product-catalog",
        "go",
        "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc",
    ),
    ("auth", "python", "opentelemetry.instrumentation.flask"),
];
const FRONTEND: usize = 0;
const CHECKOUT: usize = 1;
const CART: usize = 2;
const PAYMENT: usize = 3;
const CATALOG: usize = 4;
const AUTH: usize = 5;

const PII_EMAILS: [&str; 4] = [
    "jane.doe@example.com",
    "m.rossi@example.org",
    "li.wei+shop@example.net",
    "o.kowalski@example.com",
];
const PII_CARDS: [&str; 3] = [
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "378282246310005",
];
const PII_PHONES: [&str; 2] = ["+44 20 7946 0958", "+1 (415) 555-0132"];

/// Pre-encoded requests with the offsets of every trace id in them.
pub struct Corpus {
    requests: Vec<Template>,
    pub spans_per_request: usize,
    /// Total spans in one pass over `requests`.
    pub spans: u64,
    pub bytes: u64,
}

struct Template {
    bytes: Vec<u8>,
    spans: u64,
    /// Where the last 8 bytes of a trace id start.
    id_suffixes: Vec<usize>,
}

impl Corpus {
    /// About `traces` traces (13 spans each), cut into per-service requests of at most
    /// `spans_per_request` spans; deterministic for a given `seed`.
    pub fn generate(traces: usize, spans_per_request: usize, seed: u64) -> Corpus {
        let per_service = decoded(traces, spans_per_request, seed);
        let mut requests = Vec::new();
        for req in per_service {
            let ids: std::collections::HashSet<&[u8]> = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.trace_id.as_slice())
                .collect();
            let bytes = req.encode_to_vec();
            // A span's trace id is field 1, 16 bytes: tag 0x0a, length 0x10.
            let id_suffixes = (0..bytes.len().saturating_sub(18))
                .filter(|&i| {
                    bytes[i] == 0x0a && bytes[i + 1] == 0x10 && ids.contains(&bytes[i + 2..i + 18])
                })
                .map(|i| i + 10)
                .collect();
            requests.push(Template {
                spans: spangate::data::count_spans(&req.resource_spans) as u64,
                bytes,
                id_suffixes,
            });
        }
        Corpus {
            spans: requests.iter().map(|r| r.spans).sum(),
            bytes: requests.iter().map(|r| r.bytes.len() as u64).sum(),
            requests,
            spans_per_request,
        }
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// The `i`th request sent (any `i`): corpus entry `i % len`, trace ids made unique to the
    /// pass `i / len`. Returns the encoded request and its span count.
    pub fn request(&self, i: u64) -> (Bytes, u64) {
        let t = &self.requests[(i % self.requests.len() as u64) as usize];
        let pass = (i / self.requests.len() as u64).to_le_bytes();
        let mut out = t.bytes.clone();
        for &at in &t.id_suffixes {
            out[at..at + 8].copy_from_slice(&pass);
        }
        (Bytes::from(out), t.spans)
    }

    /// The entries as they are encoded (pass 0), for measuring codecs on the same data.
    pub fn encoded(&self) -> impl Iterator<Item = &[u8]> {
        self.requests.iter().map(|t| t.bytes.as_slice())
    }
}

/// The corpus as decoded requests: one per service per `spans_per_request` spans.
pub fn decoded(
    traces: usize,
    spans_per_request: usize,
    seed: u64,
) -> Vec<ExportTraceServiceRequest> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for t in 0..traces {
        trace(&mut rng, t as u64, &mut by_service);
    }
    let mut out = Vec::new();
    for (svc, spans) in by_service.into_iter().enumerate() {
        let mut spans = spans.into_iter().peekable();
        while spans.peek().is_some() {
            let chunk: Vec<Span> = spans.by_ref().take(spans_per_request.max(1)).collect();
            out.push(request(svc, &mut rng, chunk));
        }
    }
    // Interleave services as the collector would see them arrive.
    let n = out.len();
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut slots: Vec<Option<ExportTraceServiceRequest>> = out.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn request(svc: usize, rng: &mut fastrand::Rng, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let (name, lang, scope) = SERVICES[svc];
    let pod = format!(
        "{name}-7d9f8b6c5-{}",
        rng.alphanumeric().to_ascii_lowercase()
    );
    let resource = Resource {
        attributes: vec![
            kv("service.name", s(name)),
            kv("service.version", s("1.42.0")),
            kv("service.namespace", s("shop")),
            kv("deployment.environment.name", s("production")),
            kv("host.name", s("ip-10-0-12-34.eu-west-1.compute.internal")),
            kv("k8s.pod.name", s(&pod)),
            kv("k8s.namespace.name", s("shop")),
            kv("k8s.node.name", s("node-17")),
            kv("cloud.provider", s("aws")),
            kv("cloud.region", s("eu-west-1")),
            kv("telemetry.sdk.name", s("opentelemetry")),
            kv("telemetry.sdk.language", s(lang)),
            kv("telemetry.sdk.version", s("1.28.0")),
        ],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: "0.50.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// One checkout-like trace: frontend -> auth, catalog, checkout -> cart (+cache), payment (+db).
fn trace(rng: &mut fastrand::Rng, n: u64, out: &mut [Vec<Span>]) {
    let mut trace_id = [0u8; 16];
    rng.fill(&mut trace_id);
    let failed = rng.u32(0..100) < 2;
    let session = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    );
    let start = 1_763_700_000_000_000_000 + n * 3_000_000;
    let mut b = Builder {
        rng,
        trace_id,
        out,
        next_id: 0,
    };
    let root_end = start + 40_000_000 + b.rng.u64(..60_000_000);
    let route = ["/checkout", "/cart", "/product/{id}", "/"][b.rng.usize(..4)];
    let root = b.span(
        FRONTEND,
        None,
        &format!("POST {route}"),
        2,
        start,
        root_end,
        |b, a| {
            a.extend(http_server(
                b.rng,
                "POST",
                route,
                if failed { 500 } else { 200 },
            ));
            a.push(kv("session.id", s(&session)));
            let public = b.pii();
            a.push(kv("client.address", s(&ip(b.rng, public))));
            if b.pii() {
                a.push(kv(
                    "enduser.id",
                    s(PII_EMAILS[b.rng.usize(..PII_EMAILS.len())]),
                ));
            } else {
                a.push(kv("enduser.id", Value::IntValue(b.rng.i64(1..1_000_000))));
            }
            a.push(kv(
                "app.feature_flag.new_checkout",
                Value::BoolValue(b.rng.bool()),
            ));
        },
    );
    let t = start + 1_000_000;
    let auth_c = b.span(
        FRONTEND,
        Some(root),
        "POST /auth/verify",
        3,
        t,
        t + 4_000_000,
        |b, a| {
            a.extend(http_client(b, "POST", "http://auth:8080/auth/verify", 200));
        },
    );
    b.span(
        AUTH,
        Some(auth_c),
        "POST /auth/verify",
        2,
        t + 300_000,
        t + 3_500_000,
        |b, a| {
            a.extend(http_server(b.rng, "POST", "/auth/verify", 200));
            if b.pii() {
                a.push(kv(
                    "http.request.header.authorization",
                    s("Bearer 8f14e45fceea167a5a36dedd4bea2543"),
                ));
            }
        },
    );
    let t = t + 5_000_000;
    b.rpc_call(
        (FRONTEND, CATALOG),
        root,
        "oteldemo.ProductCatalogService/GetProduct",
        (t, t + 3_000_000),
        (t + 200_000, t + 2_600_000),
        |b, a| {
            let ids = (0..b.rng.usize(1..5))
                .map(|_| AnyValue {
                    value: Some(s(&format!("SKU-{:05}", b.rng.u32(..100_000)))),
                })
                .collect();
            a.push(kv(
                "app.product.ids",
                Value::ArrayValue(ArrayValue { values: ids }),
            ));
        },
    );
    let t = t + 4_000_000;
    let co_c = b.span(
        FRONTEND,
        Some(root),
        "POST /api/checkout",
        3,
        t,
        root_end - 2_000_000,
        |b, a| {
            a.extend(http_client(
                b,
                "POST",
                "http://checkout:8080/api/checkout",
                if failed { 500 } else { 200 },
            ));
        },
    );
    let co = b.span(
        CHECKOUT,
        Some(co_c),
        "POST /api/checkout",
        2,
        t + 500_000,
        root_end - 3_000_000,
        |b, a| {
            a.extend(http_server(
                b.rng,
                "POST",
                "/api/checkout",
                if failed { 500 } else { 200 },
            ));
            a.push(kv("session.id", s(&session)));
            a.push(kv("app.order.items", Value::IntValue(b.rng.i64(1..12))));
            a.push(kv(
                "app.order.total",
                Value::DoubleValue(b.rng.f64() * 400.0),
            ));
            a.push(kv("app.order.currency", s("EUR")));
        },
    );
    let t = t + 1_000_000;
    let cart_s = b.rpc_call(
        (CHECKOUT, CART),
        co,
        "oteldemo.CartService/GetCart",
        (t, t + 6_000_000),
        (t + 200_000, t + 5_500_000),
        |b, a| {
            a.push(kv("app.cart.items", Value::IntValue(b.rng.i64(0..12))));
        },
    );
    let miss = b.rng.u32(..4) == 0;
    b.span(
        CART,
        Some(cart_s),
        "HGET",
        3,
        t + 500_000,
        t + 900_000,
        |b, a| {
            a.push(kv("db.system", s("redis")));
            a.push(kv("db.operation.name", s("HGET")));
            a.push(kv("server.address", s("redis-cart")));
            a.push(kv("server.port", Value::IntValue(6379)));
            a.push(kv(
                "db.response.returned_rows",
                Value::IntValue(b.rng.i64(0..20)),
            ));
        },
    );
    if miss {
        if let Some(last) = b.out[CART].last_mut() {
            last.events.push(Event {
                time_unix_nano: t + 800_000,
                name: "cache.miss".into(),
                attributes: vec![kv("cache.key", s("cart:{user}"))],
                ..Default::default()
            });
        }
    }
    let t = t + 7_000_000;
    let pay_s = b.rpc_call(
        (CHECKOUT, PAYMENT),
        co,
        "oteldemo.PaymentService/Charge",
        (t, t + 20_000_000),
        (t + 300_000, t + 19_000_000),
        |b, a| {
            a.push(kv(
                "app.payment.amount",
                Value::DoubleValue(b.rng.f64() * 400.0),
            ));
            a.push(kv(
                "app.payment.card_type",
                s(["visa", "mastercard", "amex"][b.rng.usize(..3)]),
            ));
            a.push(kv(
                "app.loyalty.level",
                s(["gold", "silver", "bronze"][b.rng.usize(..3)]),
            ));
            if b.pii() {
                a.push(kv(
                    "app.payment.card",
                    s(PII_CARDS[b.rng.usize(..PII_CARDS.len())]),
                ));
            }
            a.push(kv("app.payment.charged", Value::BoolValue(!failed)));
        },
    );
    b.span(PAYMENT, Some(pay_s), "SELECT shop.payments", 3, t + 1_000_000, t + 4_000_000, |b, a| {
        a.push(kv("db.system", s("postgresql")));
        a.push(kv("db.namespace", s("shop")));
        a.push(kv("db.operation.name", s("SELECT")));
        a.push(kv("db.collection.name", s("payments")));
        a.push(kv("db.query.text", s("SELECT id, status, amount FROM payments WHERE order_id = $1 AND customer_id = $2")));
        a.push(kv("server.address", s("postgres-payments")));
        a.push(kv("server.port", Value::IntValue(5432)));
        if b.pii() {
            a.push(kv("app.customer.phone", s(PII_PHONES[b.rng.usize(..PII_PHONES.len())])));
        }
    });
    if failed {
        for svc in [PAYMENT, CHECKOUT, FRONTEND] {
            if let Some(span) = b.out[svc].iter_mut().rev().find(|s| s.trace_id == trace_id) {
                span.status = Some(Status {
                    code: 2,
                    message: "payment declined: card_declined".into(),
                });
                span.events.push(Event {
                    time_unix_nano: span.end_time_unix_nano - 100_000,
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.type", s("PaymentDeclinedException")),
                        kv("exception.message", s("card_declined: insufficient funds")),
                        kv("exception.stacktrace", s("PaymentDeclinedException: card_declined\n\tat oteldemo.PaymentService.charge(PaymentService.java:118)\n\tat oteldemo.PaymentService$$FastClassBySpringCGLIB.invoke(<generated>)\n\tat org.springframework.aop.framework.CglibAopProxy.intercept(CglibAopProxy.java:704)")),
                    ],
                    ..Default::default()
                });
            }
        }
    }
}

struct Builder<'a> {
    rng: &'a mut fastrand::Rng,
    trace_id: [u8; 16],
    out: &'a mut [Vec<Span>],
    next_id: u64,
}

impl Builder<'_> {
    /// Adds a span to service `svc`'s output; returns its span id.
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        svc: usize,
        parent: Option<[u8; 8]>,
        name: &str,
        kind: i32,
        start: u64,
        end: u64,
        attrs: impl FnOnce(&mut Self, &mut Vec<KeyValue>),
    ) -> [u8; 8] {
        self.next_id += 1;
        let mut id = self.rng.u64(..).to_be_bytes();
        id[7] = self.next_id as u8; // distinct within the trace even if the rng repeats
        let mut attributes = Vec::with_capacity(12);
        attrs(self, &mut attributes);
        self.out[svc].push(Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: name.into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: Some(Status::default()),
            ..Default::default()
        });
        id
    }

    /// An RPC from service `svcs.0` to `svcs.1`: the client span under `parent` and the server
    /// span under it, both with the RPC attributes, the server's with `attrs` too. Returns the
    /// server span's id.
    fn rpc_call(
        &mut self,
        svcs: (usize, usize),
        parent: [u8; 8],
        name: &str,
        client: (u64, u64),
        server: (u64, u64),
        attrs: impl FnOnce(&mut Self, &mut Vec<KeyValue>),
    ) -> [u8; 8] {
        let method = name.rsplit('/').next().unwrap_or(name);
        let id = self.span(svcs.0, Some(parent), name, 3, client.0, client.1, |b, a| {
            a.extend(rpc(b.rng, method));
        });
        self.span(svcs.1, Some(id), name, 2, server.0, server.1, |b, a| {
            a.extend(rpc(b.rng, method));
            attrs(b, a);
        })
    }

    /// About 5% of the chances to carry personal data take it.
    fn pii(&mut self) -> bool {
        self.rng.u32(..100) < 5
    }
}

fn http_server(rng: &mut fastrand::Rng, method: &str, route: &str, status: i64) -> Vec<KeyValue> {
    let ua = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    ][rng.usize(..2)];
    vec![
        kv("http.request.method", s(method)),
        kv("http.route", s(route)),
        kv("url.path", s(route)),
        kv("url.scheme", s("https")),
        kv("http.response.status_code", Value::IntValue(status)),
        kv("network.protocol.version", s("1.1")),
        kv("user_agent.original", s(ua)),
        kv("http.request.body.size", Value::IntValue(rng.i64(0..4096))),
    ]
}

fn http_client(b: &mut Builder<'_>, method: &str, url: &str, status: i64) -> Vec<KeyValue> {
    let url = if b.pii() {
        format!(
            "{url}?session={:016x}&token={:032x}",
            b.rng.u64(..),
            b.rng.u128(..)
        )
    } else {
        url.to_string()
    };
    vec![
        kv("http.request.method", s(method)),
        kv("url.full", s(&url)),
        kv("server.address", s(url.split('/').nth(2).unwrap_or("svc"))),
        kv("server.port", Value::IntValue(8080)),
        kv("http.response.status_code", Value::IntValue(status)),
        kv("http.request.resend_count", Value::IntValue(0)),
    ]
}

fn rpc(rng: &mut fastrand::Rng, method: &str) -> Vec<KeyValue> {
    vec![
        kv("rpc.system", s("grpc")),
        kv("rpc.service", s("oteldemo.Service")),
        kv("rpc.method", s(method)),
        kv("rpc.grpc.status_code", Value::IntValue(0)),
        kv("network.peer.port", Value::IntValue(rng.i64(30000..60000))),
    ]
}

fn ip(rng: &mut fastrand::Rng, public: bool) -> String {
    if public {
        format!("203.0.113.{}", rng.u8(1..255))
    } else {
        format!("10.0.{}.{}", rng.u8(..255), rng.u8(1..255))
    }
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}
