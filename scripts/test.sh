#!/usr/bin/env bash
# The test command from the README: formatting, lints, then every test in the workspace — the
# service suites twice, on SQLite and on PostgreSQL — the deploy check (manifests, compose file
# and Dockerfile validated offline), the contract diff (no published API or event schema broken
# without a version bump) and the contract check (validators and schemathesis against the
# running shop). CI (.ci/run) calls exactly this.
#
# Uses PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and NATS with JetStream at
# 127.0.0.1:4222 when they answer (FLOTILLA_TEST_POSTGRES and FLOTILLA_TEST_NATS_URL name
# others); where they do not, starts throwaway ones for this run (scripts/test-servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# nats-server always: the NATS permission test starts a private one with deploy's nats.conf.
bash scripts/deps.sh nats
source scripts/test-servers.sh
ensure_test_servers

# Each stage says how long the run has taken so far (CI must stay well under 40 minutes).
stage() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The default build (what `cargo run --release` compiles, without etcd) must be clean too.
cargo clippy -p flotilla --all-targets --locked -- -D warnings

run_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --locked --no-fail-fast "$@"
    else
        cargo test --locked --no-fail-fast "$@"
    fi
}

stage "tests (SQLite)"
run_tests --workspace --all-features

stage "service and chassis tests again on PostgreSQL"
PG_SUITES=(flotilla-chassis flotilla-testkit flotilla-identity flotilla-catalog flotilla-cart
    flotilla-inventory flotilla-payments flotilla-shipping flotilla-orders flotilla-notifications)
export FLOTILLA_TEST_DATABASE_URL="$FLOTILLA_TEST_POSTGRES"
if cargo nextest --version >/dev/null 2>&1; then
    # The same build as above (whole workspace, same features), filtered to those suites:
    # selecting packages with -p would resolve features differently and rebuild everything.
    filter=$(printf 'package(%s) | ' "${PG_SUITES[@]}")
    cargo nextest run --locked --no-fail-fast --workspace --all-features -E "${filter% | }"
else
    cargo test --locked --no-fail-fast --all-features $(printf -- '-p %s ' "${PG_SUITES[@]}")
fi

stage "deploy check: rendered manifests, compose file, Dockerfile and YAML validated offline"
bash scripts/deploy-check.sh

stage "contract diff: no published API or event broken without a CONTRACT_VERSION bump"
cargo build --locked --workspace --all-features --bins --quiet
BIN=${CARGO_TARGET_DIR:-target}/debug/flotilla bash scripts/contract-diff.sh

stage "contract check: OpenAPI documents validated, schemathesis through the gateway"
bash scripts/contract-check.sh

stage "browser check: the storefront journey in headless Chromium, its trace, and the ops console"
bash scripts/browser-check.sh
stage "done"
