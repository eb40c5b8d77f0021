//! `exporters.otlp` (and its aliases `otlp_grpc`, `otlp_http`, `otlphttp`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::ExporterConfig;
use crate::settings::client_tls::ClientTls;

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Proto,
    Json,
}

/// Header values often carry credentials: never print them.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `host:port` (gRPC), or `http(s)://host:port[/base]`.
    pub endpoint: String,
    /// `grpc` (default for `otlp`) or `http` (default for `otlphttp`).
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    #[serde(default)]
    pub headers: Headers,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// TLS settings; see the endpoint scheme rules.
    #[serde(default)]
    pub tls: ClientTls,
    /// HTTP only: `proto` (default) or `json` bodies.
    #[serde(default)]
    pub encoding: Encoding,
    /// HTTP only: the full URL to POST to (default `<endpoint>/v1/traces`).
    #[serde(default)]
    pub traces_endpoint: Option<String>,
}

impl OtlpExporterConfig {
    pub fn protocol(&self) -> Protocol {
        self.protocol.unwrap_or(Protocol::Grpc)
    }
}

impl Check for OtlpExporterConfig {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.endpoint.trim().is_empty() {
            out.push(("endpoint".into(), "must not be empty".into()));
        }
        let url = crate::settings::client_tls::endpoint_url(&self.endpoint, &self.tls);
        if url.parse::<http::Uri>().is_err() {
            out.push((
                "endpoint".into(),
                format!("`{}` is not a valid endpoint", self.endpoint),
            ));
        }
        // Settled after parsing (the exporter type picks the default); checked then.
        if self.protocol == Some(Protocol::Grpc) {
            if self.encoding == Encoding::Json {
                out.push((
                    "encoding".into(),
                    "json applies to protocol http only".into(),
                ));
            }
            if self.traces_endpoint.is_some() {
                out.push((
                    "traces_endpoint".into(),
                    "applies to protocol http only".into(),
                ));
            }
        }
        for (k, v) in &self.headers.0 {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                out.push((format!("headers.{k}"), "not a valid HTTP header".into()));
            }
        }
        self.tls.check("tls", &mut out);
        out
    }
}

/// The config with its protocol settled (`default` when unset) and checked.
pub fn parse_settled(
    v: &serde_json::Value,
    default: Protocol,
) -> Result<OtlpExporterConfig, Problems> {
    let mut c = parse_config::<OtlpExporterConfig>(v)?;
    match c.protocol {
        None => c.protocol = Some(default),
        Some(p) if p != default && default == Protocol::Http => {
            return Err(vec![(
                "protocol".into(),
                "this exporter type speaks http; use type `otlp` for grpc".into(),
            )])
        }
        Some(_) => {}
    }
    // Checks that depend on the protocol run again now that it is settled.
    let problems = c.check();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(c)
}

pub fn parse_with_default(
    v: &serde_json::Value,
    default: Protocol,
) -> Result<Arc<dyn ExporterConfig>, Problems> {
    Ok(Arc::new(parse_settled(v, default)?))
}
