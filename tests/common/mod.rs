//! Test harness: the real `spangate` binary on free ports, a reference OTLP sink (tonic's gRPC
//! server and a hyper HTTP server) that can be switched off, and real OpenTelemetry clients.
#![allow(dead_code)]

pub mod cgroup;
pub mod client;
pub mod kafka;
pub mod postgres;
pub mod sink;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now (bound then released; tests bind 127.0.0.1 only).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How long a test waits for something already under way to show: a span to reach a sink, a
/// counter to catch up with an answer the client already has, a backlog to drain. Every wait
/// returns as soon as its condition holds, so only a failing test waits this long; it is this
/// generous because on a 2-core machine kept busy by other processes, steps that take
/// milliseconds when idle have been seen to take several seconds.
pub const SETTLE: Duration = Duration::from_secs(120);

/// Peak resident memory of a process (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    kb / 1024
}

/// Polls `done` every 20 ms until it holds; fails naming `what` after [`SETTLE`].
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not reached in {SETTLE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Spangate {
    child: Option<Child>,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    log: PathBuf,
}

/// `${METRICS}` in configs is replaced by the metrics address this harness picked.
impl Spangate {
    pub fn start(yaml: &str) -> Spangate {
        Self::start_with(yaml, &[])
    }

    pub fn start_with(yaml: &str, env: &[(&str, &str)]) -> Spangate {
        let mut s = Self::spawn(yaml, env);
        s.wait_ready();
        s
    }

    /// Starts without waiting for readiness (for start-up failure tests).
    pub fn spawn(yaml: &str, env: &[(&str, &str)]) -> Spangate {
        Self::spawn_in(yaml, env, None)
    }

    /// Starts inside `cgroup` (joined before `exec`, so the process reads that cgroup's limit
    /// from its first instruction), and waits for readiness.
    pub fn start_in(yaml: &str, cgroup: &cgroup::MemoryCgroup) -> Spangate {
        let mut s = Self::spawn_in(yaml, &[], Some(cgroup));
        s.wait_ready();
        s
    }

    fn spawn_in(
        yaml: &str,
        env: &[(&str, &str)],
        cgroup: Option<&cgroup::MemoryCgroup>,
    ) -> Spangate {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics_port = free_port();
        let config = dir.path().join("pipelines.yaml");
        std::fs::write(&config, with_metrics(yaml, metrics_port)).expect("write config");
        let log = dir.path().join("spangate.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = match cgroup {
            None => Command::new(env!("CARGO_BIN_EXE_spangate")),
            Some(cg) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", r#"echo $$ > "$0" && exec "$@""#])
                    .arg(cg.procs())
                    .arg(env!("CARGO_BIN_EXE_spangate"));
                sh
            }
        };
        cmd.arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .env("SPANGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn spangate");
        Spangate {
            child: Some(child),
            metrics_port,
            dir,
            config,
            log,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if http_get(self.metrics_port, "/readyz").map(|(s, _)| s) == Some(200) {
                return;
            }
            // A start that failed says why at once; only a slow one is worth the deadline.
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "spangate exited ({status}) before ready; log:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("spangate not ready in {SETTLE:?}; log:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn scrape(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// The value of one series, e.g. `metric("spangate_exporter_sent_spans_total", &[("exporter", "otlp")])`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.scrape(), name, labels)
    }

    /// Polls until `metric(name, labels) == want`, or fails after [`SETTLE`].
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let deadline = Instant::now() + SETTLE;
        let mut last = -1.0;
        while Instant::now() < deadline {
            last = self.metric(name, labels);
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{name}{labels:?} = {last}, want {want}\nmetrics:\n{}\nlog:\n{}",
            self.scrape(),
            self.logs()
        );
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                panic!("spangate did not exit in {secs}s; log:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rewrite_config(&self, yaml: &str) {
        std::fs::write(&self.config, with_metrics(yaml, self.metrics_port)).expect("write");
    }
}

impl Drop for Spangate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn with_metrics(yaml: &str, port: u16) -> String {
    let yaml = yaml.replace("${METRICS}", &format!("127.0.0.1:{port}"));
    if yaml.contains("telemetry:") {
        yaml
    } else {
        yaml.replace(
            "service:\n",
            &format!("service:\n  telemetry:\n    metrics:\n      address: 127.0.0.1:{port}\n"),
        )
    }
}

/// Parses one sample out of Prometheus text; 0 when absent.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| l.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        {
            return value.parse().unwrap_or(f64::NAN);
        }
    }
    0.0
}

/// Sum of a metric over every series matching `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, l) = series.split_once('{').unwrap_or((series, ""));
            (n == name
                && labels.iter().all(|(k, v)| {
                    l.split(',')
                        .any(|kv| kv.trim_end_matches('}') == format!("{k}=\"{v}\""))
                }))
            .then(|| value.parse::<f64>().unwrap_or(0.0))
        })
        .sum()
}

/// A blocking HTTP/1.1 GET on 127.0.0.1 (no client crate needed for health checks).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// An OTLP protobuf `ExportTraceServiceRequest` holding `spans` under one resource and scope.
pub fn encode_spans(spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// An attribute.
pub fn kv(
    key: &str,
    value: opentelemetry_proto::tonic::common::v1::any_value::Value,
) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A string attribute.
pub fn str_kv(key: &str, value: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    kv(
        key,
        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(value.into()),
    )
}

/// POSTs an OTLP protobuf request to spangate's HTTP receiver and expects 200.
pub fn post_otlp(http: u16, body: &[u8]) {
    let (status, _, answer) = client::http_post(
        http,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
}

/// Runs `script` under `sh`, detached: a watchdog that outlives this process by design (it
/// stops a server once the test process is gone), so it is never waited for.
pub fn watchdog(script: &str) {
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start watchdog");
}

/// The spans of a request's resource spans, in order.
pub fn spans_of(
    rs: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans],
) -> impl Iterator<Item = &opentelemetry_proto::tonic::trace::v1::Span> {
    rs.iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
}

/// Every span in an OTLP/JSON lines file (what the file exporter writes); none when the file
/// does not exist. An undecodable line fails the test.
pub fn file_spans(path: &Path) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .flat_map(|l| {
            let req = spangate::data::json::decode_request(l.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            req.resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
        })
        .collect()
}

pub fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p
}

/// A self-signed CA and a server certificate for 127.0.0.1/localhost, and a client certificate
/// signed by the same CA, written as PEM files into `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    // Distinct subject names: OpenSSL (librdkafka) takes a leaf whose subject equals its
    // issuer's for self-signed, and rcgen gives every certificate the same default name.
    let named = |sans: Vec<String>, cn: &str| {
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p
    };
    let mut ca_params = named(Vec::new(), "spangate test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = named(vec!["localhost".into(), "127.0.0.1".into()], "localhost")
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = named(vec!["client".into()], "client")
        .signed_by(&client_key, &issuer)
        .unwrap();
    Certs {
        ca: write_file(dir, "ca.crt", ca_cert.pem().as_bytes()),
        server_cert: write_file(dir, "server.crt", server.pem().as_bytes()),
        server_key: write_file(dir, "server.key", server_key.serialize_pem().as_bytes()),
        client_cert: write_file(dir, "client.crt", client.pem().as_bytes()),
        client_key: write_file(dir, "client.key", client_key.serialize_pem().as_bytes()),
    }
}
