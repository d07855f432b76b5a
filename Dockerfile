# syntax=docker/dockerfile:1
# One image for every Flotilla service: the command picks the service
# (`flotilla serve catalog`, `flotilla serve gateway`, `flotilla run` for the whole shop).
#
#   docker build -t flotilla .                           # NATS, PostgreSQL and DNS discovery
#   docker build --build-arg ETCD=true -t flotilla .     # + etcd discovery (installs protoc)
#   docker build --build-arg FEATURES=fleet -t flotilla .
#
# The runtime stage runs as an unprivileged user and writes only to /data (SQLite files and the
# generated service secret, when none is given) and /tmp: mount both writable (a volume or a
# tmpfs) and the root filesystem can be read-only (deploy/compose.yaml and deploy/k8s do).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
# Cargo features of the binary: `fleet` = NATS + PostgreSQL + DNS discovery (what a fleet of
# containers needs); ETCD=true adds `etcd`, whose client's build needs protoc.
ARG FEATURES=fleet
ARG ETCD=false
WORKDIR /src
# protoc only when etcd is asked for: the default image builds with Rust alone.
RUN if [ "$ETCD" = "true" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends protobuf-compiler=3.21.* \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY . .
# The cache mounts keep the registry and target dir between builds (BuildKit); the binary is
# copied out of the cached target dir, which is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    features="$FEATURES"; \
    if [ "$ETCD" = "true" ]; then features="$features,etcd"; fi; \
    cargo build --locked --profile dist -p flotilla --features "$features" \
    && install -D -m 0755 target/dist/flotilla /out/flotilla

FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to a managed PostgreSQL or NATS. Nothing else: the probe below is the
# binary itself, and the preStop pause in deploy/k8s uses coreutils' sleep, already here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flotilla \
    && useradd --system --uid 10001 --gid flotilla --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin flotilla \
    && install -d -o flotilla -g flotilla -m 0700 /data
COPY --from=builder /out/flotilla /usr/local/bin/flotilla
USER 10001:10001
WORKDIR /data
# Listen on every interface inside the container (the default is loopback); 8080 is the
# gateway's port (`run`) or the first service's (`serve`).
ENV FLOTILLA_HOST=0.0.0.0 \
    FLOTILLA_PORT=8080 \
    FLOTILLA_DATA_DIR=/data \
    RUST_LOG=info,sqlx=warn
EXPOSE 8080
VOLUME ["/data"]
# `flotilla probe` GETs the URL and exits 0 on a 2xx: no curl or wget in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["flotilla", "probe", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["flotilla"]
CMD ["run"]
