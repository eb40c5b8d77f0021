//! The `tls` block every network exporter takes, and the endpoint scheme rules of the contrib
//! collector: `http://` plaintext, `https://` TLS, bare `host:port` TLS unless `insecure`.

use serde::Deserialize;

use crate::config::Problems;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plaintext for a bare `host:port` endpoint (gRPC).
    #[serde(default)]
    pub insecure: bool,
    /// PEM CA bundle to trust instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM client certificate (mTLS), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM client key (mTLS), with `cert_file`.
    #[serde(default)]
    pub key_file: Option<String>,
}

impl ClientTls {
    pub fn check(&self, out: &mut Problems) {
        if self.cert_file.is_some() != self.key_file.is_some() {
            out.push((
                "tls".into(),
                "cert_file and key_file must be given together".into(),
            ));
        }
        if let Err(e) = self.rustls(&[]) {
            out.push(("tls".into(), e.to_string()));
        }
    }

    pub fn rustls(
        &self,
        alpn: &[&[u8]],
    ) -> Result<rustls::ClientConfig, crate::settings::tls::TlsError> {
        crate::settings::tls::client_config(
            self.ca_file.as_deref(),
            self.cert_file.as_deref(),
            self.key_file.as_deref(),
            alpn,
        )
    }
}

/// `endpoint` as a URL with a scheme chosen by the rules above.
pub fn endpoint_url(endpoint: &str, tls: &ClientTls) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else if tls.insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_rules() {
        let secure = ClientTls::default();
        let insecure = ClientTls {
            insecure: true,
            ..Default::default()
        };
        assert_eq!(endpoint_url("h:4317", &secure), "https://h:4317");
        assert_eq!(endpoint_url("h:4317", &insecure), "http://h:4317");
        assert_eq!(endpoint_url("http://h:1", &secure), "http://h:1");
        assert_eq!(endpoint_url("https://h:1", &insecure), "https://h:1");
    }
}
