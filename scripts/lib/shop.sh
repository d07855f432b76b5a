# Sourced by the checks that drive a real shop (contract-check.sh, browser-check.sh): the
# `flotilla` binary ($BIN, built when not given), a temporary directory ($DIR) removed at exit
# with the shop in it stopped, and `start_shop EMAIL PASSWORD [NAME=VALUE...]`, which starts
# `flotilla run` on a free port with that administrator (and those variables), waits until it
# is ready and sets $B to its base URL.

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

start_shop() { # email password [NAME=VALUE...]
    local email=$1 password=$2 port
    shift 2
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    env "$@" FLOTILLA_ADMIN_EMAIL="$email" FLOTILLA_ADMIN_PASSWORD="$password" RUST_LOG=warn \
        "$BIN" run --port "$port" --data-dir "$DIR/data" >"$DIR/flotilla.log" 2>&1 &
    PID=$!
    B=http://127.0.0.1:$port
    local deadline=$(( $(date +%s) + 60 ))
    until curl -fsS -o /dev/null "$B/readyz" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "flotilla did not start:" >&2
            cat "$DIR/flotilla.log" >&2
            exit 1
        fi
        sleep 0.2
    done
}
