# syntax=docker/dockerfile:1
# The gateway agent (for a gateway that runs containers, and the compose demo).
# Config: mount agent.toml at /etc/shuzhuan-agent/agent.toml; its data_dir must
# be /var/lib/shuzhuan-agent, a volume (keys and spool survive the container).
#
# Build from the repository root (the context must hold the workspace):
#   docker build -f deploy/docker/agent.Dockerfile -t shuzhuan-agent .
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
    cargo build --release --locked -p shuzhuan-agent --bin shuzhuan-agent \
 && install -D -m 0755 target/release/shuzhuan-agent /out/usr/bin/shuzhuan-agent \
 && install -d -m 0750 /out/var/lib/shuzhuan-agent

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/bin/shuzhuan-agent /usr/bin/shuzhuan-agent
COPY --from=build --chown=65532:65532 /out/var/lib/shuzhuan-agent /var/lib/shuzhuan-agent
# Reference data (targets, coefficients, device profiles): relative paths in
# the configs resolve against the working folder.
COPY config /usr/share/shuzhuan/config
WORKDIR /usr/share/shuzhuan
USER 65532:65532
VOLUME ["/var/lib/shuzhuan-agent"]
EXPOSE 9100
ENTRYPOINT ["/usr/bin/shuzhuan-agent"]
CMD ["run", "--config", "/etc/shuzhuan-agent/agent.toml"]
