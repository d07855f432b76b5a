#!/usr/bin/env bash
# Installs what building and testing Flotilla needs beyond the Rust toolchain, when missing:
# protoc (etcd-client's build), etcd (discovery tests start their own). PostgreSQL and NATS are
# expected to be running already (see README).
set -euo pipefail
missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v etcd >/dev/null || missing+=(etcd-server)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
