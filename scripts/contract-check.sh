#!/usr/bin/env bash
# The contract check (RELIABILITY.md B1): every service's OpenAPI documents are valid, and the
# servers do what the public ones say, as an outside tool sees them through the gateway.
#
#  1. `flotilla openapi` writes each service's public and internal document; each is checked
#     with openapi-spec-validator.
#  2. `flotilla run` starts on a free port with a fresh data dir and an admin; a customer signs up.
#  3. schemathesis runs every check against every service's public document through the gateway
#     (/api/<svc>): admin operations with the admin's token, the others with the customer's.
#     Any failure (a 5xx, a response off its schema, invalid input accepted, valid input
#     rejected, an undocumented status...) fails the script.
#
# Run alone:  bash scripts/contract-check.sh
#   MAX_EXAMPLES=N   test cases per operation and phase (default 20: about 2 minutes on 2 cores)
#   BIN=path         a flotilla binary to test instead of building one
#   SERVICES="a b"   only these services
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so a new release of either tool cannot fail (or pass) CI on its own.
SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
MAX_EXAMPLES=${MAX_EXAMPLES:-20}
SERVICES=${SERVICES:-"identity catalog cart inventory orders payments shipping notifications"}

pip_pin() { # package version
    # (grep without -q: an early exit would fail pip's write, and pipefail the test.)
    if ! python3 -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check "$1==$2"
    fi
}
pip_pin openapi-spec-validator "$VALIDATOR_VERSION"
pip_pin schemathesis "$SCHEMATHESIS_VERSION"

source scripts/lib/shop.sh

echo "== OpenAPI documents (openapi-spec-validator $VALIDATOR_VERSION)"
RUST_LOG=warn "$BIN" openapi --data-dir "$DIR/data" --out "$DIR/openapi" >/dev/null
for doc in "$DIR"/openapi/*.json; do
    python3 -m openapi_spec_validator "$doc"
done

ADMIN_EMAIL=admin@contract.example
ADMIN_PASSWORD=contract-check-admin
# The gateway's rate limits off: schemathesis sends hundreds of requests a second from one
# address, and behind 429s it would check the limits instead of the services' contracts (the
# limits have their own tests: crates/flotilla/tests/system/rate_limit.rs).
start_shop "$ADMIN_EMAIL" "$ADMIN_PASSWORD" FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED=false

login() { # email password
    curl -fsS -X POST "$B/api/identity/login" -H 'content-type: application/json' \
        -d "{\"email\":\"$1\",\"password\":\"$2\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
curl -fsS -o /dev/null -X POST "$B/api/identity/signup" -H 'content-type: application/json' \
    -d '{"email":"ada@contract.example","password":"correct horse","name":"Ada"}'
CUSTOMER=$(login ada@contract.example "correct horse")
ADMIN=$(login "$ADMIN_EMAIL" "$ADMIN_PASSWORD")

echo "== schemathesis $SCHEMATHESIS_VERSION, all checks, $MAX_EXAMPLES examples per operation"
failed=()
schemathesis_run() { # service token filter...
    local svc=$1 tok=$2
    shift 2
    # --workers 1: with threads, CPython 3.11 can fail compiling schemathesis's generated code
    # ("AST constructor recursion depth mismatch"), an error of the tool, not of the server.
    # --warnings off: advice such as "many 404s for random ids" is not a contract failure.
    schemathesis --config-file scripts/schemathesis.toml run "$B/api/$svc/openapi.json" --checks all --max-examples "$MAX_EXAMPLES" \
        --header "Authorization: Bearer $tok" --seed 1 --workers 1 --no-color --warnings off \
        --phases examples,coverage,fuzzing,stateful --suppress-health-check all "$@"
}
for svc in $SERVICES; do
    echo "-- $svc (customer)"
    schemathesis_run "$svc" "$CUSTOMER" --exclude-tag admin || failed+=("$svc")
    if grep -q '"admin"' "$DIR/openapi/$svc.json"; then
        echo "-- $svc (admin)"
        # The fault API last and on its own: the faults it injects (valid ones last up to an
        # hour) would slow or fail the service's other operations, admin ones included.
        schemathesis_run "$svc" "$ADMIN" --include-tag admin --exclude-path-regex '^/admin/faults' \
            || failed+=("$svc admin")
        schemathesis_run "$svc" "$ADMIN" --include-path-regex '^/admin/faults' \
            || failed+=("$svc faults")
        # Cleared, so they cannot reach the runs of the services after.
        curl -fsS -o /dev/null -X DELETE "$B/api/$svc/admin/faults" \
            -H "Authorization: Bearer $ADMIN" || failed+=("$svc clearing faults")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "contract check failed for: ${failed[*]}" >&2
    echo "flotilla's log: (last 40 lines)" >&2
    tail -40 "$DIR/flotilla.log" >&2
    exit 1
fi
echo "contract check: every document valid, schemathesis found nothing"
