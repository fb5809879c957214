#!/usr/bin/env bash
# Issue 3's performance criterion: ONE shuzhuan-sim process serving a
# generated city of N plants over Modbus TCP and OPC UA, polled at 1 s by the
# real agent (release `shuzhuan-agent run`); CPU and RSS of the simulator.
#
# The city: `shuzhuan-sim --plants N --seed SEED --machines MACHINES
# --cnc-opcua --time-scale 1`: every plant has one Modbus TCP listener (PLC
# machines and two meters) and, when it has a digitized CNC machine, one OPC
# UA server (OPC UA for Machine Tools names). Time scale 1, so the agent's
# 1,000 ms poll interval is 1 s of wall time. MACHINES=12-24 (default) sizes
# the city near the issue's estimate (about 5,000 registers, 2,000 nodes);
# MACHINES=3-8 is the generator's default mix (about half of that).
#
# The agent: the per-plant configs the simulator writes (OUT/agents/*.toml)
# merged into ONE agent config (simulator/benches/city_agent_config.py; ids
# prefixed with the plant), so one agent process opens the same connections
# (one TCP connection per plant's Modbus link, one session per plant's OPC UA
# server) and sends the same requests as 100 per-plant agents would, without
# 100 agent processes (~35 MB each) crowding the 2 cores being measured.
# OPC UA links use mode = MODE (default `poll`: one Read per CNC machine per
# second; `subscribe` is the agent's default at scale 1). No aggregator: the
# agent windows and spools, shipping is not part of the simulator's load.
#
# Baseline in the same run: the same simulator process idle (no client) for
# the same span before the agent starts. Then the agent polls: after a
# warm-up, the simulator's CPU (utime+stime) and RSS (sampled each second)
# over SPAN seconds, and the agent's /metrics before and after (samples per
# device, Modbus and OPC UA requests, read errors) to show it kept the 1 s
# cadence.
#
# Usage: simulator/benches/city_agent.sh [plants=100] [span_s=60]
# Env: SEED=1 MACHINES=12-24 MODE=poll WARM=30 (agent warm-up, s)
#      LEAN=1 (OPC UA servers with --opcua-lean-ns0)
#      SKIP_BUILD=1 (use existing release binaries) KEEP=1 (keep the temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
SPAN=${2:-60}
SEED=${SEED:-1}
MACHINES=${MACHINES:-12-24}
MODE=${MODE:-poll}
WARM=${WARM:-30}
PY=.venv/bin/python
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p shuzhuan-simulator -p shuzhuan-agent
SIM=${SIM_BIN:-target/release/shuzhuan-sim}
AGENT=${AGENT_BIN:-target/release/shuzhuan-agent}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tck=$(getconf CLK_TCK)
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# measure SECONDS PID...: per PID "cpu_pct rss_avg_kb rss_max_kb" (CPU from
# utime+stime over the span, RSS sampled once a second).
measure() {
    local secs=$1; shift
    local -A t0 sum max
    local p s0 s1 r
    for p in "$@"; do t0[$p]=$(awk '{print $14+$15}' "/proc/$p/stat"); sum[$p]=0; max[$p]=0; done
    s0=$(date +%s.%N)
    for _ in $(seq 1 "$secs"); do
        sleep 1
        for p in "$@"; do
            r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")
            sum[$p]=$((sum[$p] + r)); [ "$r" -gt "${max[$p]}" ] && max[$p]=$r
        done
    done
    s1=$(date +%s.%N)
    for p in "$@"; do
        echo "$(echo "scale=2; 100*($(awk '{print $14+$15}' "/proc/$p/stat")-${t0[$p]})/$tck/($s1-$s0)" | bc) $((sum[$p] / secs)) ${max[$p]}"
    done
}

# --- the simulator -----------------------------------------------------------
start=$(date +%s.%N)
lean=(); [ -z "${LEAN:-}" ] || lean=(--opcua-lean-ns0)
"$SIM" --plants "$N" --seed "$SEED" --machines "$MACHINES" --cnc-opcua --time-scale 1 "${lean[@]}" \
    --out "$work/sim" 2>"$work/sim.log" &
sim=$!; pids+=("$sim")
for _ in $(seq 1 3000); do [ -f "$work/sim/ports.json" ] && break; sleep 0.2; done
[ -f "$work/sim/ports.json" ] || { tail "$work/sim.log"; exit 1; }
up=$(echo "$(date +%s.%N) - $start" | bc | cut -c1-5)

# What it serves: registers and tags from each served device's map, OPC UA
# nodes by browsing every server.
mport=$(free_port)
counts=$("$PY" simulator/benches/city_agent_config.py "$work/sim" "$work/agent.toml" "$work/agent-data" "127.0.0.1:$mport" "$MODE")
nodes=$("$PY" simulator/benches/opcua_count.py "$work/sim/ports.json" 2>"$work/count.err")
jq_() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
sleep 5

# --- baseline: the same process, idle -----------------------------------------
read -r icpu irss imax < <(measure "$SPAN" "$sim")

# --- the agent polls ----------------------------------------------------------
"$AGENT" check-config --config "$work/agent.toml" | tail -4
"$AGENT" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
agent=$!; pids+=("$agent")
sleep "$WARM"
kill -0 "$agent" || { tail -20 "$work/agent.log"; exit 1; }
curl -s "http://127.0.0.1:$mport/metrics" >"$work/m0.txt"
w0=$(date +%s.%N)
{ read -r cpu rss rmax; read -r acpu arss amax; } < <(measure "$SPAN" "$sim" "$agent")
w1=$(date +%s.%N)
curl -s "http://127.0.0.1:$mport/metrics" >"$work/m1.txt"
el=$(echo "$w1 - $w0" | bc)
rates=$("$PY" - "$work/agent.toml" "$work/m0.txt" "$work/m1.txt" "$el" <<'PY'
import re, sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb")); el = float(sys.argv[4])
kind = {l["id"]: l["kind"] for l in cfg["links"]}
proto = {d["id"]: ("opcua" if kind[d["link"]] == "opcua" else "modbus") for d in cfg["devices"] if "link" in d}
def parse(path):
    out = {}
    for line in open(path):
        m = re.match(r'^(\w+)(\{[^}]*\})? (\S+)$', line.strip())
        if m: out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out
a, b = parse(sys.argv[2]), parse(sys.argv[3])
d = lambda k: b.get(k, 0) - a.get(k, 0)
fam = lambda f: sum(d(k) for k in b if k[0] == f)
samples = {"modbus": 0, "opcua": 0}
for k in b:
    if k[0] == "shuzhuan_agent_samples_total":
        dev = re.search(r'device="([^"]*)"', k[1]).group(1)
        samples[proto.get(dev, "modbus")] += d(k)
n = {p: sum(1 for v in proto.values() if v == p) for p in samples}
print(f"samples/s modbus {samples['modbus']/el:.1f} of {n['modbus']} devices, opcua {samples['opcua']/el:.1f} of {n['opcua']} devices; "
      f"modbus requests/s {fam('shuzhuan_agent_modbus_requests_total')/el:.1f}, opcua requests/s {fam('shuzhuan_agent_opcua_requests_total')/el:.1f}; "
      f"read errors {fam('shuzhuan_agent_read_errors_total'):.0f}")
PY
)

echo "city: $N plants, seed $SEED, machines $MACHINES, lean ns0 ${LEAN:-no}, simulator up in $up s"
echo "served: modbus links $(jq_ "$counts" modbus_links), devices $(jq_ "$counts" modbus_devices), tags $(jq_ "$counts" modbus_tags), registers $(jq_ "$counts" registers); opcua servers $(jq_ "$nodes" servers), machines $(jq_ "$counts" opcua_devices), nodes $(jq_ "$nodes" nodes) ($(jq_ "$nodes" variables) variables); devices in inventory $(jq_ "$counts" devices)"
echo "agent (one process, OPC UA mode $MODE, warm-up $WARM s, span $el s): $rates"
echo "simulator idle:   cpu=${icpu}% of one core, rss avg=${irss} kB max=${imax} kB"
echo "simulator polled: cpu=${cpu}% of one core, rss avg=${rss} kB max=${rmax} kB, VmHWM=$(awk '/^VmHWM/ {print $2}' "/proc/$sim/status") kB"
echo "agent itself:     cpu=${acpu}% of one core, rss avg=${arss} kB max=${amax} kB"
ratio() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then echo "scale=$3; $1/$2" | bc; else echo "n/a"; fi; }
echo "ratio polled/idle: cpu $(ratio "$cpu" "$icpu" 2), rss $(ratio "$rss" "$irss" 3)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load at start $load0, at end $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
