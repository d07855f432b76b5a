#!/usr/bin/env bash
# Memory of `flotilla run` under logins: Argon2id needs 19 MiB per hash, and how that memory is
# allocated decides whether RSS stays bounded. Prints RSS idle, after LOGINS logins (PARALLEL at
# once), after as many again (equal: nothing accumulates), and after IDLE seconds without a
# login (identity releases Argon2's memory after 30 s idle; target ≤ 60 MB, issue 10).
#
#   bash scripts/bench-login-memory.sh                 # dist build, 300 logins, 16 at once
#   BIN=target/debug/flotilla LOGINS=600 IDLE=60 bash scripts/bench-login-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOGINS=${LOGINS:-300}
PARALLEL=${PARALLEL:-16}
IDLE=${IDLE:-60}
if [ -z "${BIN:-}" ]; then
    cargo build --profile dist --quiet
    BIN=${CARGO_TARGET_DIR:-target}/dist/flotilla
fi
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# One account logged into PARALLEL times at once from one address: loose enough limits that
# neither the gateway's login bucket nor identity's failed-login throttle (which counts the
# checks under way) refuses them; this measures memory, not the limits.
FLOTILLA_GATEWAY__RATE_LIMIT__LOGIN__PER_IP__PER_SECOND=1000000 \
FLOTILLA_GATEWAY__RATE_LIMIT__LOGIN__PER_IP__BURST=1000000 \
FLOTILLA_IDENTITY__LOGIN_FAILURES_MAX=1000 \
RUST_LOG=warn "$BIN" run --port "$PORT" --data-dir "$DIR" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
B=http://127.0.0.1:$PORT
deadline=$(( $(date +%s) + 60 ))
until curl -fsS -o /dev/null "$B/healthz" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "flotilla did not start" >&2; exit 1; }
    sleep 0.2
done
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$PID/status"; }
curl -fsS -o /dev/null -X POST "$B/api/identity/signup" -H 'content-type: application/json' \
    -d '{"email":"ada@example.com","password":"correct horse","name":"Ada"}'
logins() {
    seq 1 "$LOGINS" | xargs -P "$PARALLEL" -I{} curl -fsS -o /dev/null -X POST "$B/api/identity/login" \
        -H 'content-type: application/json' -d '{"email":"ada@example.com","password":"correct horse"}'
}
idle=$(rss)
logins
first=$(rss)
logins
second=$(rss)
sleep "$IDLE"   # the thing measured is what idle time does
after_idle=$(rss)
echo "| measure | RSS of flotilla run |"
echo "|---|---|"
echo "| idle, after start and one signup | $idle |"
echo "| after $LOGINS logins ($PARALLEL at once) | $first |"
echo "| after $LOGINS more | $second |"
echo "| then $IDLE s without a login | $after_idle |"
