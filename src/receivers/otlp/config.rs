//! `receivers.otlp` config.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{BoxFuture, BuildError, ReceiverConfig, ReceiverContext, RunningReceiver};
use crate::settings::tls::ServerTls;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Which transports to serve; at least one.
    #[serde(default)]
    pub protocols: Protocols,
    /// Require `Authorization: Bearer <token>` on every request.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Serve TLS (and with `client_ca_file`, require client certificates).
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// Attributes kept per span; the excess is dropped and counted.
    #[serde(default)]
    pub max_attributes_per_span: Option<usize>,
    /// Longest string (or bytes) attribute value kept; longer ones are truncated and counted.
    #[serde(default)]
    pub max_attribute_value_length: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC; `grpc:` with nothing under it means the defaults.
    #[serde(default, deserialize_with = "present_means_default")]
    pub grpc: Option<GrpcSettings>,
    /// OTLP/HTTP (`POST /v1/traces`); `http:` alone means the defaults.
    #[serde(default, deserialize_with = "present_means_default")]
    pub http: Option<HttpSettings>,
}

/// A key that is present, even with a null value, enables the protocol with defaults.
fn present_means_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSettings {
    /// `host:port` to listen on (default `0.0.0.0:4317`).
    #[serde(default = "grpc_endpoint")]
    pub endpoint: String,
    /// Largest request message, in MiB, checked after decompression (default 4).
    #[serde(default = "four")]
    pub max_recv_msg_size_mib: u64,
    /// Longest a request's message may take to arrive (default 30s); then the stream is
    /// answered DEADLINE_EXCEEDED and counted (`read_timeout`).
    #[serde(default = "thirty_s", with = "crate::config::duration")]
    pub read_timeout: Duration,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            endpoint: grpc_endpoint(),
            max_recv_msg_size_mib: four(),
            read_timeout: thirty_s(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port` to listen on (default `0.0.0.0:4318`).
    #[serde(default = "http_endpoint")]
    pub endpoint: String,
    /// Largest request body in bytes, checked after decompression (default 20 MiB).
    #[serde(default = "twenty_mib")]
    pub max_request_body_size: u64,
    /// Path that takes traces (default `/v1/traces`).
    #[serde(default = "traces_path")]
    pub traces_url_path: String,
    /// Longest the request line and headers may take (default 10s); then the connection is
    /// closed and counted (`header_timeout`).
    #[serde(default = "ten_s", with = "crate::config::duration")]
    pub read_header_timeout: Duration,
    /// Longest a request's body may take to arrive (default 30s); then 408, counted
    /// (`read_timeout`).
    #[serde(default = "thirty_s", with = "crate::config::duration")]
    pub read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            endpoint: http_endpoint(),
            max_request_body_size: twenty_mib(),
            traces_url_path: traces_path(),
            read_header_timeout: ten_s(),
            read_timeout: thirty_s(),
        }
    }
}

fn grpc_endpoint() -> String {
    "0.0.0.0:4317".into()
}
fn http_endpoint() -> String {
    "0.0.0.0:4318".into()
}
fn four() -> u64 {
    4
}
fn twenty_mib() -> u64 {
    20 * 1024 * 1024
}
fn ten_s() -> Duration {
    Duration::from_secs(10)
}
fn thirty_s() -> Duration {
    Duration::from_secs(30)
}
fn traces_path() -> String {
    "/v1/traces".into()
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The token clients must send as `Authorization: Bearer <token>`.
    pub bearer_token: String,
}

// The token is a secret: never print it.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("bearer_token", &"<redacted>")
            .finish()
    }
}

fn check_endpoint(field: &str, endpoint: &str, out: &mut Problems) {
    let ok = endpoint
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !ok {
        out.push((
            field.into(),
            format!("`{endpoint}` is not a host:port address (e.g. 0.0.0.0:4317)"),
        ));
    }
}

impl OtlpReceiverConfig {
    pub fn limits(&self) -> crate::data::limits::AttrLimits {
        crate::data::limits::AttrLimits {
            max_attributes_per_span: self.max_attributes_per_span,
            max_attribute_value_length: self.max_attribute_value_length,
        }
    }
}

impl Check for OtlpReceiverConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        crate::receivers::intake::check_limits(&self.limits(), &mut out);
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            out.push((
                "protocols".into(),
                "enable at least one of `grpc` or `http`".into(),
            ));
        }
        if let Some(g) = &self.protocols.grpc {
            check_endpoint("protocols.grpc.endpoint", &g.endpoint, &mut out);
            if g.max_recv_msg_size_mib == 0 {
                out.push((
                    "protocols.grpc.max_recv_msg_size_mib".into(),
                    "must be at least 1".into(),
                ));
            }
            if g.read_timeout.is_zero() {
                out.push((
                    "protocols.grpc.read_timeout".into(),
                    "must be above 0 (a stalled client would hold its stream forever)".into(),
                ));
            }
        }
        if let Some(h) = &self.protocols.http {
            check_endpoint("protocols.http.endpoint", &h.endpoint, &mut out);
            if h.max_request_body_size == 0 {
                out.push((
                    "protocols.http.max_request_body_size".into(),
                    "must be at least 1".into(),
                ));
            }
            for (key, d) in [
                ("read_header_timeout", h.read_header_timeout),
                ("read_timeout", h.read_timeout),
            ] {
                if d.is_zero() {
                    out.push((
                        format!("protocols.http.{key}"),
                        "must be above 0 (a stalled client would hold its connection forever)"
                            .into(),
                    ));
                }
            }
            if !h.traces_url_path.starts_with('/') {
                out.push((
                    "protocols.http.traces_url_path".into(),
                    "must start with `/`".into(),
                ));
            }
        }
        if let Some(a) = &self.auth {
            if a.bearer_token.is_empty() {
                out.push((
                    "auth.bearer_token".into(),
                    "must not be empty (an unset variable gives an empty token)".into(),
                ));
            }
        }
        if let Some(t) = &self.tls {
            // Loading now makes `validate` catch unreadable or invalid certificates.
            if let Err(e) = t.server_config(&[]) {
                out.push(("tls".into(), e.to_string()));
            }
        }
        out
    }
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ReceiverConfig>, Problems> {
    Ok(Arc::new(parse_config::<OtlpReceiverConfig>(v)?))
}

impl ReceiverConfig for OtlpReceiverConfig {
    fn endpoints(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        if let Some(g) = &self.protocols.grpc {
            v.push(("protocols.grpc.endpoint".into(), g.endpoint.clone()));
        }
        if let Some(h) = &self.protocols.http {
            v.push(("protocols.http.endpoint".into(), h.endpoint.clone()));
        }
        v
    }

    fn start(&self, ctx: ReceiverContext) -> BoxFuture<'_, Result<RunningReceiver, BuildError>> {
        Box::pin(super::start(self.clone(), ctx))
    }
}
