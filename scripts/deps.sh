#!/usr/bin/env bash
# Installs what building and testing Flotilla needs beyond the Rust toolchain, when missing:
# protoc (etcd-client's build), etcd and etcdctl (discovery tests start their own etcd;
# deploy-check.sh probes one), promtool (the metrics
# tests check every /metrics with `promtool check metrics`). With arguments, also
# the servers named (`postgres`, `nats`), which scripts/test-servers.sh asks for when none is
# running and it must start throwaway ones, `chromium` (scripts/browser-check.sh), and `bench`
# (wrk, nginx, HAProxy: scripts/bench.sh).
set -euo pipefail
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v etcd >/dev/null || missing+=(etcd-server)
# etcdctl: scripts/deploy-check.sh shows etcd's probes on a real etcd with authentication on.
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v promtool >/dev/null || missing+=(prometheus)
for server in "$@"; do
    case "$server" in
        postgres)
            ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
                || missing+=(postgresql)
            ;;
        nats) command -v nats-server >/dev/null || missing+=(nats-server) ;;
        chromium) command -v chromium >/dev/null || missing+=(chromium) ;;
        bench) # scripts/bench.sh and the bench-*.sh it runs
            command -v wrk >/dev/null || missing+=(wrk)
            PATH=$PATH:/usr/sbin command -v nginx >/dev/null || missing+=(nginx-light)
            PATH=$PATH:/usr/sbin command -v haproxy >/dev/null || missing+=(haproxy)
            ;;
        *) echo "deps.sh: unknown server $server" >&2; exit 2 ;;
    esac
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
