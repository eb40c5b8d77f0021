//! The command line: `validate` (exit codes and golden messages), `--version`, merging
//! `--config` files, start-up failures, log format, and readiness while draining.

mod common;

use std::process::Command;

use common::client::http_post;
use common::sink::Sink;
use common::{free_port, http_get, Spangate};

fn spangate(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    spangate_env(args, dir, &[])
}

fn spangate_env(
    args: &[&str],
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spangate"))
        .args(args)
        .current_dir(dir)
        .env_remove("SPANGATE_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_pipelines_yaml_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = spangate(&["validate", "--config", "pipelines.yaml"], root);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("config is valid: 1 pipeline(s)"), "{out}");
}

#[test]
fn example_configs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "examples/two-tier/agent.yaml",
        "examples/two-tier/sampler.yaml",
        "examples/backends.yaml",
    ] {
        let (code, _, err) = spangate(&["validate", "--config", f], root);
        assert_eq!(code, 0, "{f}: {err}");
    }
}

#[test]
fn version() {
    let (code, out, _) = spangate(&["--version"], std::path::Path::new("."));
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("spangate {}", env!("CARGO_PKG_VERSION"))
    );
}

const BROKEN: &str = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:99999
      http:
        max_request_body_size: -5
processors:
  batch:
    timeout: 1 minute
exporters:
  otlp/up:
    endpoint: collector:4317
    compression: zstd
  debug:
    verbosity: loud
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter]
      exporters: [otlp/up, debug, jaeger]
";

const BROKEN_ERRORS: &str = "\
error: receivers.otlp.protocols.http.max_request_body_size: invalid value: integer `-5`, expected a non-negative integer (line 7)
error: processors.batch.timeout: invalid duration `1 minute`: expected e.g. 250ms, 10s, 5m, 1h (line 10)
error: exporters.otlp/up.compression: unknown variant `zstd`, expected `gzip` or `none` (line 14)
error: exporters.debug.verbosity: unknown variant `loud`, expected one of `basic`, `normal`, `detailed` (line 16)
error: service.pipelines.traces.processors[1]: `memory_limiter` is not defined under `processors` (line 21)
error: service.pipelines.traces.exporters[2]: `jaeger` is not defined under `exporters` (line 22)
";

#[test]
fn validate_reports_every_problem_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), BROKEN).unwrap();
    let (code, out, err) = spangate(&["validate", "--config", "bad.yaml"], dir.path());
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(err, BROKEN_ERRORS);
    // Running it fails the same way, before binding anything.
    let (code, _, err) = spangate(&["--config", "bad.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(err.starts_with(BROKEN_ERRORS), "{err}");
    // A missing file.
    let (code, _, err) = spangate(&["validate", "--config", "nope.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot read config file nope.yaml"),
        "{err}"
    );
}

/// A variable's value is one scalar: a newline and `key: value` in it add no keys (they did:
/// the text was expanded before parsing). One error, on the field, and no cascade onto the
/// receiver whose id the failed exporter shares.
#[test]
fn an_environment_value_cannot_add_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = "receivers:
  otlp:
    protocols: { grpc: { endpoint: 127.0.0.1:14317 } }
exporters:
  otlp:
    endpoint: ${env:X}
    tls: { insecure: ${env:INSECURE} }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
";
    std::fs::write(dir.path().join("inj.yaml"), config).unwrap();
    let injected = "127.0.0.1:4317\n    headers: { x-injected: \"yes\" }";
    let env = [("X", injected), ("INSECURE", "true")];
    let (code, _, err) = spangate_env(&["validate", "--config", "inj.yaml"], dir.path(), &env);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!("error: exporters.otlp.endpoint: `{injected}` is not a valid endpoint (line 6)\n")
    );
    // The same reference holding a plain endpoint, inside a flow mapping too, is fine.
    let env = [("X", "127.0.0.1:4317"), ("INSECURE", "true")];
    let (code, _, err) = spangate_env(&["validate", "--config", "inj.yaml"], dir.path(), &env);
    assert_eq!(code, 0, "{err}");
}

/// Nine levels of nine aliases would expand to 387 million values: refused with its line, at
/// `validate` and on a reload, before the memory is spent.
#[test]
fn a_yaml_alias_bomb_is_a_config_error() {
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let items = vec![format!("*a{}", i - 1); 9].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bomb.yaml"), &bomb).unwrap();
    let (code, _, err) = spangate(&["validate", "--config", "bomb.yaml"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: invalid YAML: the document expands to more than 200000 values")
            && err.contains("(line 6)"),
        "{err}"
    );
    // Sent to a running instance: the reload fails, the old config keeps running, and memory
    // stays what a small config takes.
    let http = free_port();
    let config = format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
    );
    let sg = Spangate::start(&config);
    sg.rewrite_config(&bomb);
    sg.signal("HUP");
    common::eventually("the failed reload logged", || {
        sg.logs()
            .contains("reload failed, keeping the running configuration")
    });
    assert!(
        sg.logs().contains("more than 200000 values"),
        "{}",
        sg.logs()
    );
    let peak = common::peak_rss_mib(sg.pid());
    assert!(peak < 150, "peak RSS {peak} MiB after the bomb");
    common::post_otlp(http, &common::encode_spans(vec![Default::default()]));
}

#[test]
fn second_config_merges_over_first() {
    let (first, second) = (free_port(), free_port());
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{first} }} }}
exporters:
  file: {{ path: ./out.jsonl }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
"
    ));
    drop(sg);
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_port();
    std::fs::write(
        dir.path().join("base.yaml"),
        format!(
            "receivers:\n  otlp:\n    protocols: {{ http: {{ endpoint: 127.0.0.1:{first} }} }}\nexporters:\n  file: {{ path: ./out.jsonl }}\nservice:\n  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [file] }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("override.yaml"),
        format!(
            "receivers:\n  otlp:\n    protocols: {{ http: {{ endpoint: 127.0.0.1:{second} }} }}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spangate"))
        .args(["--config", "base.yaml", "--config", "override.yaml"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::eventually("the merged config's instance ready", || {
        http_get(metrics, "/readyz").map(|r| r.0) == Some(200)
    });
    let (s, _, _) = http_post(
        second,
        "/v1/traces",
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(s, 200, "the second file's endpoint is the one served");
    assert!(std::net::TcpStream::connect(("127.0.0.1", first)).is_err());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn port_in_use_fails_start_naming_the_receiver() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut sg = Spangate::spawn(
        &format!(
            "
receivers:
  otlp/busy:
    protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }}
exporters:
  debug:
service:
  pipelines:
    traces: {{ receivers: [otlp/busy], exporters: [debug] }}
"
        ),
        &[],
    );
    let status = sg.wait_exit(20);
    assert_eq!(status.code(), Some(1));
    let logs = sg.logs();
    assert!(
        logs.contains("otlp/busy: cannot listen on 127.0.0.1:"),
        "{logs}"
    );
}

#[test]
fn json_logs_and_not_ready_while_draining() {
    let sink = Sink::start();
    sink.set_down(true);
    let http = free_port();
    let mut sg = Spangate::start(&format!(
        "
receivers:
  otlp:
    protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }}
exporters:
  otlp/down:
    endpoint: 127.0.0.1:{}
    tls: {{ insecure: true }}
    retry_on_failure: {{ initial_interval: 50ms }}
service:
  shutdown_timeout: 2s
  telemetry:
    metrics: {{ address: ${{METRICS}} }}
    logs: {{ format: json }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp/down] }}
",
        sink.grpc_port
    ));
    let (s, _, _) = http_post(http, "/v1/traces", &[("content-type", "application/json")],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708"}]}]}]}"#);
    assert_eq!(s, 200);
    assert_eq!(http_get(sg.metrics_port, "/healthz").unwrap().0, 200);
    sg.signal("TERM");
    // The backend is down, so the drain runs to the 2s deadline; readiness is off meanwhile
    // (polled from the signal on, so a slow machine cannot miss the window).
    common::eventually("/readyz answers 503 while draining", || {
        http_get(sg.metrics_port, "/readyz").map(|r| r.0) == Some(503)
    });
    assert_eq!(http_get(sg.metrics_port, "/healthz").unwrap().0, 200);
    let status = sg.wait_exit(20);
    assert!(status.success());
    let logs = sg.logs();
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some());
    }
    assert!(
        logs.contains("spans not exported before the shutdown deadline, counted as failed"),
        "{logs}"
    );
}

#[test]
fn backend_exporter_mistakes_are_named_and_secrets_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "
receivers:
  otlp: { protocols: { http: { endpoint: 127.0.0.1:0 } } }
exporters:
  postgres: { dsn: 'postgres://u:hunter2@db/traces?sslmode=require', schema: 'bad-name' }
  postgres/nohost: { dsn: 'not a dsn ==', batch_size: 0 }
  jaeger: { endpoint: j:14250, protocol: thrift }
  tempo: { endpoint: t:4317, headers: { X-Scope-OrgID: a }, auth: { username: '', password: s3cret } }
  kafka: { brokers: [k:9092], auth: { sasl: { mechanism: PLAIN, username: u, password: '' } }, tls: { ca_file: /nonexistent.pem } }
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [postgres, postgres/nohost, jaeger, tempo, kafka] }
",
    )
    .unwrap();
    let (code, _, err) = spangate(&["validate", "--config", "bad.yaml"], dir.path());
    assert_eq!(code, 1);
    for want in [
        "exporters.postgres.dsn: sslmode=require is not available",
        "exporters.postgres.schema: must be a plain identifier",
        "exporters.postgres/nohost.dsn: not a valid Postgres connection string",
        "exporters.postgres/nohost.batch_size: must be at least 1",
        "exporters.jaeger.protocol: unknown protocol \"thrift\": expected one of: otlp_grpc, otlp_http, grpc",
        "exporters.tempo.auth.username: must not be empty",
        "exporters.kafka.auth.sasl.password: must not be empty",
        "exporters.kafka.tls.ca_file:",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    for secret in ["hunter2", "s3cret"] {
        assert!(!err.contains(secret), "{secret} printed:\n{err}");
    }
}

#[test]
fn healthcheck_subcommand_for_container_healthchecks() {
    let http = free_port();
    let sg = Spangate::start(&format!(
        "
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{http} }} }} }}
exporters:
  debug: {{}}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"
    ));
    let addr = format!("127.0.0.1:{}", sg.metrics_port);
    let dir = std::path::Path::new(".");
    for path in ["/healthz", "/readyz"] {
        let (code, _, err) = spangate(&["healthcheck", "--address", &addr, "--path", path], dir);
        assert_eq!(code, 0, "{path}: {err}");
    }
    let closed = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = spangate(&["healthcheck", "--address", &closed], dir);
    assert_eq!(code, 1);
    assert!(err.contains("unhealthy"), "{err}");
}
