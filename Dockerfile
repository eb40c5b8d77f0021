# Multi-stage build: compile in the Rust image, run as non-root on a slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin spangate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/spangate /usr/local/bin/spangate
COPY pipelines.yaml /etc/spangate/pipelines.yaml
# Runs with a read-only root filesystem: the file exporter writes under /var/lib/spangate.
RUN mkdir -p /var/lib/spangate && chown 65532:65532 /var/lib/spangate
USER 65532:65532
WORKDIR /var/lib/spangate
ENV SPANGATE_FILE=/var/lib/spangate/spans.jsonl
EXPOSE 4317 4318 8888
# No curl in the image: the binary asks its own health endpoint.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/spangate", "healthcheck", "--address", "127.0.0.1:8888"]
ENTRYPOINT ["/usr/local/bin/spangate"]
CMD ["--config", "/etc/spangate/pipelines.yaml"]
