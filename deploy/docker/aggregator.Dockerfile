# syntax=docker/dockerfile:1
# The city aggregator.
# Config: mount aggregator.toml at /etc/shuzhuan-aggregator/aggregator.toml;
# the store lives in /var/lib/shuzhuan-aggregator, a volume.
#
# Build from the repository root (the context must hold the workspace):
#   docker build -f deploy/docker/aggregator.Dockerfile -t shuzhuan-aggregator .
# The runtime image is distroless (glibc, CA certificates, no shell) and runs
# as the unprivileged user 65532; the binary links nothing but glibc
# (SQLite is bundled, TLS is rustls).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target between builds; the binary is
# copied out of the cached target folder, which the next stage cannot see.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p shuzhuan-aggregator --bin shuzhuan-aggregator \
 && install -D -m 0755 target/release/shuzhuan-aggregator /out/usr/bin/shuzhuan-aggregator \
 && install -d -m 0750 /out/var/lib/shuzhuan-aggregator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/bin/shuzhuan-aggregator /usr/bin/shuzhuan-aggregator
COPY --from=build --chown=65532:65532 /out/var/lib/shuzhuan-aggregator /var/lib/shuzhuan-aggregator
# Reference data (targets, coefficients, device profiles): relative paths in
# the configs resolve against the working folder.
COPY config /usr/share/shuzhuan/config
WORKDIR /usr/share/shuzhuan
USER 65532:65532
VOLUME ["/var/lib/shuzhuan-aggregator"]
EXPOSE 8080
ENTRYPOINT ["/usr/bin/shuzhuan-aggregator"]
CMD ["serve", "--config", "/etc/shuzhuan-aggregator/aggregator.toml"]
