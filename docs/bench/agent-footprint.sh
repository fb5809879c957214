#!/usr/bin/env bash
# The agent's footprint (issues 4 and 5): CPU and resident memory of the
# release `shuzhuan-agent run` while it polls 200 Modbus devices x 50
# registers at 1 s and 20 OPC UA servers x 100 monitored items on loopback,
# windows them, spools the reports and ships them to a running aggregator.
# Real time (clock scale 1); 60 s windows so a report is sealed, spooled and
# shipped during the measurement.
#
# Peers (not measured): one `shuzhuan-sim` process serving one generated
# plant: 10 Modbus TCP links x 20 unit ids (generic-plc map plus 45 custom
# registers per device: holding 0..49), 20 OPC UA servers with 12 or 13 CNC
# machines each (8 items per machine, 2000 items in all); one
# `shuzhuan-aggregator serve` with the plant's enterprise enrolled.
#
# Baseline in the same run: a minimal Python client (pymodbus async + asyncua)
# doing the same reads (one 50-register read per device per second) and the
# same 2000 subscriptions, without windows, spool or shipping. Measured after
# the agent has stopped, with the same peers still running.
#
# Usage: docs/bench/agent-footprint.sh [warmup_s=30] [span_s=120] [baseline_span_s=60]
# SKIP_BUILD=1 skips the cargo build; KEEP=1 keeps the temp dir; TAGS_IN_CONFIG=1
# gives the 45 extra registers as 9,000 `[[devices.tags]]` entries of the agent
# config (on generic-plc) instead of the bench-plc-50 profile; AGENT_BIN=path
# measures another agent binary; SMAPS_OUT=file saves the agent's /proc/PID/smaps
# at the end. The agent runs with its own malloc tuning
# (agent/src/malloc.rs) unless GLIBC_TUNABLES is set: `GLIBC_TUNABLES=
# docs/bench/agent-footprint.sh` measures it with glibc's defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
WARM=${1:-30}
SPAN=${2:-120}
BSPAN=${3:-60}
PY=.venv/bin/python
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p shuzhuan-agent -p shuzhuan-aggregator -p shuzhuan-simulator
AGENT=${AGENT_BIN:-target/release/shuzhuan-agent}
AGG=target/release/shuzhuan-aggregator
SIM=target/release/shuzhuan-sim
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CODE=91411721MA0000021Q   # config/examples/registry-enterprises.csv (xiping, equipment)

# --- profiles: the repository's plus bench-plc-50 ---------------------------
# generic-plc serves holding 0 (3 bits), 2-3 (u32), 4-5 (f32); bench-plc-50 adds
# 45 custom u16 registers (1 and 6..49): 50 tags in 50 holding registers.
mkdir -p "$work/profiles"
cp config/profiles/*.toml "$work/profiles/"
{
    sed -e 's/^id = "generic-plc"/id = "bench-plc-50"/' \
        -e '0,/^name = .*/s//name = "Generic PLC map plus 45 registers (footprint bench only)"/' config/profiles/generic-plc.toml
    for a in 1 $(seq 6 49); do
        printf '\n[[modbus]]\nname = "r%d"\nrole = "custom"\ntable = "holding"\naddress = %d\ntype = "u16"\n' "$a" "$a"
    done
} >"$work/profiles/bench-plc-50.toml"

# --- the plant ------------------------------------------------------------
"$PY" - "$work/plant.toml" "$CODE" <<'PY'
import os, sys
out, code = sys.argv[1], sys.argv[2]
inline = os.environ.get("TAGS_IN_CONFIG") == "1"
L = ['[plant]', 'id = "bench"', 'name = "Footprint bench plant"', f'credit_code = "{code}"',
     'county = "xiping"', 'chain = "equipment"', 'seed = 7', 'window_secs = 60', '',
     '[clock]', 'scale = 1.0', '']
for m in range(1, 11):
    L += ['[[links]]', f'id = "mb{m:02}"', 'kind = "modbus_tcp"', 'listen = "127.0.0.1:0"', '']
for u in range(1, 21):
    L += ['[[links]]', f'id = "ua{u:02}"', 'kind = "opcua"', 'listen = "127.0.0.1:0"', '']
for m in range(1, 11):
    for unit in range(1, 21):
        L += ['[[devices]]', f'id = "m{m:02}u{unit:02}"', f'name = "Press {m}-{unit}"', 'kind = "press"',
              'production = true', 'declared_digital = true', 'declared_networked = true',
              f'link = "mb{m:02}"', f'unit = {unit}', f'profile = "{"generic-plc" if inline else "bench-plc-50"}"', '']
        if inline:  # the same 45 extra registers as per-device [[devices.tags]]
            for a in [1] + list(range(6, 50)):
                L += ['[[devices.tags]]', f'name = "r{a}"', 'role = "custom"', 'table = "holding"',
                      f'address = {a}', 'type = "u16"', '']
for u in range(1, 21):
    for k in range(1, 13 + (u > 10)):  # 10 servers x 12 + 10 x 13 machines = 250 x 8 = 2000 items
        L += ['[[devices]]', f'id = "ua{u:02}c{k:02}"', f'name = "CNC {u}-{k}"', 'kind = "cnc_machine_tool"',
              'production = true', 'declared_digital = true', 'declared_networked = true', 'declared_nc = true',
              f'link = "ua{u:02}"', 'profile = "opcua-machinetool-cnc"', '']
open(out, "w").write("\n".join(L))
PY

# --- peers: simulator and aggregator (not measured) -------------------------
"$SIM" --config "$work/plant.toml" --profiles "$work/profiles" --out "$work/sim" >"$work/sim.log" 2>&1 &
sim=$!; pids+=("$sim")
for _ in $(seq 1 300); do [ -f "$work/sim/ports.json" ] && break; sleep 0.1; done
[ -f "$work/sim/ports.json" ] || { cat "$work/sim.log"; exit 1; }

aport=$(free_port)
mkdir -p "$work/agg"
cat >"$work/agg/aggregator.toml" <<EOF
[server]
listen = "127.0.0.1:$aport"
[store]
path = "$work/agg/agg.sqlite"
[city]
reference_dir = "$PWD/config"
EOF
RUST_LOG=warn "$AGG" registry export --config "$work/agg/aggregator.toml" --table enterprises --out "$work/agg/empty.csv" >/dev/null
sqlite3 "$work/agg/agg.sqlite" \
    "INSERT INTO counties VALUES ('xiping','西平县','Xiping','county',NULL);
     INSERT INTO chains VALUES ('equipment','装备制造','Equipment',NULL,'discrete');"
{ head -1 config/examples/registry-enterprises.csv; grep "^$CODE," config/examples/registry-enterprises.csv; } >"$work/agg/ent.csv"
RUST_LOG=warn "$AGG" registry import --config "$work/agg/aggregator.toml" --enterprises "$work/agg/ent.csv" >/dev/null
token=$(RUST_LOG=warn "$AGG" token create --enterprise "$CODE" --config "$work/agg/aggregator.toml" 2>/dev/null | tail -1)
RUST_LOG=warn "$AGG" serve --config "$work/agg/aggregator.toml" >"$work/agg.log" 2>&1 &
agg=$!; pids+=("$agg")
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$aport/" && break; sleep 0.1; done

# --- the agent (measured) ----------------------------------------------------
mport=$(free_port)
cfg="$work/agent.toml"
sed -e "s/^listen = \"127.0.0.1:0\"/listen = \"127.0.0.1:$mport\"/" \
    -e "s|^window_secs = 60|window_secs = 60\nprofiles_dir = \"$work/profiles\"|" "$work/sim/agents/bench.toml" >"$cfg"
printf '\n[aggregator]\nurl = "http://127.0.0.1:%s"\n' "$aport" >>"$cfg"
"$AGENT" check-config --config "$cfg" | tail -3
"$AGENT" enroll --config "$cfg" --token "$token" >"$work/enroll.log" 2>&1 || { cat "$work/enroll.log"; exit 1; }
"$AGENT" run --config "$cfg" >"$work/agent.log" 2>&1 &
agent=$!; pids+=("$agent")

metric() { # sum of a metric family (all label sets) at /metrics
    curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1==m || index($1, m"{")==1 {s+=$2} END {printf "%d\n", s}'
}
tck=$(getconf CLK_TCK)
# measure PID SECONDS: prints "cpu_pct rss_avg_kb rss_max_kb hwm_kb" (CPU from
# utime+stime, RSS sampled once a second from /proc/PID/status).
measure() {
    local pid=$1 secs=$2 t0 t1 s0 s1 n=0 sum=0 max=0 r
    t0=$(awk '{print $14+$15}' "/proc/$pid/stat"); s0=$(date +%s.%N)
    for _ in $(seq 1 "$secs"); do
        sleep 1
        r=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        n=$((n + 1)); sum=$((sum + r)); [ "$r" -gt "$max" ] && max=$r
    done
    t1=$(awk '{print $14+$15}' "/proc/$pid/stat"); s1=$(date +%s.%N)
    echo "$(echo "scale=2; 100*($t1-$t0)/$tck/($s1-$s0)" | bc) $((sum / n)) $max $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")"
}

sleep "$WARM"
kill -0 "$agent" || { tail -20 "$work/agent.log"; exit 1; }
m0=$(metric shuzhuan_agent_samples_total); q0=$(metric shuzhuan_agent_modbus_requests_total)
o0=$(metric shuzhuan_agent_opcua_requests_total); e0=$(metric shuzhuan_agent_read_errors_total)
w0=$(date +%s.%N)
read -r cpu rss_avg rss_max hwm < <(measure "$agent" "$SPAN")
w1=$(date +%s.%N)
m1=$(metric shuzhuan_agent_samples_total); q1=$(metric shuzhuan_agent_modbus_requests_total)
o1=$(metric shuzhuan_agent_opcua_requests_total); e1=$(metric shuzhuan_agent_read_errors_total)
sealed=$(metric shuzhuan_agent_reports_sealed_total); shipped=$(metric shuzhuan_agent_reports_shipped_total)
# Resident memory split at the end: anonymous (heap, stacks) and file-backed (the binary's pages).
split=$(awk '/^RssAnon|^RssFile/ {printf "%s %s kB ", $1, $2}' "/proc/$agent/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$agent/status")
[ -z "${SMAPS_OUT:-}" ] || cp "/proc/$agent/smaps" "$SMAPS_OUT"
# glibc cuts GLIBC_TUNABLES in the process's environ to its first entry:
# the agent's own tuning (agent/src/malloc.rs) starts with arena_max=1.
tunables=$(tr '\0' '\n' <"/proc/$agent/environ" | sed -n 's/^GLIBC_TUNABLES=//p')
case $tunables in
    glibc.malloc.arena_max=1*) tuning="on (agent/src/malloc.rs)" ;;
    *) tuning="off (GLIBC_TUNABLES=$tunables)" ;;
esac
devices=$(grep -c '^\[\[devices\]\]' "$cfg")
el=$(echo "$w1-$w0" | bc)
expected=$(echo "$devices*$el/1" | bc)
kill -TERM "$agent"; wait "$agent" || true
stored=$(sqlite3 "$work/agg/agg.sqlite" "SELECT count(*) FROM reports" 2>/dev/null || echo "?")

# --- baseline: minimal Python poller, same reads and subscriptions -----------
"$PY" - "$work/sim/ports.json" "$BSPAN" >"$work/base.out" 2>"$work/base.err" <<'PY' &
import asyncio, json, sys, time
from pymodbus.client import AsyncModbusTcpClient
from asyncua import Client, ua
ports = json.load(open(sys.argv[1]))["bench"]["links"]
span = float(sys.argv[2])
PATHS = ["Monitoring.MachineTool.OperationMode", "Monitoring.Channel1.ChannelState",
         "Monitoring.Channel1.ChannelMode", "Monitoring.Spindle1.IsRotating",
         "Production.ActiveProgram.State.CurrentState", "Production.Statistics.PartsProducedInLifetime",
         "MachineryItemState.CurrentState", "Monitoring.MachineTool.Power"]
stats = {"reads": 0, "errors": 0, "changes": 0}
class Handler:
    def datachange_notification(self, node, val, data):
        stats["changes"] += 1
async def modbus(link):
    host, port = ports[link].rsplit(":", 1)
    c = AsyncModbusTcpClient(host, port=int(port)); await c.connect()
    while True:
        t = time.monotonic()
        for unit in range(1, 21):
            r = await c.read_holding_registers(0, count=50, device_id=unit)
            stats["reads"] += 1; stats["errors"] += r.isError()
        await asyncio.sleep(max(0, 1 - (time.monotonic() - t)))
async def opcua(link):
    u = int(link[2:]); c = Client(ports[link]); await c.connect()
    ns = await c.get_namespace_index("urn:shuzhuan:simulator:cnc")
    sub = await c.create_subscription(1000, Handler())
    nodes = [c.get_node(f"ns={ns};s={link}c{k:02}.{p}") for k in range(1, 13 + (u > 10)) for p in PATHS]
    await sub.subscribe_data_change(nodes)
    await asyncio.sleep(1e9)
async def main():
    tasks = [asyncio.create_task(modbus(f"mb{m:02}")) for m in range(1, 11)]
    tasks += [asyncio.create_task(opcua(f"ua{u:02}")) for u in range(1, 21)]
    print("READY", flush=True)
    await asyncio.sleep(span)
    print(json.dumps(stats), flush=True)
    import os; os._exit(0)
asyncio.run(main())
PY
base=$!; pids+=("$base")
for _ in $(seq 1 300); do grep -q READY "$work/base.out" && break; sleep 0.1; done
sleep 10
read -r bcpu brss_avg brss_max bhwm < <(measure "$base" "$((BSPAN - 15))")
wait "$base" || true
bstats=$(tail -1 "$work/base.out")

echo "agent: devices=$devices (200 Modbus x 50 registers, 250 CNC x 8 OPC UA items), warm-up ${WARM} s, span ${el} s"
echo "agent: cpu=${cpu}% of one core, rss avg=${rss_avg} kB max=${rss_max} kB, VmHWM=${hwm} kB"
echo "agent: at the end ${split}threads=$threads, malloc tuning $tuning"
echo "agent: samples received $((m1 - m0)) of ~$expected expected ($devices devices x ${el} s), read errors $((e1 - e0))"
echo "agent: modbus requests/s $(echo "scale=1; ($q1-$q0)/$el" | bc), opcua requests/s $(echo "scale=1; ($o1-$o0)/$el" | bc)"
echo "agent: reports sealed=$sealed shipped=$shipped, stored by the aggregator=$stored"
echo "baseline (python pymodbus+asyncua, no windows/spool/shipping): cpu=${bcpu}% rss avg=${brss_avg} kB max=${brss_max} kB, $bstats over ${BSPAN} s"
echo "ratio agent/baseline: cpu $(echo "scale=2; $cpu/$bcpu" | bc), rss $(echo "scale=2; $rss_avg/$brss_avg" | bc)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
