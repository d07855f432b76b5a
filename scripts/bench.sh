#!/usr/bin/env bash
# The benchmark suite (issue 15): every figure of docs/benchmarks.md's generated part, measured
# in one run and written there with the command that reproduces it and an SVG plot per series
# (docs/bench/). About 15 minutes on a 2-core machine once built (the build is not counted:
# `cargo build --profile dist`, then the benches' release builds).
#
#   bash scripts/bench.sh                         every section
#   QUICK=1 bash scripts/bench.sh                 shorter runs (about 6 minutes), noisier figures
#   SECTIONS="mix edge" bash scripts/bench.sh     some sections only (the report shows those)
#   NO_DOC=1 bash scripts/bench.sh                measure only: results stay in $RESULTS
#   BIN=target/debug/flotilla QUICK=1 NO_DOC=1 bash scripts/bench.sh   try the script itself
#
# Sections (the letters are issue 15's):
#   mix        a. p99 against offered load for the 80/15/5 mix, one process (SQLite) and the
#                 fleet (`flotilla up` on PostgreSQL + a private NATS), stepped open-loop
#                 `flotilla load`; the saturation throughput at p99 ≤ 100 ms
#   edge       b. the gateway against nginx, HAProxy and a direct call (scripts/bench-edge.sh)
#   fleet      c. checkout throughput and p99, one process, fleet, and fleet with 1, 2, 3
#                 replicas of its bottleneck; e. CPU and RSS per process, idle and under load
#                 (`cargo bench -p flotilla --bench fleet`)
#   search     d. catalog search p99 at 1k, 10k, 100k products (scripts/bench-search.sh)
#   stack      f. the resilience stack on against off (`cargo bench -p flotilla-discovery
#                 --bench stack`)
#
# Needs PostgreSQL at $DATABASE_URL (postgres://postgres@127.0.0.1:5432; its databases are
# bench_<pid>_*, dropped at the end), nats-server, wrk, nginx and HAProxy (installed with apt-get
# when missing: scripts/deps.sh bench). Results: $RESULTS (target/bench), raw, then
# flotilla-bench-report rewrites docs/benchmarks.md between its markers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

SECTIONS=${SECTIONS:-mix edge fleet search stack}
RESULTS=${RESULTS:-target/bench}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
if [ -n "${QUICK:-}" ]; then
    MIX_RATES=${MIX_RATES:-100..500/step 100}; STEP=${STEP:-4s}; WARMUP=3s
    FLEET_SECS=5; EDGE_ROUNDS=1; EDGE_DURATION=3s; SEARCH_DURATION=3s; SEARCH_BACKENDS=sqlite
    STACK_SECS=2; STACK_ROUNDS=1
else
    MIX_RATES=${MIX_RATES:-100..800/step 100}; STEP=${STEP:-8s}; WARMUP=5s
    FLEET_SECS=10; EDGE_ROUNDS=3; EDGE_DURATION=5s; SEARCH_DURATION=5s
    SEARCH_BACKENDS="sqlite postgres"; STACK_SECS=3; STACK_ROUNDS=3
fi
export RUST_LOG=warn
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

bash scripts/deps.sh bench
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== building (not timed)"
if [ -z "${BIN:-}" ]; then
    cargo build --profile dist --quiet -p flotilla
    BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
fi
cargo build --quiet -p flotilla-bench-report
REPORT=${CARGO_TARGET_DIR:-target}/debug/flotilla-bench-report
if has fleet; then cargo bench --quiet -p flotilla --bench fleet --no-run >/dev/null; fi
if has stack; then cargo bench --quiet -p flotilla-discovery --bench stack --no-run >/dev/null; fi
START=$(date +%s)

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
export RESULTS
DIR=$(mktemp -d)
PIDS=()
PREFIX="bench_$$"
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for db in $(psql "$DATABASE_URL/postgres" -Atc \
        "SELECT datname FROM pg_database WHERE datname LIKE '${PREFIX}_%'" 2>/dev/null); do
        psql "$DATABASE_URL/postgres" -qc "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null || true
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
stop_all() { cleanup_pids=("${PIDS[@]}"); PIDS=(); for p in "${cleanup_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# Every service of the shop answering ready through the gateway at $1.
wait_shop() {
    for service in identity catalog cart inventory payments shipping orders notifications; do
        wait_ok "$1/api/$service/readyz" 120
    done
}

# a. `flotilla load` against a shop at URL, written to mix/N-LABEL.json.
load_mix() { # url n-label
    local cmd=("$BIN" load --target "$1" --rate "$MIX_RATES" --step-duration "$STEP" --warmup "$WARMUP" --json)
    echo "   flotilla ${cmd[*]:1}"
    "${cmd[@]}" >"$RESULTS/mix/$2.json" 2>"$DIR/load-$2.log" || {
        echo "flotilla load failed (exit $?):" >&2; tail -5 "$DIR/load-$2.log" >&2; exit 1; }
}

if has mix; then
    echo "== a. the 80/15/5 mix against offered load ($MIX_RATES, $STEP a step)"
    mkdir -p "$RESULTS/mix"
    # The shop is measured, not its limiter: one load generator is one client address.
    export FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED=false
    port=$(free_port)
    "$BIN" run --port "$port" --data-dir "$DIR/one" >"$DIR/one.log" 2>&1 & PIDS+=($!)
    WAIT_LOGS="$DIR/one.log" wait_shop "http://127.0.0.1:$port"
    load_mix "http://127.0.0.1:$port" 1-one-process
    stop_all

    nats_port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$DIR/nats" >"$DIR/nats.log" 2>&1 & PIDS+=($!)
    port=$(free_port)
    "$BIN" up --port "$port" --data-dir "$DIR/fleet" --nats-url "nats://127.0.0.1:$nats_port" \
        --database-url "$DATABASE_URL" --database-prefix "${PREFIX}_mix" >"$DIR/fleet.log" 2>&1 & PIDS+=($!)
    WAIT_LOGS="$DIR/fleet.log" wait_shop "http://127.0.0.1:$port"
    load_mix "http://127.0.0.1:$port" 2-fleet-PostgreSQL+NATS
    stop_all
    unset FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED
    cat >"$RESULTS/mix.cmd" <<EOF
flotilla run --port PORT &                       # one process, SQLite (rate limits off: FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED=false)
flotilla up --port PORT --nats-url URL --database-url URL &   # the fleet, the same way
flotilla load --target http://127.0.0.1:PORT --rate '$MIX_RATES' --step-duration $STEP --warmup $WARMUP --json
EOF
fi

if has edge; then
    echo "== b. the gateway against nginx, HAProxy and a direct call"
    ROUNDS=$EDGE_ROUNDS DURATION=$EDGE_DURATION BIN=$BIN bash scripts/bench-edge.sh | tail -8
    echo "ROUNDS=$EDGE_ROUNDS DURATION=$EDGE_DURATION bash scripts/bench-edge.sh" >"$RESULTS/edge.cmd"
fi

if has fleet; then
    echo "== c, e. checkout: one process, the fleet, replicas of its bottleneck; CPU and RSS per process"
    FLOTILLA_BENCH_SECS=$FLEET_SECS FLOTILLA_BENCH_RESULTS=$RESULTS \
        FLOTILLA_BENCH_DATABASE_URL=$DATABASE_URL cargo bench --quiet -p flotilla --bench fleet \
        >"$DIR/fleet-bench.log" 2>&1 || { tail -20 "$DIR/fleet-bench.log" >&2; exit 1; }
    echo "FLOTILLA_BENCH_SECS=$FLEET_SECS cargo bench -p flotilla --bench fleet" >"$RESULTS/checkout.cmd"
    cp "$RESULTS/checkout.cmd" "$RESULTS/resources.cmd"
fi

if has search; then
    echo "== d. catalog search at 1k, 10k, 100k products ($SEARCH_BACKENDS)"
    DURATION=$SEARCH_DURATION BACKENDS=$SEARCH_BACKENDS BIN=$BIN DATABASE_URL=$DATABASE_URL \
        bash scripts/bench-search.sh | grep '^|' | tail -6
    echo "DURATION=$SEARCH_DURATION BACKENDS=\"$SEARCH_BACKENDS\" bash scripts/bench-search.sh" >"$RESULTS/search.cmd"
fi

if has stack; then
    echo "== f. the resilience stack on against off"
    FLOTILLA_BENCH_SECS=$STACK_SECS FLOTILLA_BENCH_ROUNDS=$STACK_ROUNDS FLOTILLA_BENCH_RESULTS=$RESULTS \
        cargo bench --quiet -p flotilla-discovery --bench stack 2>/dev/null | tail -3
    echo "FLOTILLA_BENCH_SECS=$STACK_SECS FLOTILLA_BENCH_ROUNDS=$STACK_ROUNDS cargo bench -p flotilla-discovery --bench stack" \
        >"$RESULTS/layers.cmd"
fi

TOTAL=$(( $(date +%s) - START ))
cat >"$RESULTS/meta.json" <<EOF
{"commit": "$(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')",
 "date": "$(date -u +%Y-%m-%d)", "cpus": $(nproc),
 "load_before": "$LOAD_BEFORE", "load_after": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "total_s": $TOTAL, "quick": $([ -n "${QUICK:-}" ] && echo true || echo false)}
EOF
echo "== measured in $(( TOTAL / 60 )) min $(( TOTAL % 60 )) s; results in $RESULTS"
if [ -z "${NO_DOC:-}" ]; then
    "$REPORT" --results "$RESULTS" --doc docs/benchmarks.md --plots docs/bench
fi
