//! The `tls` block every client takes (the OTLP-based exporters and both Kafka components), and
//! the endpoint scheme rules of the contrib collector: `http://` plaintext, `https://` TLS, bare
//! `host:port` TLS unless `insecure`.

use serde::Deserialize;

use crate::config::{join_path, Problems};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plaintext for a bare `host:port` endpoint (gRPC, Kafka).
    #[serde(default)]
    pub insecure: bool,
    /// Encrypt but accept any server certificate and name. For tests only: it gives up the
    /// protection against a man in the middle.
    #[serde(default)]
    pub insecure_skip_verify: bool,
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
    /// Problems with the block found at `at` (`tls`, `auth.tls`): each file is read now, so a
    /// wrong path is a validation error naming its key, not a failure at the first connection.
    pub fn check(&self, at: &str, out: &mut Problems) {
        let before = out.len();
        if self.cert_file.is_some() != self.key_file.is_some() {
            out.push((
                at.into(),
                "cert_file and key_file must be given together".into(),
            ));
        }
        for (key, file) in [("ca_file", &self.ca_file), ("cert_file", &self.cert_file)] {
            if let Some(f) = file {
                if let Err(e) = crate::settings::tls::load_certs(f) {
                    out.push((join_path(at, key), e.to_string()));
                }
            }
        }
        if let Some(f) = &self.key_file {
            if let Err(e) = crate::settings::tls::load_key(f) {
                out.push((join_path(at, "key_file"), e.to_string()));
            }
        }
        if self.insecure && self.insecure_skip_verify {
            out.push((
                join_path(at, "insecure_skip_verify"),
                "has no effect with insecure: true (no TLS at all)".into(),
            ));
        }
        if out.len() > before {
            return;
        }
        // The files read; rustls may still refuse them together (a key that is not the cert's).
        if let Err(e) = self.rustls(&[]) {
            out.push((at.into(), e.to_string()));
        }
    }

    pub fn rustls(
        &self,
        alpn: &[&[u8]],
    ) -> Result<rustls::ClientConfig, crate::settings::tls::TlsError> {
        let mut config = crate::settings::tls::client_config(
            self.ca_file.as_deref(),
            self.cert_file.as_deref(),
            self.key_file.as_deref(),
            alpn,
        )?;
        if self.insecure_skip_verify {
            crate::settings::tls::skip_verification(&mut config);
        }
        Ok(config)
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

    #[test]
    fn problems_name_their_key() {
        let tls = ClientTls {
            cert_file: Some("/nonexistent/cert.pem".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        tls.check("auth.tls", &mut out);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["auth.tls", "auth.tls.ca_file", "auth.tls.cert_file"]);
        assert!(out[1].1.contains("/nonexistent/ca.pem"), "{out:?}");
    }
}
