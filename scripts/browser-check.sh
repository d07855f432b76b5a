#!/usr/bin/env bash
# The shop in a real browser (issue 14 item 6): `flotilla run` on a free port with a fresh data
# dir and an administrator, then scripts/browser/journey.js in headless Chromium (Debian's
# `chromium`, driven by npm's `playwright-core`; no browser download). Screenshots of every step
# are kept in $SHOTS (default target/browser-shots), for CI to keep as artifacts.
#
#   BIN=path   a flotilla binary to test instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
SHOTS=${SHOTS:-${CARGO_TARGET_DIR:-target}/browser-shots}
TOOLS=${CARGO_TARGET_DIR:-target}/browser-tools

if ! command -v chromium >/dev/null; then
    bash scripts/deps.sh chromium
fi
if [ ! -d "$TOOLS/node_modules/playwright-core" ]; then
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-save --no-audit --no-fund --silent \
        "playwright-core@$PLAYWRIGHT_VERSION"
fi
if [ -z "${BIN:-}" ]; then
    cargo build --locked --workspace --all-features --bins --quiet
    BIN=${CARGO_TARGET_DIR:-target}/debug/flotilla
fi

DIR=$(mktemp -d)
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADMIN_EMAIL=admin@browser.example
ADMIN_PASSWORD=browser-check-admin
FLOTILLA_ADMIN_EMAIL=$ADMIN_EMAIL FLOTILLA_ADMIN_PASSWORD=$ADMIN_PASSWORD RUST_LOG=warn \
FLOTILLA_METRICS_LISTEN=127.0.0.1:0 \
    "$BIN" run --port "$PORT" --data-dir "$DIR/data" >"$DIR/flotilla.log" 2>&1 &
PID=$!
B=http://127.0.0.1:$PORT
deadline=$(( $(date +%s) + 60 ))
until curl -fsS -o /dev/null "$B/readyz" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "flotilla did not start:" >&2
        cat "$DIR/flotilla.log" >&2
        exit 1
    fi
    sleep 0.2
done

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
NODE_PATH="$TOOLS/node_modules" node scripts/browser/journey.js "$B" "$SHOTS" \
    "$ADMIN_EMAIL" "$ADMIN_PASSWORD"
echo "browser check passed; screenshots in $SHOTS"
