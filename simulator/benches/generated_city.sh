#!/usr/bin/env bash
# CPU and RSS of one shuzhuan-sim process serving a generated city
# (`--plants N --seed 1`) while a pymodbus client reads every tag of every
# served device once a second (simulator/benches/modbus_poll.py); then the
# same poller against a baseline measured in the same run: pymodbus serving
# the same plants, units and register addresses in one process
# (simulator/benches/modbus_peer_city.py).
# Usage: simulator/benches/generated_city.sh [plants=100] [seconds=60]
# SKIP_BUILD=1 uses the existing target/release/shuzhuan-sim.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
SECS=${2:-60}
work=$(mktemp -d)
sim=; peer=; poller=
trap 'for p in $sim $peer $poller; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p shuzhuan-simulator
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# measure PID LABEL PORTS: poll for SECS seconds, CPU over the middle SECS-10 s.
measure() {
  local pid=$1 label=$2 ports=$3
  .venv/bin/python simulator/benches/modbus_poll.py "$work/out" "$ports" "$SECS" >"$work/poll-$label.log" 2>&1 &
  poller=$!
  sleep 5
  local t0 t1 s0 s1 rss hwm cpu
  t0=$(cpu_ticks "$pid"); s0=$(date +%s.%N)
  sleep $((SECS - 10))
  t1=$(cpu_ticks "$pid"); s1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  wait "$poller"
  poller=
  cpu=$(echo "scale=2; 100*($t1-$t0)/$tck/($s1-$s0)" | bc)
  echo "$label: $(grep -m1 '^polling' "$work/poll-$label.log"); $(grep '^reads' "$work/poll-$label.log"); cpu=${cpu}% rss=${rss}kB peak=${hwm}kB"
  eval "cpu_$label=$cpu rss_$label=$rss"
}

target/release/shuzhuan-sim --plants "$N" --seed 1 --out "$work/out" --time-scale 60 2>"$work/sim.log" &
sim=$!
for _ in $(seq 1 100); do [ -f "$work/out/ports.json" ] && break; sleep 0.1; done
measure "$sim" sim "$work/out/ports.json"
kill "$sim"; wait "$sim" 2>/dev/null || true; sim=

.venv/bin/python simulator/benches/modbus_peer_city.py "$work/out" "$work/peer-ports.json" >"$work/peer.log" 2>&1 &
peer=$!
for _ in $(seq 1 600); do grep -q READY "$work/peer.log" && break; sleep 0.2; done
measure "$peer" peer "$work/peer-ports.json"
echo "plants=$N sim cpu=${cpu_sim}% rss=${rss_sim}kB | pymodbus peer cpu=${cpu_peer}% rss=${rss_peer}kB | cpu ratio peer/sim=$(echo "scale=1; $cpu_peer/$cpu_sim" | bc)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
