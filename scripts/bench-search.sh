#!/usr/bin/env bash
# Search at 1,000, 10,000 and 100,000 products, on SQLite and on PostgreSQL (issue 10).
#
# For each backend and size: a fresh catalog seeded with that many products on its first start
# (FLOTILLA_CATALOG__SEED_PRODUCTS), `flotilla run` on it, and wrk through the gateway: 2 threads, 16 connections, each request a search for a random common word
# (scripts/bench/random-search.lua); then, on the same server, the same load of product GETs
# (scripts/bench/random-product.lua), whose rate is the yardstick: the machine is shared and
# noisy, so "search ÷ GET" compares runs better than req/s alone. Prints a markdown table and the
# load average before and after.
#
#   bash scripts/bench-search.sh                              # dist build, 10 s per run
#   DURATION=30s BACKENDS="sqlite" SIZES="100000" bash scripts/bench-search.sh
#   BIN=target/debug/flotilla bash scripts/bench-search.sh   # another build
#   RESULTS=DIR bash scripts/bench-search.sh   # also append each row to DIR/search.jsonl (bench.sh)
# PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432); its databases are
# bench_search_<pid>_<size>_<service>, dropped at the end (needs psql).
set -euo pipefail
cd "$(dirname "$0")/.."
# The gateway's rate limits stay on (their cost is part of the figure), with read buckets per
# address large enough that wrk's one address is never refused.
export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND=1000000
export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__BURST=1000000
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
BACKENDS=${BACKENDS:-sqlite postgres}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
    cargo build --profile dist --quiet
    BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
fi
export RUST_LOG=warn
PREFIX="bench_search_$$"
DIR=$(mktemp -d)
RUN_PID=""
stop() { if [ -n "$RUN_PID" ]; then kill "$RUN_PID" 2>/dev/null || true; wait "$RUN_PID" 2>/dev/null || true; RUN_PID=""; fi; }
cleanup() {
    stop
    rm -rf "$DIR"
    if [[ "$BACKENDS" == *postgres* ]] && command -v psql >/dev/null; then
        for db in $(psql "$DATABASE_URL/postgres" -Atc "SELECT datname FROM pg_database WHERE datname LIKE '${PREFIX}_%'"); do
            psql "$DATABASE_URL/postgres" -qc "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
        done
    fi
}
trap cleanup EXIT
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| backend | products | search req/s | p50 | p99 | non-2xx | product GET req/s | search ÷ GET |"
echo "|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS; do
    for size in ${SIZES:-1000 10000 100000}; do
        # A fresh catalog per size, seeded with `size` products on its first start.
        args=(--data-dir "$DIR/$backend-$size")
        [ "$backend" = postgres ] && args+=(--database-url "$DATABASE_URL" --database-prefix "${PREFIX}_$size")
        FLOTILLA_CATALOG__SEED_PRODUCTS=$size "$BIN" migrate "${args[@]}" >/dev/null
        port=$(free_port)
        "$BIN" run --port "$port" "${args[@]}" >/dev/null 2>&1 & RUN_PID=$!
        wait_ok "http://127.0.0.1:$port/api/catalog/readyz" 120
        # Warm the caches (SQLite pages, PostgreSQL buffers) before measuring.
        wrk -t1 -c4 -d2s -s scripts/bench/random-search.lua "http://127.0.0.1:$port" -- /api/catalog >/dev/null
        out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
            -s scripts/bench/random-search.lua "http://127.0.0.1:$port" -- /api/catalog)
        rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
        get=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
            -s scripts/bench/random-product.lua "http://127.0.0.1:$port" -- /api/catalog)
        get_rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$get")
        ratio=$(awk -v a="$rps" -v b="$get_rps" 'BEGIN { if (b > 0) printf "%d %%", 100 * a / b }')
        echo "| $backend | $size | $rps | $p50 | $p99 | ${bad:-0} | $get_rps | $ratio |"
        record search.jsonl "backend=$backend" "products=$size" "rps=${rps:-0}" \
            "p50_ms=$(to_ms "$p50")" "p99_ms=$(to_ms "$p99")" "non_2xx=${bad:-0}" "get_rps=${get_rps:-0}"
        stop
    done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
