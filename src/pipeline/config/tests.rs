//! The config loader against a table of broken configs: each problem named by path and line.

use super::*;
use crate::components::Builtin;

fn load(texts: &[&str]) -> Result<Config, Diagnostics> {
    let sources: Vec<Source> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Source {
            name: format!("c{i}.yaml"),
            text: t.to_string(),
        })
        .collect();
    load_sources(&sources, &Registry::builtin(), |k| match k {
        "TOKEN" => Some("s3cret".into()),
        _ => None,
    })
}

/// The problems in `text`, less "no pipeline" (the table's fragments mostly have none).
fn errors(text: &str) -> Vec<String> {
    match load(&[text]) {
        Ok(_) => panic!("config should be invalid:\n{text}"),
        Err(d) => d
            .to_string()
            .lines()
            .filter(|l| {
                !l.contains("at least one pipeline is required") || text.contains("extensions")
            })
            .map(str::to_string)
            .collect(),
    }
}

const GOOD: &str = "
receivers:
  otlp:
    protocols:
      grpc: { endpoint: 127.0.0.1:14317 }
      http:
processors:
  batch:
exporters:
  debug:
  otlp/up:
    endpoint: 127.0.0.1:4317
    tls: { insecure: true }
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug, otlp/up]
";

#[test]
fn good_config_loads() {
    let c = load(&[GOOD]).unwrap();
    assert_eq!(c.pipelines.len(), 1);
    assert_eq!(c.pipelines[0].exporters.len(), 2);
    assert_eq!(
        c.service.shutdown_timeout,
        std::time::Duration::from_secs(30)
    );
}

#[test]
fn broken_configs_name_path_and_line() {
    let table: &[(&str, &[&str])] = &[
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpont: x\nservice:\n  pipelines: {}\n",
            &["error: receivers.otlp.protocols.grpc.endpont: unknown field `endpont`, expected one of `endpoint`, `max_recv_msg_size_mib`, `read_timeout` (line 5)"],
        ),
        (
            "processors:\n  batch:\n    timeout: soon\nservice: {}\n",
            &["error: processors.batch.timeout: invalid duration `soon`: expected e.g. 250ms, 10s, 5m, 1h (line 3)"],
        ),
        (
            "processors:\n  batch:\n    send_batch_size: lots\nservice: {}\n",
            &["error: processors.batch.send_batch_size: invalid type: string \"lots\", expected a non-negative integer (line 3)"],
        ),
        (
            "receivers:\n  kafkaa: {}\nservice: {}\n",
            &["error: receivers.kafkaa: unknown receiver type `kafkaa`, expected one of: kafka, otlp (line 2)"],
        ),
        (
            "exporters:\n  otlp: {}\nservice: {}\n",
            &["error: exporters.otlp: missing field `endpoint` (line 2)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols: { http: }\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [debug, otlp/nope]\n",
            &[
                "error: service.pipelines.traces.processors[0]: `batch` is not defined under `processors` (line 10)",
                "error: service.pipelines.traces.exporters[1]: `otlp/nope` is not defined under `exporters` (defined: `debug`) (line 11)",
            ],
        ),
        (
            "receivers:\n  otlp:\n    protocols: { http: }\n  otlp/unused:\n    protocols: { grpc: { endpoint: 127.0.0.1:5999 } }\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n",
            &["error: receivers.otlp/unused: defined but not used by any pipeline (it would bind a port); add it to a pipeline or remove it (line 4)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols: { http: }\nexporters:\n  debug:\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n",
            &[
                "error: service.pipelines.metrics: the metrics signal is not supported; spangate runs `traces` pipelines (line 8)",
                "error: receivers.otlp: defined but not used by any pipeline (it would bind a port); add it to a pipeline or remove it (line 2)",
            ],
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc: { endpoint: 127.0.0.1:7000 }\n      http: { endpoint: 127.0.0.1:7000 }\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
            &["error: receivers.otlp.protocols.http.endpoint: address 127.0.0.1:7000 is already used by receivers.otlp.protocols.grpc.endpoint (line 5)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols: {}\nservice: {}\n",
            &["error: receivers.otlp.protocols: enable at least one of `grpc` or `http` (line 3)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols: { http: }\n    auth: { bearer_token: \"${env:MISSING}\" }\nservice: {}\n",
            &["error: environment variable `MISSING` is not set and has no default (line 4)"],
        ),
        (
            "extensions: {}\nservice:\n  pipelines: {}\n",
            &[
                "error: extensions: unknown top-level key `extensions`, expected one of: receivers, processors, exporters, service (line 1)",
                "error: service.pipelines: at least one pipeline is required (e.g. `traces`) (line 3)",
            ],
        ),
        (
            "exporters:\n  otlp:\n    endpoint: localhost:4317\n    retry_on_failure: { multiplier: 0.5 }\n    sending_queue: { queue_size: 0 }\nservice: {}\n",
            &[
                "error: exporters.otlp.sending_queue.queue_size: must be at least 1 (line 5)",
                "error: exporters.otlp.retry_on_failure.multiplier: must be at least 1 (line 4)",
            ],
        ),
        (
            "exporters:\n  otlphttp:\n    endpoint: http://x:4318\n    protocol: grpc\nservice: {}\n",
            &["error: exporters.otlphttp.protocol: this exporter type speaks http; use type `otlp` for grpc (line 4)"],
        ),
        (
            "exporters:\n  file:\n    path: /nonexistent-dir/spans.jsonl\nservice: {}\n",
            &["error: exporters.file.path: directory /nonexistent-dir does not exist (line 3)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols: { http: }\n    tls: { cert_file: /nonexistent.crt, key_file: /nonexistent.key }\nservice: {}\n",
            &["error: receivers.otlp.tls: cannot read /nonexistent.crt: No such file or directory (os error 2) (line 4)"],
        ),
        (
            "receivers:\n  Bad-Id: {}\nservice: {}\n",
            &["error: receivers.Bad-Id: invalid component id `Bad-Id`: the type must start with a letter and hold only letters, digits and `_` (line 2)"],
        ),
        (
            "service:\n  pipelines: {}\n  shutdown_timeout: 10\n",
            &["error: service.shutdown_timeout: `10` has no unit: write a duration like 10s or 10ms (line 3)"],
        ),
        (
            "receivers:\n  otlp:\n    protocols:\n  - bad\n",
            &["error: invalid YAML: while parsing a block mapping, did not find expected key (line 4)"],
        ),
    ];
    for (text, want) in table {
        let got = errors(text);
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "config:\n{text}");
    }
}

#[test]
fn second_file_merges_over_first() {
    let over = "
exporters:
  otlp/up:
    endpoint: 127.0.0.1:5317
service:
  pipelines:
    traces:
      exporters: [debug]
";
    let c = load(&[GOOD, over]).unwrap();
    // Lists replace: only debug remains; maps merge: otlp/up keeps tls.insecure from the first file.
    assert_eq!(c.pipelines[0].exporters.len(), 1);
    assert_eq!(c.pipelines[0].processors.len(), 1);
    assert!(format!("{:?}", c.exporters[&ComponentId::parse("otlp/up").unwrap()]).contains("5317"));
    // Errors in the second file name it; the pipeline naming the broken processor adds none.
    let bad = "processors:\n  batch:\n    timeout: x\n";
    let err = load(&[GOOD, bad]).unwrap_err().to_string();
    assert_eq!(
        err,
        "error: processors.batch.timeout: invalid duration `x`: expected e.g. 250ms, 10s, 5m, 1h (c1.yaml line 3)"
    );
}

#[test]
fn env_substitution_and_secrets_stay_out_of_debug() {
    let text = GOOD.replace(
        "      http:\n",
        "      http:\n    auth: { bearer_token: \"${env:TOKEN}\" }\n",
    );
    let c = load(&[&text]).unwrap();
    let dump = format!("{c:?}");
    assert!(!dump.contains("s3cret"), "{dump}");
    assert!(dump.contains("<redacted>"));
}

/// The Kafka client keys are parsed beside each component's own: checked alike on both sides,
/// and named in the "expected one of" of an unknown key.
#[cfg(feature = "kafka")]
#[test]
fn kafka_client_settings_are_shared() {
    for side in ["receivers", "exporters"] {
        let text = format!(
            "{side}:\n  kafka:\n    brokers: [kafka]\n    client_id: ''\n    tls: {{ ca_file: /nonexistent/ca.pem }}\nservice: {{}}\n"
        );
        assert_eq!(
            errors(&text),
            [
                format!("error: {side}.kafka.brokers[0]: `kafka` is not host:port (line 3)"),
                format!("error: {side}.kafka.client_id: must not be empty (line 4)"),
                format!("error: {side}.kafka.tls.ca_file: cannot read /nonexistent/ca.pem: No such file or directory (os error 2) (line 5)"),
            ],
            "{side}"
        );
        let text =
            format!("{side}:\n  kafka:\n    brokers: [k:9092]\n    topik: x\nservice: {{}}\n");
        let errors = errors(&text);
        assert!(
            errors.len() == 1
                && errors[0].contains("unknown field `topik`")
                && errors[0].contains("`brokers`, `client_id`, `auth`, `tls`"),
            "{side}: {errors:?}"
        );
    }
}

#[test]
fn sending_queue_sizer_is_contribs() {
    let exporter = |queue: &str| {
        format!("exporters:\n  otlp:\n    endpoint: 127.0.0.1:4317\n    sending_queue: {queue}\nservice: {{}}\n")
    };
    for sizer in ["requests", "items", "bytes"] {
        let text = exporter(&format!("{{ sizer: {sizer}, queue_size: 5000 }}"));
        let found: Vec<String> = match load(&[&text]) {
            Ok(_) => Vec::new(),
            Err(d) => d.to_string().lines().map(str::to_string).collect(),
        };
        assert!(
            found.iter().all(|e| e.contains("at least one pipeline")),
            "{sizer}: {found:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let text = exporter(&format!(
        "{{ sizer: bytes, storage: {} }}",
        dir.path().display()
    ));
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("error: exporters.otlp.sending_queue.sizer: a disk queue"),
        "{found:?}"
    );
    let found = errors(&exporter("{ sizer: spans }"));
    assert!(
        found[0].contains("unknown variant `spans`, expected one of `requests`, `items`, `bytes`"),
        "{found:?}"
    );
}
