#!/usr/bin/env bash
# The contract diff (issue 16 item 5): no service's published contract (its OpenAPI documents
# and the JSON Schemas of its events) may break what callers and consumers were built against
# unless its CONTRACT_VERSION was raised. `flotilla contracts check` holds the rules
# (crates/flotilla/src/contracts/); this runs it
#
#  1. against the committed snapshots (contracts/<service>/);
#  2. with a git ref (CI gives the pull request's base), against that ref's snapshots too, so a
#     change that breaks a contract and rewrites the snapshots in the same commit still fails;
#  3. as a self-test: on copies of the snapshots with planted differences (a route, an event
#     field, a response header and a response enum value the code no longer has), which must each be refused,
#     and a raised version, which must let them through — except an event payload broken
#     under the event's same version, refused whatever the contract version.
#
#   bash scripts/contract-diff.sh [BASE_REF]
#   BIN=path   a flotilla binary to use instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BIN:-}" ]; then
    cargo build --locked -p flotilla --all-features --bin flotilla --quiet
    BIN=${CARGO_TARGET_DIR:-target}/debug/flotilla
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== contracts against the committed snapshots (contracts/)"
RUST_LOG=warn "$BIN" contracts check --snapshots contracts

if [ -n "${1:-}" ]; then
    echo "== contracts against $1's snapshots"
    mkdir -p "$WORK/base"
    if git cat-file -e "$1:contracts" 2>/dev/null; then
        git archive "$1" contracts | tar -x -C "$WORK/base"
        RUST_LOG=warn "$BIN" contracts check --snapshots "$WORK/base/contracts"
    else
        echo "   $1 has no contracts/ yet: nothing to compare"
    fi
fi

echo "== self-test: planted breaking changes are refused, a raised version lets them through"
plant() { # name python-statement-on-(openapi, contract)
    rm -rf "$WORK/plant" && cp -r contracts "$WORK/plant"
    python3 - "$WORK/plant/orders" "$2" <<'PY'
import json, sys
d, statement = sys.argv[1:]
openapi = json.load(open(f"{d}/openapi.json"))
contract = json.load(open(f"{d}/contract.json"))
exec(statement)
json.dump(openapi, open(f"{d}/openapi.json", "w"))
json.dump(contract, open(f"{d}/contract.json", "w"))
PY
}
expect_refused() { # what it plants, what the check must say
    if RUST_LOG=warn "$BIN" contracts check --snapshots "$WORK/plant" >"$WORK/out" 2>&1; then
        cat "$WORK/out"
        echo "self-test: $1 was not refused" >&2
        exit 1
    fi
    if ! grep -F -- "$2" "$WORK/out" >/dev/null; then
        cat "$WORK/out"
        echo "self-test: $1: the check did not say \"$2\"" >&2
        exit 1
    fi
    echo "   $1: refused ($2)"
}
plant route 'openapi["paths"]["/planted"] = {"get": {"responses": {"200": {"description": "ok"}}}}'
expect_refused "a route the code no longer serves" "public GET /planted: operation removed"
plant field 'e = contract["events"]["order.confirmed"]["schema"]; e["properties"]["planted"] = {"type": "string"}; e["required"].append("planted")'
expect_refused "an event field the code no longer sends" "event order.confirmed payload.planted: field removed"
plant enum 'openapi["components"]["schemas"]["OrderStatus"]["enum"].remove("CANCELLED")'
expect_refused "a response enum value readers never saw" 'new value "CANCELLED"'
plant header 'openapi["paths"]["/"]["post"]["responses"]["201"]["headers"]["X-Planted"] = {"schema": {"type": "string"}}'
expect_refused "a response header the code no longer sends" "header X-Planted no longer sent"
plant event-bump 'e = contract["events"]["order.confirmed"]["schema"]; e["properties"]["planted"] = {"type": "string"}; e["required"].append("planted"); contract["contract_version"] = 0'
expect_refused "an event payload broken under its same version, the contract version raised" "under the same event version"
plant bump 'openapi["paths"]["/planted"] = {"get": {"responses": {"200": {"description": "ok"}}}}; contract["contract_version"] = 0'
if ! RUST_LOG=warn "$BIN" contracts check --snapshots "$WORK/plant" >"$WORK/out" 2>&1 \
    || ! grep -F "allowed by the raised CONTRACT_VERSION" "$WORK/out" >/dev/null; then
    cat "$WORK/out"
    echo "self-test: a raised CONTRACT_VERSION did not let a breaking change through" >&2
    exit 1
fi
echo "   a breaking change under a raised CONTRACT_VERSION: allowed and listed"
echo "contract diff passed"
