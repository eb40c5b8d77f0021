//! Kafka client settings shared by the `kafka` receiver and exporter: brokers, client id, SASL
//! (PLAIN, SCRAM) and TLS, in the contrib collector's layout (`auth.sasl`, `tls`; `auth.tls` is
//! accepted too), and their translation into librdkafka properties; and [`ClientLog`], librdkafka's errors and log
//! lines with repeats rate-limited and counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use serde::Deserialize;

use crate::telemetry::metrics::Counter;
use crate::telemetry::Telemetry;

use crate::config::secret::Secret;
use crate::config::{Check, Problems};
use crate::settings::client_tls::ClientTls;

/// How spans are written into (and read from) a Kafka message.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One protobuf `ExportTraceServiceRequest` per message.
    #[default]
    OtlpProto,
    /// One OTLP/JSON `ExportTraceServiceRequest` per message.
    OtlpJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl Mechanism {
    fn librdkafka(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub sasl: Option<Sasl>,
    /// The contrib collector's older place for `tls`.
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

/// The keys a Kafka receiver or exporter shares with the other: where the brokers are and how
/// to reach them. Parsed beside the component's own keys ([`ClientSettings::KEYS`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Bootstrap brokers, `host:port`.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Kafka client id (default `spangate`).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// `sasl: { mechanism, username, password }` (and the contrib's older `tls` place).
    #[serde(default)]
    pub auth: Option<Auth>,
    /// TLS to the brokers: `{ insecure, insecure_skip_verify, ca_file, cert_file, key_file }`.
    #[serde(default)]
    pub tls: Option<ClientTls>,
}

fn default_client_id() -> String {
    "spangate".into()
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            brokers: Vec::new(),
            client_id: default_client_id(),
            auth: None,
            tls: None,
        }
    }
}

impl ClientSettings {
    pub const KEYS: [&'static str; 4] = ["brokers", "client_id", "auth", "tls"];

    fn sasl(&self) -> Option<&Sasl> {
        self.auth.as_ref().and_then(|a| a.sasl.as_ref())
    }

    /// The TLS block in force and where it was given, if TLS is on.
    fn tls(&self) -> Option<(&ClientTls, &'static str)> {
        let given = match (&self.tls, self.auth.as_ref().and_then(|a| a.tls.as_ref())) {
            (Some(t), _) => Some((t, "tls")),
            (None, Some(t)) => Some((t, "auth.tls")),
            (None, None) => None,
        };
        given.filter(|(t, _)| !t.insecure)
    }

    /// librdkafka's settings for these brokers, this client id and this security.
    pub fn client_config(&self) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id);
        let (sasl, tls) = (self.sasl(), self.tls());
        let protocol = match (sasl.is_some(), tls.is_some()) {
            (false, false) => "plaintext",
            (false, true) => "ssl",
            (true, false) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        cc.set("security.protocol", protocol);
        if let Some(s) = sasl {
            if s.mechanism == Mechanism::Plain && tls.is_none() {
                tracing::warn!(
                    "kafka SASL/PLAIN without tls sends the password in clear; add a tls block"
                );
            }
            cc.set("sasl.mechanism", s.mechanism.librdkafka())
                .set("sasl.username", &s.username)
                .set("sasl.password", s.password.expose());
        }
        if let Some((t, _)) = tls {
            if let Some(f) = &t.ca_file {
                cc.set("ssl.ca.location", f);
            }
            if let (Some(c), Some(k)) = (&t.cert_file, &t.key_file) {
                cc.set("ssl.certificate.location", c)
                    .set("ssl.key.location", k);
            }
            if t.insecure_skip_verify {
                cc.set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            }
        }
        cc
    }
}

impl Check for ClientSettings {
    fn check(&self) -> Problems {
        let mut out = Vec::new();
        if self.brokers.is_empty() {
            out.push((
                "brokers".into(),
                "list at least one broker (host:port)".into(),
            ));
        }
        for (i, b) in self.brokers.iter().enumerate() {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                out.push((format!("brokers[{i}]"), format!("`{b}` is not host:port")));
            }
        }
        if self.client_id.is_empty() {
            out.push(("client_id".into(), "must not be empty".into()));
        }
        if self.tls.is_some() && self.auth.as_ref().is_some_and(|a| a.tls.is_some()) {
            out.push(("auth.tls".into(), "set tls once (tls or auth.tls)".into()));
        }
        if let Some(s) = self.sasl() {
            if s.username.is_empty() {
                out.push(("auth.sasl.username".into(), "must not be empty".into()));
            }
            if s.password.is_empty() {
                out.push((
                    "auth.sasl.password".into(),
                    "must not be empty (an unset variable gives an empty password)".into(),
                ));
            }
        }
        // librdkafka reads the files itself, later; ClientTls reads them now for a clear error.
        if let Some((t, at)) = self.tls() {
            t.check(at, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: serde_json::Value) -> (ClientConfig, Problems) {
        let mut v = v;
        v["brokers"] = serde_json::json!(["127.0.0.1:9092"]);
        let s: ClientSettings = serde_json::from_value(v).unwrap();
        (s.client_config(), s.check())
    }

    #[test]
    fn protocol_follows_sasl_and_tls() {
        use serde_json::json;
        let sasl =
            json!({"sasl": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"}});
        let cases = [
            (json!(null), json!(null), "plaintext"),
            (json!(null), json!({}), "ssl"),
            (json!(null), json!({"insecure": true}), "plaintext"),
            (sasl.clone(), json!(null), "sasl_plaintext"),
            (
                sasl.clone(),
                json!({"insecure_skip_verify": true}),
                "sasl_ssl",
            ),
            (json!({"tls": {}}), json!(null), "ssl"),
        ];
        for (auth, tls, want) in cases {
            let (cc, problems) = settings(json!({"auth": auth, "tls": tls}));
            assert!(problems.is_empty(), "{problems:?}");
            assert_eq!(cc.get("security.protocol"), Some(want), "{auth} {tls}");
        }
        let (cc, _) = settings(json!({"auth": sasl, "tls": {"insecure_skip_verify": true}}));
        assert_eq!(cc.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(cc.get("sasl.password"), Some("p"));
        assert_eq!(cc.get("enable.ssl.certificate.verification"), Some("false"));
        assert_eq!(cc.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(cc.get("client.id"), Some("spangate"));
    }

    #[test]
    fn problems_are_reported() {
        use serde_json::json;
        let (_, problems) = settings(json!({
            "auth": {"sasl": {"mechanism": "PLAIN", "username": "", "password": ""}, "tls": {}},
            "tls": {"cert_file": "/nonexistent/cert.pem", "ca_file": "/nonexistent/ca.pem"},
        }));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "auth.tls",
                "auth.sasl.username",
                "auth.sasl.password",
                "tls",
                "tls.ca_file",
                "tls.cert_file"
            ]
        );
        let bad: ClientSettings =
            serde_json::from_value(json!({"brokers": ["kafka", "k:1"], "client_id": ""})).unwrap();
        let keys: Vec<String> = bad.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["brokers[0]", "client_id"]);
    }

    #[test]
    fn password_never_prints() {
        let auth: Auth = serde_json::from_value(serde_json::json!(
            {"sasl": {"mechanism": "PLAIN", "username": "u", "password": "hunter2"}}
        ))
        .unwrap();
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}

/// How long a repeated librdkafka error or log line stays quiet after it was logged.
const REPEAT_QUIET: Duration = Duration::from_secs(10);

/// librdkafka's errors and log lines for one component, as `tracing` events. A broker that is
/// away makes librdkafka report the same error dozens of times a second (seen: ~37 a second
/// of `AllBrokersDown`): each kind is logged once, then at most once per [`REPEAT_QUIET`] with
/// how many were held back, and every one is counted in
/// `spangate_kafka_client_errors_total{component, kind}`.
pub struct ClientLog {
    component: String,
    telemetry: Arc<Telemetry>,
    seen: Mutex<HashMap<String, Seen>>,
}

/// One kind of message: when it was last logged, how many were held back since, its count.
type Seen = (Option<Instant>, u64, Counter);

impl ClientLog {
    pub fn new(component: &str, telemetry: &Arc<Telemetry>) -> Self {
        ClientLog {
            component: component.to_string(),
            telemetry: telemetry.clone(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `kind`; `Some(held back since the last time)` when it is to be
    /// logged now.
    fn admit(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held, counter) = seen.entry(kind.to_string()).or_insert_with(|| {
            let counter = self
                .telemetry
                .metrics
                .kafka_client_errors(&self.component, kind);
            (None, 0, counter)
        });
        counter.inc_by(1);
        match last {
            Some(t) if now < *t + REPEAT_QUIET => {
                *held += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held))
            }
        }
    }

    pub fn error(&self, error: &KafkaError, reason: &str) {
        let kind = error
            .rdkafka_error_code()
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "other".into());
        if let Some(held) = self.admit(&kind, Instant::now()) {
            tracing::error!(component = %self.component, kind, repeated = held, error = %error, reason, "kafka client error");
        }
    }

    pub fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let warn = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if !warn {
            tracing::debug!(component = %self.component, fac, "librdkafka: {message}");
            return;
        }
        if let Some(held) = self.admit(fac, Instant::now()) {
            tracing::warn!(component = %self.component, fac, repeated = held, "librdkafka: {message}");
        }
    }
}

/// A client context that only routes librdkafka's output through a [`ClientLog`].
pub struct LoggingContext(pub ClientLog);

impl ClientContext for LoggingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log(level, fac, log_message)
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason)
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn repeats_are_held_back_counted_and_reported() {
        let telemetry = Arc::new(Telemetry::new());
        let log = ClientLog::new("kafka/x", &telemetry);
        let t0 = Instant::now();
        assert_eq!(log.admit("AllBrokersDown", t0), Some(0));
        for i in 1..37 {
            let t = t0 + Duration::from_millis(i * 27);
            assert_eq!(log.admit("AllBrokersDown", t), None);
        }
        assert_eq!(log.admit("Other", t0), Some(0), "kinds are apart");
        assert_eq!(log.admit("AllBrokersDown", t0 + REPEAT_QUIET), Some(36));
        let m = &telemetry.metrics;
        assert_eq!(m.kafka_client_errors("kafka/x", "AllBrokersDown").get(), 38);
    }
}
