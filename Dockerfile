# Multi-stage: compile in the Rust image, run on distroless (glibc, OpenSSL, CA certificates,
# nothing else) as the non-root user. Offline machines: scripts/docker-image.sh builds the same
# final stage from Dockerfile.prebuilt on a locally made base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin spangate \
 && mkdir -p /out/var/lib/spangate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/spangate /usr/local/bin/spangate
COPY pipelines.yaml /etc/spangate/pipelines.yaml
# The only writable place (file exporter, disk queues): the root filesystem can be read-only.
COPY --from=build --chown=65532:65532 /out/var/lib/spangate /var/lib/spangate
USER 65532:65532
WORKDIR /var/lib/spangate
ENV SPANGATE_FILE=/var/lib/spangate/spans.jsonl
EXPOSE 4317 4318 8888
# No curl in the image: the binary asks its own health endpoint.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/spangate", "healthcheck", "--address", "127.0.0.1:8888"]
ENTRYPOINT ["/usr/local/bin/spangate"]
CMD ["--config", "/etc/spangate/pipelines.yaml"]
