#!/usr/bin/env bash
# The one test command: provisions what the tests need, then runs every test.
#   ./scripts/test.sh            format, lints, all tests (unit, black-box, bench smoke runs)
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

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
say "cargo test --workspace (unit, black-box, plugins, benches in test mode)"
cargo test --workspace --all-targets
