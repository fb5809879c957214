# syntax=docker/dockerfile:1
# Simulated plants (Modbus TCP, OPC UA) for dry runs and the compose demo.
# Config: mount plant.toml at /etc/shuzhuan-sim/plant.toml; ports.json, truth/
# and agents/ go to /var/lib/shuzhuan-sim, a volume.
#
# Build from the repository root (the context must hold the workspace):
#   docker build -f deploy/docker/simulator.Dockerfile -t shuzhuan-sim .
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
    cargo build --release --locked -p shuzhuan-simulator --bin shuzhuan-sim \
 && install -D -m 0755 target/release/shuzhuan-sim /out/usr/bin/shuzhuan-sim \
 && install -d -m 0750 /out/var/lib/shuzhuan-sim

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/bin/shuzhuan-sim /usr/bin/shuzhuan-sim
COPY --from=build --chown=65532:65532 /out/var/lib/shuzhuan-sim /var/lib/shuzhuan-sim
# Reference data (targets, coefficients, device profiles): relative paths in
# the configs resolve against the working folder.
COPY config /usr/share/shuzhuan/config
WORKDIR /usr/share/shuzhuan
USER 65532:65532
VOLUME ["/var/lib/shuzhuan-sim"]
# Modbus TCP and OPC UA listeners (per plant; see ports.json).
EXPOSE 5020 4840
ENTRYPOINT ["/usr/bin/shuzhuan-sim"]
CMD ["--config", "/etc/shuzhuan-sim/plant.toml"]
