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
source scripts/lib/shop.sh
ADMIN_EMAIL=admin@browser.example
ADMIN_PASSWORD=browser-check-admin
start_shop "$ADMIN_EMAIL" "$ADMIN_PASSWORD" FLOTILLA_METRICS_LISTEN=127.0.0.1:0

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
NODE_PATH="$TOOLS/node_modules" node scripts/browser/journey.js "$B" "$SHOTS" \
    "$ADMIN_EMAIL" "$ADMIN_PASSWORD"
echo "browser check passed; screenshots in $SHOTS"
