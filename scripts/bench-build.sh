#!/usr/bin/env bash
# How long a newcomer's first build takes (issue 10: `cargo run --release` on a fresh clone,
# target ≤ 5 min on the standard 2-core machine): a build of the default binary into an EMPTY
# target dir, timed (wall and CPU), with cargo's --timings report; prints a table and the ten
# slowest units. Downloading crates is not measured (run `cargo fetch` first).
#
#   bash scripts/bench-build.sh                        # cargo build --release -p flotilla
#   bash scripts/bench-build.sh --profile dist         # what benchmarks and images build
#   KEEP=1 bash scripts/bench-build.sh                 # keep the target dir afterwards
#   COLD_DIR=/elsewhere bash scripts/bench-build.sh    # build there (emptied first; default
#                                                      # target/cold-build, deleted afterwards)
#
# The machine should be quiet: wall time follows the load (printed before and after); CPU time
# (user + sys) hardly does, so compare that between runs on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE_ARGS=("$@")
[[ ${#PROFILE_ARGS[@]} -eq 0 ]] && PROFILE_ARGS=(--release)
DIR=${COLD_DIR:-target/cold-build}
rm -rf "$DIR" && mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
cleanup() { if [[ -n ${KEEP:-} ]]; then echo "target dir kept: $DIR"; else rm -rf "$DIR"; fi; }
trap cleanup EXIT

cargo fetch --locked --quiet
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
CARGO_TARGET_DIR=$DIR CARGO_INCREMENTAL=0 /usr/bin/time -f '%e %U %S %M' -o "$DIR/time" \
    cargo build --locked -p flotilla --timings "${PROFILE_ARGS[@]}" --quiet
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
read -r wall user sys maxrss <"$DIR/time"
report=$(ls "$DIR"/cargo-timings/cargo-timing-*.html | head -1)
cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", u + s }')
mmss() { printf '%dm %02ds' "$(( ${1%.*} / 60 ))" "$(( ${1%.*} % 60 ))"; }

echo
echo "cargo build ${PROFILE_ARGS[*]} -p flotilla: empty target dir, $(nproc) cores, commit $(git rev-parse --short HEAD)"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| wall | $(mmss "$wall") |"
echo "| CPU (user + sys) | $(mmss "$cpu") |"
echo "| load average (1, 5, 15 min) before | $load_before |"
echo "| load average after | $load_after |"
echo "| largest process (max RSS) | $(( maxrss / 1024 )) MiB |"
# The report's UNIT_DATA is a JSON array of every unit compiled (or build script run).
python3 - "$report" <<'EOF'
import json, sys
html = open(sys.argv[1]).read()
start = html.index("const UNIT_DATA = ") + len("const UNIT_DATA = ")
units = json.JSONDecoder().raw_decode(html[start:])[0]
print(f"| units | {len(units)} |")
print("\nTen slowest units (cargo build --timings):\n")
print("| unit | s |")
print("|---|---|")
for u in sorted(units, key=lambda u: -u["duration"])[:10]:
    what = u["target"].strip().replace('"', "")
    print(f"| {u['name']} v{u['version']}{' ' + what if what else ''} | {u['duration']:.1f} |")
EOF
