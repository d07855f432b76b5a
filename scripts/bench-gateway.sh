#!/usr/bin/env bash
# Gateway overhead, idle memory and start-up time of `flotilla run` (issue #3).
#
# Runs, in one go on this machine: a `dist` build (release + thin LTO, Cargo.toml), a seeded data dir, `flotilla run` (gateway +
# every service in-process) and `flotilla serve catalog` (catalog alone on its own port, same
# data), then drives both with wrk (64 connections) and prints a markdown table.
# The headline figure is a ratio measured in the same run: gateway req/s ÷ direct req/s.
#
#   bash scripts/bench-gateway.sh            # 10 s per scenario
#   DURATION=30s bash scripts/bench-gateway.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The gateway's rate limits stay on (their cost is part of the figure), with read buckets per
# address large enough that wrk's one address is never refused.
export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND=1000000
export FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__BURST=1000000
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --profile dist --quiet
BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
DIR=$(mktemp -d)
export FLOTILLA_SERVICE_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export RUST_LOG=warn
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

$BIN migrate --data-dir "$DIR" >/dev/null   # first start: create and seed (not measured)

GW=$(free_port)
t0=$(date +%s%N)
$BIN run --port "$GW" --data-dir "$DIR" >/dev/null & RUN_PID=$!; PIDS+=("$RUN_PID")
wait_ok "http://127.0.0.1:$GW/api/catalog/readyz"
t1=$(date +%s%N)
READY_MS=$(( (t1 - t0) / 1000000 ))
sleep 2
IDLE_RSS=$(rss_mb "$RUN_PID")

CAT=$(free_port)
$BIN serve catalog --port "$CAT" --data-dir "$DIR" >/dev/null & PIDS+=($!)
wait_ok "http://127.0.0.1:$CAT/healthz"
TOKEN=$(python3 - <<PY
import base64, hashlib, hmac, json, os, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
now = int(time.time())
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
# A service credential as a peer mints one: for catalog only, 60 s (the most a service accepts).
body = b(json.dumps({"sub": "bench", "aud": "catalog", "iat": now, "exp": now + 60}).encode())
sig = b(hmac.new(os.environ["FLOTILLA_SERVICE_SECRET"].encode(), head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())
PY
)
curl -fsS -o /dev/null -H "x-flotilla-service-token: $TOKEN" "http://127.0.0.1:$CAT/products/p0000001"

run_wrk() { # name url script prefix [header]
  local out
  if [ -n "${5:-}" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$5" -s "scripts/bench/$3" "$2" -- "$4")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "scripts/bench/$3" "$2" -- "$4")
  fi
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  errors=$(awk '/Non-2xx/ { print $5 } /Socket errors/ { print "socket:" $0 }' <<<"$out")
  echo "$rps" >"$DIR/$1.rps"
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo
echo "flotilla bench: $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(date -u +%F)"
echo
echo "| scenario | req/s | p50 | p99 | non-2xx |"
echo "|---|---|---|---|---|"
run_wrk "product GET, direct to catalog" "http://127.0.0.1:$CAT" random-product.lua "" "x-flotilla-service-token: $TOKEN"
run_wrk "product GET, through the gateway" "http://127.0.0.1:$GW" random-product.lua "/api/catalog"
run_wrk "search, through the gateway" "http://127.0.0.1:$GW" random-search.lua "/api/catalog"
LOAD_RSS=$(rss_mb "$RUN_PID")
RATIO=$(awk -v g="$(cat "$DIR/product GET, through the gateway.rps")" -v d="$(cat "$DIR/product GET, direct to catalog.rps")" 'BEGIN { printf "%.0f", 100 * g / d }')
echo
echo "| figure | value | target |"
echo "|---|---|---|"
echo "| gateway ÷ direct product GET req/s | ${RATIO} % | ≥ 50 % |"
echo "| ready after start, existing data dir | ${READY_MS} ms | ≤ 1000 ms |"
echo "| idle RSS of flotilla run | ${IDLE_RSS} MB | ≤ 60 MB |"
echo "| RSS of flotilla run after the load | ${LOAD_RSS} MB | — |"
