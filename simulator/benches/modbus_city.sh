#!/usr/bin/env bash
# CPU and RSS of one shuzhuan-sim process serving N plants over Modbus TCP
# while a pymodbus client polls every served register block once a second.
# Plants are copies of config/plants/example.toml (its OPC UA link removed)
# with their own ids and seeds; the city generator is not written yet.
# Usage: simulator/benches/modbus_city.sh [plants=100] [seconds=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100}
SECS=${2:-60}
work=$(mktemp -d)
trap 'kill "$sim" "$poller" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p shuzhuan-simulator
args=()
for i in $(seq 1 "$N"); do
  # Drop the OPC UA link and re-home the CNC lathe as a non-digitized machine.
  python3 - "$i" config/plants/example.toml > "$work/p$i.toml" <<'PY'
import sys
i, text = sys.argv[1], open(sys.argv[2]).read()
text = text.replace('[[links]]\nid = "cnc-ua"\nkind = "opcua"\nlisten = "127.0.0.1:0"\n\n', "")
text = text.replace('link = "cnc-ua"\n', "").replace('profile = "opcua-machinetool-cnc"\n', "")
text = text.replace('id = "example-1"', f'id = "bench-{i}"').replace("seed = 42", f"seed = {i}")
print(text)
PY
  args+=(--config "$work/p$i.toml")
done
target/release/shuzhuan-sim "${args[@]}" --out "$work/out" --time-scale 60 2>"$work/sim.log" &
sim=$!
for _ in $(seq 1 100); do [ -f "$work/out/ports.json" ] && break; sleep 0.1; done
.venv/bin/python - "$work/out/ports.json" "$SECS" <<'PY' &
import json, sys, time
from pymodbus.client import ModbusTcpClient
ports = json.load(open(sys.argv[1]))
clients = []
for plant in ports.values():
    host, port = plant["links"]["plc-line"].rsplit(":", 1)
    c = ModbusTcpClient(host, port=int(port)); c.connect(); clients.append(c)
# Per plant: two PLCs (6 registers), SDM630 (power + 3 energies), ADL400 (power + 3 energies).
reads = [(3, 1, 0, 6), (3, 2, 0, 6), (4, 10, 0x34, 2), (4, 10, 0x48, 4), (4, 10, 0x156, 2),
         (3, 11, 0x81A, 2), (3, 11, 0x842, 2), (3, 11, 0x84C, 2), (3, 11, 0x856, 2)]
regs = sum(r[3] for r in reads) * len(clients)
print(f"polling {len(clients)} plants, {regs} registers per second", flush=True)
end = time.time() + float(sys.argv[2]); errors = 0; polls = 0
while time.time() < end:
    t = time.time()
    for c in clients:
        for fc, unit, addr, n in reads:
            r = (c.read_holding_registers if fc == 3 else c.read_input_registers)(addr, count=n, device_id=unit)
            errors += r.isError(); polls += 1
    time.sleep(max(0, 1 - (time.time() - t)))
print(f"reads {polls}, errors {errors}", flush=True)
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
