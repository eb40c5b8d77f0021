//! `exporters.tempo`: the `otlp` exporter's settings (`endpoint`, `protocol`, `headers`,
//! `compression`, `tls`, queue and retry) plus Tempo's tenancy and basic auth.

use std::sync::Arc;

use serde::Deserialize;

use crate::component::registry::{parse_config, Check, Problems};
use crate::component::{BuildError, Exporter, ExporterConfig, ExporterContext};
use crate::config::secret::Secret;
use crate::data::json::encode_base64;
use crate::exporters::otlp_client::config::{parse_settled, OtlpExporterConfig, Protocol};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: Secret,
}

/// The keys Tempo adds to the `otlp` exporter's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenancy {
    /// Sent as `X-Scope-OrgID`; with `tenant_from_attribute`, the tenant of resources without it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A resource attribute naming each resource's tenant: one request per tenant.
    #[serde(default)]
    pub tenant_from_attribute: Option<String>,
    /// Basic auth (Grafana Cloud: instance id and API token).
    #[serde(default)]
    pub auth: Option<BasicAuth>,
}

pub const TENANT_HEADER: &str = "x-scope-orgid";

impl Check for Tenancy {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if let Some(t) = &self.tenant {
            if t.is_empty() || http::HeaderValue::from_str(t).is_err() {
                out.push(("tenant".into(), "must be a non-empty header value".into()));
            }
        }
        if self.tenant_from_attribute.as_deref() == Some("") {
            out.push(("tenant_from_attribute".into(), "must not be empty".into()));
        }
        if let Some(a) = &self.auth {
            if a.username.is_empty() {
                out.push(("auth.username".into(), "must not be empty".into()));
            }
            if a.password.is_empty() {
                out.push((
                    "auth.password".into(),
                    "must not be empty (an unset variable gives an empty password)".into(),
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct TempoExporterConfig {
    /// The OTLP settings, with the static headers (auth, a fixed tenant) already added.
    pub otlp: OtlpExporterConfig,
    pub tenancy: Tenancy,
}

pub fn parse(v: &serde_json::Value) -> Result<Arc<dyn ExporterConfig>, Problems> {
    let mut rest = v.as_object().cloned().unwrap_or_default();
    let mut own = serde_json::Map::new();
    for key in ["tenant", "tenant_from_attribute", "auth"] {
        if let Some(x) = rest.remove(key) {
            own.insert(key.into(), x);
        }
    }
    let own_value = serde_json::Value::Object(own);
    let rest_value = serde_json::Value::Object(rest);
    let (tenancy, otlp) = match (
        parse_config::<Tenancy>(&own_value),
        parse_settled(&rest_value, Protocol::Grpc),
    ) {
        (Ok(t), Ok(o)) => (t, o),
        (t, o) => {
            let mut problems = t.err().unwrap_or_default();
            problems.extend(o.err().unwrap_or_default());
            return Err(problems);
        }
    };
    let mut problems = Vec::new();
    let mut otlp = otlp;
    if otlp
        .headers
        .0
        .keys()
        .any(|k| k.eq_ignore_ascii_case(TENANT_HEADER))
    {
        problems.push((
            "headers".into(),
            "set the tenant with `tenant` or `tenant_from_attribute`, not as a header".into(),
        ));
    }
    if let Some(a) = &tenancy.auth {
        let token = encode_base64(format!("{}:{}", a.username, a.password.expose()).as_bytes());
        otlp.headers
            .0
            .insert("authorization".into(), format!("Basic {token}"));
    }
    if let (Some(t), None) = (&tenancy.tenant, &tenancy.tenant_from_attribute) {
        otlp.headers.0.insert(TENANT_HEADER.into(), t.clone());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Arc::new(TempoExporterConfig { otlp, tenancy }))
}

impl ExporterConfig for TempoExporterConfig {
    fn build(&self, ctx: &ExporterContext) -> Result<Arc<dyn Exporter>, BuildError> {
        Ok(Arc::new(
            super::TempoExporter::new(self).map_err(|e| BuildError::new(&ctx.id, e))?,
        ))
    }
}
