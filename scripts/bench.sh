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
#   tracing    f. tracing at 100 % sampling against none: product GETs through the gateway of
#                 two one-process shops, wrk rounds interleaved
#   recovery   g. kill -9 of one of two orders instances mid-load in a fleet: p99 per second
#                 (`flotilla load --report-every 1s`) and the time until it is back within
#                 1.2 × its steady value (`flotilla up` restarts nothing: the survivor carries on)
#
# Needs PostgreSQL at $DATABASE_URL (postgres://postgres@127.0.0.1:5432; its databases are
# bench_<pid>_*, dropped at the end), nats-server, wrk, nginx and HAProxy (installed with apt-get
# when missing: scripts/deps.sh bench). Results: $RESULTS (target/bench), raw, then
# flotilla-bench-report rewrites docs/benchmarks.md between its markers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

SECTIONS=${SECTIONS:-mix edge fleet search stack tracing recovery}
# Absolute: the benches write to it from their own package's directory.
RESULTS=$(realpath -m "${RESULTS:-target/bench}")
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}
if [ -n "${QUICK:-}" ]; then
    MIX_RATES=${MIX_RATES:-100..500/step 100}; STEP=${STEP:-4s}; WARMUP=3s
    FLEET_SECS=5; EDGE_ROUNDS=1; EDGE_DURATION=3s; SEARCH_DURATION=3s; SEARCH_BACKENDS=sqlite
    STACK_SECS=2; STACK_ROUNDS=1; REC_SECS=30; REC_KILL=10
else
    MIX_RATES=${MIX_RATES:-200..2000/step 200}; STEP=${STEP:-8s}; WARMUP=5s
    FLEET_SECS=10; EDGE_ROUNDS=3; EDGE_DURATION=5s; SEARCH_DURATION=5s
    SEARCH_BACKENDS="sqlite postgres"; STACK_SECS=3; STACK_ROUNDS=3; REC_SECS=60; REC_KILL=20
fi
REC_RATE=${REC_RATE:-40}
export RUST_LOG=warn
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

bash scripts/deps.sh bench
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== building (not timed)"
if [ -z "${BIN:-}" ]; then
    cargo build --profile dist --quiet -p flotilla --features fleet
    BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
fi
cargo build --quiet -p flotilla-bench-report
REPORT=${CARGO_TARGET_DIR:-target}/debug/flotilla-bench-report
if has fleet; then cargo bench --quiet -p flotilla --features fleet --bench fleet --no-run >/dev/null; fi
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

# A private NATS with JetStream on a free port (its streams vanish with $DIR); sets NATS_URL.
start_nats() {
    local port; port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$DIR/nats-$port" >"$DIR/nats-$port.log" 2>&1 & PIDS+=($!)
    NATS_URL="nats://127.0.0.1:$port"
}

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
    WAIT_PID=$! WAIT_LOGS="$DIR/one.log" wait_shop "http://127.0.0.1:$port"
    load_mix "http://127.0.0.1:$port" 1-one-process
    stop_all

    start_nats
    port=$(free_port)
    "$BIN" up --port "$port" --data-dir "$DIR/fleet" --nats-url "$NATS_URL" \
        --database-url "$DATABASE_URL" --database-prefix "${PREFIX}_mix" >"$DIR/fleet.log" 2>&1 & PIDS+=($!)
    WAIT_PID=$! WAIT_LOGS="$DIR/fleet.log" wait_shop "http://127.0.0.1:$port"
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
        FLOTILLA_BENCH_DATABASE_URL=$DATABASE_URL cargo bench --quiet -p flotilla --features fleet --bench fleet \
        >"$DIR/fleet-bench.log" 2>&1 || { tail -20 "$DIR/fleet-bench.log" >&2; exit 1; }
    echo "FLOTILLA_BENCH_SECS=$FLEET_SECS cargo bench -p flotilla --features fleet --bench fleet" >"$RESULTS/checkout.cmd"
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
        >>"$RESULTS/layers.cmd"
fi

if has tracing; then
    echo "== f. tracing at 100 % sampling against none (product GETs, ${STACK_ROUNDS} rounds of ${SEARCH_DURATION})"
    # Rate limits stay on, with read buckets no one load address can empty (as bench-search.sh).
    export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND=1000000
    export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__BURST=1000000
    declare -A TR_PORT
    for variant in off on; do
        ratio=0; [ "$variant" = on ] && ratio=1
        TR_PORT[$variant]=$(free_port)
        FLOTILLA_CATALOG__SEED_PRODUCTS=1000 FLOTILLA_TELEMETRY__SAMPLE_RATIO=$ratio "$BIN" run --port "${TR_PORT[$variant]}" \
            --data-dir "$DIR/tracing-$variant" >"$DIR/tracing-$variant.log" 2>&1 & PIDS+=($!)
        WAIT_PID=$! WAIT_LOGS="$DIR/tracing-$variant.log" wait_ok "http://127.0.0.1:${TR_PORT[$variant]}/api/catalog/readyz" 120
        wrk -t1 -c4 -d2s -s scripts/bench/random-product.lua "http://127.0.0.1:${TR_PORT[$variant]}" -- /api/catalog >/dev/null
    done
    declare -A TR_RPS TR_P99
    for round in $(seq 1 "$STACK_ROUNDS"); do
        for variant in off on; do
            out=$(wrk -t2 -c16 -d"$SEARCH_DURATION" --latency -s scripts/bench/random-product.lua \
                "http://127.0.0.1:${TR_PORT[$variant]}" -- /api/catalog)
            rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
            p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
            echo "   round $round, sampling $variant: $rps req/s, p99 $p99 ms"
            TR_RPS[$variant]="${TR_RPS[$variant]:-} $rps"; TR_P99[$variant]="${TR_P99[$variant]:-} $p99"
        done
    done
    stop_all
    unset FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__BURST
    record layers.jsonl "layer=tracing at 100 % sampling (spans recorded in the store, product GET through the gateway)" \
        "off=sampling 0 (metrics on in both)" \
        "off_rps=$(median "${TR_RPS[off]}")" "on_rps=$(median "${TR_RPS[on]}")" \
        "off_p99_ms=$(median "${TR_P99[off]}")" "on_p99_ms=$(median "${TR_P99[on]}")" \
        "target=on ≥ 0.90 × off req/s, ≤ 1.10 × off p99 (issue 14)"
    cat >>"$RESULTS/layers.cmd" <<EOF
FLOTILLA_TELEMETRY__SAMPLE_RATIO=0 flotilla run --port P1 &    # and =1 on P2
wrk -t2 -c16 -d$SEARCH_DURATION --latency -s scripts/bench/random-product.lua http://127.0.0.1:P1 -- /api/catalog   # rounds alternate P1, P2
EOF
fi

if has recovery; then
    echo "== g. recovery: kill -9 of one of two orders instances ${REC_KILL}s into ${REC_SECS}s of load"
    mkdir -p "$RESULTS/recovery"
    export FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED=false
    start_nats
    port=$(free_port)
    "$BIN" up --port "$port" --data-dir "$DIR/rec" --nats-url "$NATS_URL" --replicas orders=2 \
        --database-url "$DATABASE_URL" --database-prefix "${PREFIX}_rec" >"$DIR/rec.log" 2>&1 & PIDS+=($!)
    WAIT_PID=$! WAIT_LOGS="$DIR/rec.log" wait_shop "http://127.0.0.1:$port"
    # `up` prints its instances as SERVICE REPLICA ADDRESS PID.
    victim=$(awk '$1 == "orders" && $2 == "1" && $3 ~ /^http/ { print $4; exit }' "$DIR/rec.log")
    [ -n "$victim" ] || { echo "no orders instance in flotilla up's table" >&2; cat "$DIR/rec.log" >&2; exit 1; }
    rec_cmd=(load --target "http://127.0.0.1:$port" --rate "$REC_RATE" --duration "${REC_SECS}s"
        --report-every 1s --warmup 5s --mix browse=60,checkout=40 --json)
    "$BIN" "${rec_cmd[@]}" >"$RESULTS/recovery/load.json" 2>"$DIR/rec-load.log" & load_pid=$!
    sleep $(( 5 + REC_KILL ))
    kill -9 "$victim"
    wait "$load_pid" || { echo "flotilla load failed:" >&2; tail -5 "$DIR/rec-load.log" >&2; exit 1; }
    stop_all
    unset FLOTILLA_GATEWAY__RATE_LIMIT__ENABLED
    cat >"$RESULTS/recovery.json" <<EOF
{"killed_at_s": $REC_KILL, "slice_s": 1, "journey": "checkout",
 "what": "kill -9 of orders#1 of 2 (flotilla up --replicas orders=2, PostgreSQL + NATS)"}
EOF
    cat >"$RESULTS/recovery.cmd" <<EOF
flotilla up --port PORT --replicas orders=2 --nats-url URL --database-url URL &
flotilla load --target http://127.0.0.1:PORT ${rec_cmd[*]:3} &
sleep $(( 5 + REC_KILL )); kill -9 ORDERS_1_PID    # from up's table of instances
EOF
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
