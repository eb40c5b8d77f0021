#!/usr/bin/env bash
# Builds and runs the spangate image on a machine without registry access, with Debian's
# docker.io. Steps:
#   1. cargo build --release --locked (the binary links glibc, OpenSSL, zlib, libgcc);
#   2. a distroless-style base made from Debian packages (apt-get download + dpkg -x: libc6,
#      libssl3, zlib1g, libgcc-s1, ca-certificates' bundle, a nonroot user 65532, a writable
#      /var/lib/spangate), imported with `docker import` as spangate-base:bookworm;
#   3. docker build -f Dockerfile.prebuilt --build-arg BASE=spangate-base:bookworm;
#   4. docker run spangate:<version> --version, and a run with a read-only root filesystem
#      until the HEALTHCHECK reports healthy.
# It starts its own dockerd (data under $DOCKER_TMP, default /tmp/spangate-docker) unless
# DOCKER_HOST points at a running one, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '==> %s\n' "$*"; }

VERSION=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
IMAGE="spangate:$VERSION"
WORK="${DOCKER_TMP:-/tmp/spangate-docker}"
mkdir -p "$WORK"

if ! command -v dockerd >/dev/null; then
  say "installing docker.io (Debian)"
  apt-get install -y -q docker.io >/dev/null
fi
started=""
if [ -z "${DOCKER_HOST:-}" ]; then
  export DOCKER_HOST="unix://$WORK/docker.sock"
  say "starting dockerd ($DOCKER_HOST)"
  dockerd --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
    -H "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
  started=$!
  trap '[ -n "$started" ] && kill "$started" && wait "$started" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
fi

say "cargo build --release --locked"
cargo build --release --locked --bin spangate

say "making the base image from Debian packages"
ROOT="$WORK/rootfs"
rm -rf "$ROOT" "$WORK/debs" && mkdir -p "$ROOT" "$WORK/debs"
(cd "$WORK/debs" && apt-get download libc6 libssl3 zlib1g libgcc-s1 >/dev/null 2>&1)
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$ROOT"; done
# Only the shared libraries and the loader: no shell, no package manager, no docs.
rm -rf "$ROOT"/usr/share "$ROOT"/usr/bin "$ROOT"/usr/sbin "$ROOT"/sbin "$ROOT"/bin "$ROOT"/usr/lib/x86_64-linux-gnu/gconv \
  "$ROOT"/usr/libexec "$ROOT"/etc/ld.so.conf.d 2>/dev/null || true
mkdir -p "$ROOT"/etc/ssl/certs "$ROOT"/tmp "$ROOT"/var/lib/spangate "$ROOT"/usr/local/bin
cp /etc/ssl/certs/ca-certificates.crt "$ROOT"/etc/ssl/certs/
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/var/lib/spangate:/sbin/nologin\n' >"$ROOT"/etc/passwd
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ROOT"/etc/group
chmod 1777 "$ROOT"/tmp
# The data directory belongs to the user spangate runs as; everything else to root.
chown -R 0:0 "$ROOT" && chown 65532:65532 "$ROOT"/var/lib/spangate
tar -C "$ROOT" --numeric-owner -c . | docker import - spangate-base:bookworm >/dev/null

say "docker build -f Dockerfile.prebuilt"
CTX="$WORK/context"
rm -rf "$CTX" && mkdir -p "$CTX/target/release"
cp target/release/spangate "$CTX/target/release/"
cp pipelines.yaml Dockerfile.prebuilt "$CTX/"
docker build -q -f "$CTX/Dockerfile.prebuilt" --build-arg BASE=spangate-base:bookworm -t "$IMAGE" "$CTX" >/dev/null

say "image $IMAGE: $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}')"
say "docker run $IMAGE --version: $(docker run --rm "$IMAGE" --version)"

say "running with a read-only root filesystem until healthy"
docker rm -f spangate-check >/dev/null 2>&1 || true
docker run -d --name spangate-check --read-only --tmpfs /var/lib/spangate:uid=65532,gid=65532 "$IMAGE" >/dev/null
status=""
for _ in $(seq 60); do
  status=$(docker inspect spangate-check --format '{{.State.Health.Status}}')
  [ "$status" = healthy ] && break
  sleep 1
done
docker logs spangate-check 2>&1 | tail -3
docker rm -f spangate-check >/dev/null
[ "$status" = healthy ] || { echo "error: container not healthy ($status)" >&2; exit 1; }
say "healthy"
