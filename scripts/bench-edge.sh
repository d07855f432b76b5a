#!/usr/bin/env bash
# The gateway against nginx and HAProxy as reverse proxies (issue 13, "speed").
#
# One upstream for all: nginx answering 1 KB of JSON (and a one-operation OpenAPI document, so
# that Flotilla's gateway, which serves only what a service documents, forwards the path). In
# front of it, each with one worker and upstream keep-alive: nginx 1.22 (`proxy_pass`),
# HAProxy 2.6 (`nbthread 1`), and `flotilla serve gateway --remote catalog=<upstream>`
# (TOKIO_WORKER_THREADS=1) with every protection on: local rate limits (buckets raised so the
# one load address and user are never refused), the limits, the exposure check, request ids. Also the
# upstream called directly; and the gateway again with a customer's bearer token on every
# request (verified each time). wrk -t1 -c64 for DURATION per scenario, ROUNDS interleaved rounds;
# prints each round, then medians and the ratios to nginx.
#
#   bash scripts/bench-edge.sh                      # 3 rounds of 10 s
#   ROUNDS=5 DURATION=20s bash scripts/bench-edge.sh
#   BIN=target/release/flotilla bash scripts/bench-edge.sh
#   SCENARIOS="nginx flotilla" bash scripts/bench-edge.sh   # only some scenarios
#   HOLD=1 bash scripts/bench-edge.sh      # set everything up, print the URLs, wait (to profile)
#   RESULTS=DIR bash scripts/bench-edge.sh # also append each round to DIR/edge.jsonl (bench.sh)
#
# Needs nginx-light, haproxy and wrk (apt-get install nginx-light haproxy wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
for tool in nginx haproxy wrk; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install nginx-light haproxy wrk" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
    cargo build --profile dist --quiet --bin flotilla
    BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
fi

DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$DIR"; }
trap cleanup EXIT
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
WAIT_LOGS="$DIR/nginx-*/error.log $DIR/gateway.log"

UP=$(free_port); NG=$(free_port); HA=$(free_port); GW=$(free_port); ID=$(free_port)
mkdir -p "$DIR/www/products" "$DIR/nginx-up" "$DIR/nginx-proxy"
python3 - "$DIR/www" <<'EOF'
import json, sys
www = sys.argv[1]
product = {"id": "p0000001", "name": "Benchmark product", "description": "x" * 880,
           "price": {"amount_minor": 1999, "currency": "EUR"}, "category": "bench"}
open(f"{www}/products/p0000001", "w").write(json.dumps(product))
doc = {"openapi": "3.1.0", "info": {"title": "catalog", "version": "1"},
       "paths": {"/products/{id}": {"get": {"responses": {"200": {"description": "a product"}}}}}}
open(f"{www}/openapi.json", "w").write(json.dumps(doc))
# The gateway's balancer probes its upstream's readiness.
for probe in ("readyz", "healthz"):
    open(f"{www}/{probe}", "w").write('{"status":"ok"}')
EOF
chmod -R a+rX "$DIR"   # nginx's workers run as another user
echo "upstream answer: $(wc -c < "$DIR/www/products/p0000001") bytes of JSON"

nginx_conf() { # dir port body
    cat > "$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1;
    uwsgi_temp_path $1; scgi_temp_path $1;
    keepalive_requests 1000000;
    $3
    server { listen 127.0.0.1:$2; $4 }
}
EOF
}
nginx_conf "$DIR/nginx-up" "$UP" "default_type application/json;" "root $DIR/www; location / { }"
nginx_conf "$DIR/nginx-proxy" "$NG" \
    "upstream up { server 127.0.0.1:$UP; keepalive 64; }" \
    "location / { proxy_pass http://up/; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
# nginx and HAProxy get the same URL as the gateway: /api/catalog/... → /...
sed -i "s|proxy_pass http://up/;|rewrite ^/api/catalog/(.*)\$ /\$1 break; proxy_pass http://up;|" "$DIR/nginx-proxy/nginx.conf"
cat > "$DIR/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend edge
    bind 127.0.0.1:$HA
    http-request replace-path ^/api/catalog/(.*) /\1
    default_backend up
backend up
    http-reuse always
    server up1 127.0.0.1:$UP maxconn 1000
EOF

nginx -c "$DIR/nginx-up/nginx.conf" & PIDS+=($!)
nginx -c "$DIR/nginx-proxy/nginx.conf" & PIDS+=($!)
haproxy -f "$DIR/haproxy.cfg" -db >/dev/null 2>&1 & PIDS+=($!)
FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND=1000000 \
FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__BURST=1000000 \
FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_USER__PER_SECOND=1000000 \
FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_USER__BURST=1000000 \
FLOTILLA_SERVICE_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
TOKIO_WORKER_THREADS=1 RUST_LOG=warn \
    "$BIN" serve gateway identity --listen "gateway=127.0.0.1:$GW" --listen "identity=127.0.0.1:$ID" \
    --data-dir "$DIR/data" --remote "catalog=http://127.0.0.1:$UP" \
    >"$DIR/gateway.log" 2>&1 & PIDS+=($!)

echo "gateway: pid ${PIDS[3]} (perf record -g -p ${PIDS[3]} to profile it under load)"
PATH_=/api/catalog/products/p0000001
declare -A URL=(
    [direct]="http://127.0.0.1:$UP/products/p0000001"
    [nginx]="http://127.0.0.1:$NG$PATH_"
    [haproxy]="http://127.0.0.1:$HA$PATH_"
    [flotilla]="http://127.0.0.1:$GW$PATH_"
)
URL[flotilla+token]=${URL[flotilla]}
# SCENARIOS="nginx flotilla" runs only those (nginx is always run: the ratios are to it).
read -r -a ORDER <<<"${SCENARIOS:-direct nginx haproxy flotilla flotilla+token}"
[[ " ${ORDER[*]} " == *" nginx "* ]] || ORDER=(nginx "${ORDER[@]}")
for s in "${ORDER[@]}"; do wait_ok "${URL[$s]}"; done
# A customer's token, verified by the gateway on every request of the `flotilla+token` scenario
# (identity runs beside the gateway; its keys are cached after the first request).
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$GW/api/identity/signup" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password 1","name":"Bench"}'
TOKEN=$(curl -fsS -X POST "http://127.0.0.1:$GW/api/identity/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password 1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
declare -A HEADER=([flotilla+token]="Authorization: Bearer $TOKEN")
for s in "${ORDER[@]}"; do
    bytes=$(curl -fsS -H "${HEADER[$s]:-X-Bench: 1}" "${URL[$s]}" | wc -c)
    echo "$s answers $bytes bytes"
done

if [ -n "${HOLD:-}" ]; then # keep everything up for a profiler or a hand-run load, until ^C
    for s in "${ORDER[@]}"; do echo "$s: ${URL[$s]}"; done
    echo "token: $TOKEN"
    echo "ready; holding (^C ends)"
    wait
fi

declare -A RPS P99
echo
echo "| round | scenario | req/s | p99 ms | non-2xx |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    for s in "${ORDER[@]}"; do
        out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "${HEADER[$s]:-X-Bench: 1}" "${URL[$s]}")
        rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
        p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
        bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out"); bad=${bad:-0}
        echo "| $r | $s | $rps | $p99 | $bad |"
        record edge.jsonl "scenario=$s" "round=$r" "rps=${rps:-0}" "p99_ms=${p99:-0}" "non_2xx=$bad"
        RPS[$s]="${RPS[$s]:-} $rps"; P99[$s]="${P99[$s]:-} $p99"
    done
done
echo
echo "| scenario | req/s (median) | p99 ms (median) | req/s ÷ nginx | p99 ÷ nginx |"
echo "|---|---|---|---|---|"
NR=$(median "${RPS[nginx]}"); NP=$(median "${P99[nginx]}")
for s in "${ORDER[@]}"; do
    rps=$(median "${RPS[$s]}"); p99=$(median "${P99[$s]}")
    awk -v s="$s" -v r="$rps" -v p="$p99" -v nr="$NR" -v np="$NP" \
        'BEGIN { printf "| %s | %.0f | %.2f | %.2f | %.2f |\n", s, r, p, r / nr, p / np }'
done
echo
echo "gateway RSS after the load: $(awk '/VmRSS/ { printf "%.1f MB", $2 / 1024 }' "/proc/${PIDS[3]}/status")"
