# PostgreSQL and NATS (JetStream) for the tests, sourced by scripts/test.sh.
#
# `ensure_test_servers` probes the servers the tests would use: FLOTILLA_TEST_POSTGRES (default
# postgres://postgres@127.0.0.1:5432) and FLOTILLA_TEST_NATS_URL (default
# nats://127.0.0.1:4222). One that answers is used as it is. For one that does not (a laptop
# with only Rust), it installs what is missing (scripts/deps.sh) and starts a throwaway
# instance on a free port in a temporary directory, points the variable at it, and stops and
# removes it when the shell exits. It fails, rather than letting a suite skip, when it cannot.

# host and port of a URL such as postgres://user@host:port/db or nats://host:port
url_host() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; echo "${rest%:*}"; }
url_port() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; echo "${rest##*:}"; }

# True when something accepts TCP connections at host $1, port $2.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# True when a NATS server with JetStream answers at host $1, port $2 (its INFO line says so).
nats_with_jetstream() {
    local info
    info=$( (exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 2 line <&3 && echo "$line") 2>/dev/null) \
        || return 1
    [[ $info == INFO* && $info == *'"jetstream":true'* ]]
}

# A TCP port nothing listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        tcp_open 127.0.0.1 "$port" || { echo "$port"; return; }
    done
}

# Polls `$@` for up to $1 seconds (first argument), every 100 ms.
wait_for() {
    local seconds=$1; shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

TEST_SERVERS_DIR=""
TEST_SERVERS_PG_BIN=""
TEST_SERVERS_NATS_PID=""
TEST_SERVERS_AS=()

stop_test_servers() {
    if [ -n "$TEST_SERVERS_PG_BIN" ] && [ -d "$TEST_SERVERS_DIR/pg" ]; then
        "${TEST_SERVERS_AS[@]}" "$TEST_SERVERS_PG_BIN/pg_ctl" stop -D "$TEST_SERVERS_DIR/pg" \
            -m immediate -w >/dev/null 2>&1 || true
    fi
    if [ -n "$TEST_SERVERS_NATS_PID" ]; then
        kill "$TEST_SERVERS_NATS_PID" 2>/dev/null || true
        wait "$TEST_SERVERS_NATS_PID" 2>/dev/null || true
    fi
    [ -z "$TEST_SERVERS_DIR" ] || rm -rf "$TEST_SERVERS_DIR"
}

servers_dir() {
    if [ -z "$TEST_SERVERS_DIR" ]; then
        TEST_SERVERS_DIR=$(mktemp -d -t flotilla-test-servers.XXXXXX)
        trap stop_test_servers EXIT
        trap 'exit 130' INT TERM
    fi
}

start_postgres() {
    bash scripts/deps.sh postgres
    TEST_SERVERS_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$TEST_SERVERS_PG_BIN" ] || TEST_SERVERS_PG_BIN=$(dirname "$(command -v initdb)")
    servers_dir
    # PostgreSQL refuses to run as root: run it as the postgres user the package created.
    if [ "$(id -u)" -eq 0 ]; then
        TEST_SERVERS_AS=(runuser -u postgres --)
        chown postgres "$TEST_SERVERS_DIR"
    fi
    local port; port=$(free_port)
    "${TEST_SERVERS_AS[@]}" "$TEST_SERVERS_PG_BIN/initdb" -D "$TEST_SERVERS_DIR/pg" -U postgres \
        -A trust -E UTF8 --locale=C --no-sync >/dev/null
    "${TEST_SERVERS_AS[@]}" "$TEST_SERVERS_PG_BIN/pg_ctl" start -D "$TEST_SERVERS_DIR/pg" -w \
        -l "$TEST_SERVERS_DIR/postgres.log" -o "-p $port -c listen_addresses=127.0.0.1 \
        -k $TEST_SERVERS_DIR -c fsync=off -c max_connections=500" >/dev/null \
        || { cat "$TEST_SERVERS_DIR/postgres.log" >&2; return 1; }
    export FLOTILLA_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port"
    echo "== started a throwaway PostgreSQL at $FLOTILLA_TEST_POSTGRES"
}

start_nats() {
    bash scripts/deps.sh nats
    servers_dir
    local port; port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$TEST_SERVERS_DIR/nats" \
        >"$TEST_SERVERS_DIR/nats.log" 2>&1 &
    TEST_SERVERS_NATS_PID=$!
    wait_for 15 nats_with_jetstream 127.0.0.1 "$port" \
        || { cat "$TEST_SERVERS_DIR/nats.log" >&2; return 1; }
    export FLOTILLA_TEST_NATS_URL="nats://127.0.0.1:$port"
    echo "== started a throwaway NATS (JetStream) at $FLOTILLA_TEST_NATS_URL"
}

ensure_test_servers() {
    export FLOTILLA_TEST_POSTGRES="${FLOTILLA_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
    export FLOTILLA_TEST_NATS_URL="${FLOTILLA_TEST_NATS_URL:-nats://127.0.0.1:4222}"
    if tcp_open "$(url_host "$FLOTILLA_TEST_POSTGRES")" "$(url_port "$FLOTILLA_TEST_POSTGRES")"; then
        echo "== using PostgreSQL at $FLOTILLA_TEST_POSTGRES"
    else
        echo "== no PostgreSQL at $FLOTILLA_TEST_POSTGRES"
        start_postgres
    fi
    if nats_with_jetstream "$(url_host "$FLOTILLA_TEST_NATS_URL")" "$(url_port "$FLOTILLA_TEST_NATS_URL")"; then
        echo "== using NATS at $FLOTILLA_TEST_NATS_URL"
    else
        echo "== no NATS with JetStream at $FLOTILLA_TEST_NATS_URL"
        start_nats
    fi
}
