#!/usr/bin/env bash
# CPU and RSS of one shuzhuan-sim process serving a generated city
# (`--plants N --seed 1`) while a pymodbus client reads every tag of every
# served device once a second.
# Usage: simulator/benches/generated_city.sh [plants=100] [seconds=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
SECS=${2:-60}
work=$(mktemp -d)
trap 'kill "$sim" "$poller" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p shuzhuan-simulator
target/release/shuzhuan-sim --plants "$N" --seed 1 --out "$work/out" --time-scale 60 2>"$work/sim.log" &
sim=$!
for _ in $(seq 1 100); do [ -f "$work/out/ports.json" ] && break; sleep 0.1; done
.venv/bin/python - "$work/out" "$SECS" <<'PY' &
import json, sys, time, tomllib, pathlib
from pymodbus.client import ModbusTcpClient
out = pathlib.Path(sys.argv[1]); ports = json.load(open(out / "ports.json"))
profiles = {p.stem: tomllib.load(open(p, "rb")) for p in pathlib.Path("config/profiles").glob("*.toml")}
jobs = []
for f in sorted((out / "plants").glob("*.toml")):
    plant = tomllib.load(open(f, "rb"))
    host, port = ports[plant["plant"]["id"]]["links"]["plc"].rsplit(":", 1)
    c = ModbusTcpClient(host, port=int(port)); c.connect()
    for d in plant["devices"]:
        if "link" not in d: continue
        for t in profiles[d["profile"]]["modbus"]:
            n = 1 if t["type"] == "bit" else {"u32": 2, "f32": 2}.get(t["type"], 1)
            jobs.append((c, t["table"], d["unit"], t["address"], n))
regs = sum(j[4] for j in jobs)
print(f"polling {len(jobs)} tags, {regs} registers per second", flush=True)
end = time.time() + float(sys.argv[2]); errors = 0; reads = 0
while time.time() < end:
    t = time.time()
    for c, table, unit, addr, n in jobs:
        r = (c.read_holding_registers if table == "holding" else c.read_input_registers)(addr, count=n, device_id=unit)
        errors += r.isError(); reads += 1
    time.sleep(max(0, 1 - (time.time() - t)))
print(f"reads {reads}, errors {errors}", flush=True)
PY
poller=$!
sleep 5
t0=$(awk '{print $14+$15}' /proc/$sim/stat); s0=$(date +%s.%N)
sleep $((SECS - 10))
t1=$(awk '{print $14+$15}' /proc/$sim/stat); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$sim/status); hwm=$(awk '/VmHWM/ {print $2}' /proc/$sim/status)
tck=$(getconf CLK_TCK)
wait $poller
echo "plants=$N cpu=$(echo "scale=2; 100*($t1-$t0)/$tck/($s1-$s0)" | bc)% rss=${rss}kB peak=${hwm}kB"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
