#!/usr/bin/env bash
# The newcomer's path, timed: a clean release build of the aggregator (the
# demo binary), then the demo with its defaults until the dashboard's
# overview shows a measured rate, then until the simulated month is full.
# Usage: bash docs/bench/demo-newcomer.sh [TARGET_DIR]   (default: a fresh temp dir)
# Prints one line per phase; the results go to docs/bench/demo.md by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${1:-$(mktemp -d /tmp/sz-clean-build.XXXX)}
port=${SZ_DEMO_PORT:-18090}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
# CPU time of the build (user + sys of cargo and every compiler it ran): less
# sensitive than the wall time to whatever else the machine is doing.
TIMEFORMAT='%U %S'
if ! { time CARGO_TARGET_DIR=$target cargo build --release --locked -p shuzhuan-aggregator >"$target.build.log" 2>&1; } 2>"$target.cpu"; then
  echo "build failed: see $target.build.log"; tail -20 "$target.build.log"; exit 1
fi
t1=$(date +%s.%N)
echo "clean release build: $(echo "$t1 - $t0" | bc) s (target $target); CPU $(awk '{printf "%.1f s user + %.1f s sys", $1, $2}' "$target.cpu")"
data=$(mktemp -d /tmp/sz-demo.XXXX)
"$target/release/shuzhuan-aggregator" demo --listen 127.0.0.1:$port --data-dir "$data" --run-for 330 >"$data/out.txt" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
t2=$(date +%s.%N)
tok=""
while [ -z "$tok" ]; do
  sleep 0.2
  tok=$(awk '/bureau token/{print $3}' "$data/out.txt" 2>/dev/null || true)
done
t3=$(date +%s.%N)
echo "demo banner (city generated, plants and agents started): $(echo "$t3 - $t2" | bc) s"
while :; do
  v=$(curl -s -H "Cookie: sz_token=$tok" "http://127.0.0.1:$port/" | grep -o 'data-key="city.digitization.measured.mean" data-value="[^"]*"' | sed 's/.*data-value="//; s/"//' || true)
  [ -n "$v" ] && break
  sleep 0.5
done
t4=$(date +%s.%N)
echo "overview shows a measured digitization rate ($v): $(echo "$t4 - $t2" | bc) s after start"
echo "total from clean clone to populated page: $(echo "$t4 - $t0" | bc) s"
wait $pid || true
t5=$(date +%s.%N)
echo "demo ran $(echo "$t5 - $t2" | bc) s (a simulated month is 300 s at the default 8640x)"
grep '^samples:' "$data/out.txt" || true
rm -rf "$data"
