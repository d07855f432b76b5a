# Sourced by the benchmark scripts (bench.sh, bench-edge.sh, bench-search.sh, bench-gateway.sh):
# the helpers each of them needs, written once.

# A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers 2xx, for up to SECONDS (30), or until the process $WAIT_PID (if set)
# has exited; then prints the files named by $WAIT_LOGS (if any) and exits.
wait_ok() { # url [seconds]
    local deadline=$(( $(date +%s) + ${2:-30} ))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ] || { [ -n "${WAIT_PID:-}" ] && ! kill -0 "$WAIT_PID" 2>/dev/null; }; then
            echo "timeout waiting for $1${WAIT_PID:+ (or process $WAIT_PID exited)}" >&2
            # shellcheck disable=SC2086 # a list of paths, globs allowed
            [ -n "${WAIT_LOGS:-}" ] && cat $WAIT_LOGS >&2 2>/dev/null
            exit 1
        fi
        sleep 0.05
    done
}

# The median of space-separated numbers.
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wrk's latency text (1.23ms, 850.00us, 1.02s) in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "0" }
    }'
}

# With RESULTS set (scripts/bench.sh): appends one JSON line to $RESULTS/FILE. Arguments are
# NAME=VALUE pairs; a VALUE that reads as a number is written as one, anything else as a string.
record() { # file name=value...
    [ -n "${RESULTS:-}" ] || return 0
    local file=$1; shift
    mkdir -p "$RESULTS"
    python3 - "$@" >>"$RESULTS/$file" <<'PY'
import json, sys
row = {}
for arg in sys.argv[1:]:
    name, _, value = arg.partition("=")
    try:
        row[name] = int(value)
    except ValueError:
        try:
            row[name] = float(value)
        except ValueError:
            row[name] = value
print(json.dumps(row))
PY
}
