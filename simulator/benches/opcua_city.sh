#!/usr/bin/env bash
# CPU and RSS of one shuzhuan-sim process serving N plants' CNC machines
# over OPC UA (one server per plant, one machine each: 19 nodes per plant
# with its Machines folder) while an asyncua poller reads every machine's
# eight variables once a second, one session per machine; then the same
# poller against a baseline measured in the same run: one asyncua server
# (Python) holding the same N machines with the same BrowseNames. The
# simulator runs twice: with each server's full namespace 0 (default) and
# with --opcua-lean-ns0.
# Usage: simulator/benches/opcua_city.sh [plants=100] [seconds=60]
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

# measure PID LABEL: poll for SECS seconds, CPU over the middle SECS-10 s.
measure() {
  local pid=$1 label=$2
  .venv/bin/python simulator/benches/opcua_poll.py "$work/targets.json" "$SECS" >"$work/poll-$label.log" &
  poller=$!
  for _ in $(seq 1 600); do grep -q '^polling' "$work/poll-$label.log" && break; sleep 0.5; done
  sleep 5
  local t0 t1 s0 s1 rss hwm
  t0=$(cpu_ticks "$pid"); s0=$(date +%s.%N)
  sleep $((SECS - 10))
  t1=$(cpu_ticks "$pid"); s1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  wait "$poller"
  poller=
  local cpu
  cpu=$(echo "scale=2; 100*($t1-$t0)/$tck/($s1-$s0)" | bc)
  echo "$label: $(head -1 "$work/poll-$label.log"); $(tail -1 "$work/poll-$label.log"); cpu=${cpu}% rss=${rss}kB peak=${hwm}kB"
  eval "cpu_$label=$cpu rss_$label=$rss"
}

# The simulator: N plants, each one CNC lathe on its own OPC UA server.
mkdir -p "$work/plants"
args=()
for i in $(seq 1 "$N"); do
  cat >"$work/plants/p$i.toml" <<TOML
[plant]
id = "bench-$i"
name = "Bench plant $i"
credit_code = "91411700MA00000019"
county = "yicheng"
chain = "equipment"
seed = $i

[[links]]
id = "cnc-ua"
kind = "opcua"

[[devices]]
id = "cnc-1"
name = "CNC lathe"
kind = "cnc_machine_tool"
production = true
declared_digital = true
declared_networked = true
declared_nc = true
link = "cnc-ua"
profile = "opcua-machinetool-cnc"
TOML
  args+=(--config "$work/plants/p$i.toml")
done
# run_sim LABEL [ARGS...]: start the simulator, measure it, stop it.
run_sim() {
  local label=$1; shift
  local start
  rm -rf "$work/out"
  start=$(date +%s.%N)
  target/release/shuzhuan-sim "${args[@]}" "$@" --out "$work/out" --time-scale 60 2>"$work/sim-$label.log" &
  sim=$!
  for _ in $(seq 1 1200); do [ -f "$work/out/ports.json" ] && break; sleep 0.25; done
  echo "$label: simulator up in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s (first start makes each server's RSA key)"
  .venv/bin/python -c '
import json, sys
ports = json.load(open(sys.argv[1]))
json.dump([{"url": v["links"]["cnc-ua"], "machine": "cnc-1"} for k, v in ports.items() if k != "control"], open(sys.argv[2], "w"))
' "$work/out/ports.json" "$work/targets.json"
  measure "$sim" "$label"
  kill "$sim"; wait "$sim" 2>/dev/null || true; sim=
}
# Before and after in the same run: the full namespace 0 per server (the
# default), then --opcua-lean-ns0 (simulator/src/opcua/lean.rs).
run_sim sim
run_sim lean --opcua-lean-ns0

# The baseline: one asyncua server with the same N machines.
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/python simulator/benches/opcua_peer_city.py --port "$port" --machines "$N" --targets "$work/targets.json" >"$work/peer.log" 2>&1 &
peer=$!
for _ in $(seq 1 600); do grep -q READY "$work/peer.log" && break; sleep 0.5; done
measure "$peer" peer
echo "plants=$N sim cpu=${cpu_sim}% rss=${rss_sim}kB | lean ns0 cpu=${cpu_lean}% rss=${rss_lean}kB | asyncua peer cpu=${cpu_peer}% rss=${rss_peer}kB | cpu ratio peer/sim=$(echo "scale=2; $cpu_peer/$cpu_sim" | bc) peer/lean=$(echo "scale=2; $cpu_peer/$cpu_lean" | bc) | rss lean/full=$(echo "scale=3; $rss_lean/$rss_sim" | bc) peer/lean=$(echo "scale=3; $rss_peer/$rss_lean" | bc)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
