"""The Modbus poller of simulator/benches/generated_city.sh: a pymodbus
client per plant reading every tag of every served device once a second,
one read per tag. Plants come from OUT/plants/*.toml (the generated city),
addresses from PORTS.json (`{plant: {"links": {"plc": "ip:port"}}}`).
Prints "polling T tags, R registers per second" then "reads N, errors E".

Usage: modbus_poll.py OUT PORTS.json SECONDS
"""

import json
import pathlib
import sys
import time
import tomllib

from pymodbus.client import ModbusTcpClient


def width(tag):
    return {"u32": 2, "i32": 2, "f32": 2, "u64": 4, "i64": 4, "f64": 4}.get(tag["type"], 1)


def jobs_of(out, ports, connect=True):
    profiles = {p.stem: tomllib.load(open(p, "rb")) for p in pathlib.Path("config/profiles").glob("*.toml")}
    jobs = []
    for f in sorted((out / "plants").glob("*.toml")):
        plant = tomllib.load(open(f, "rb"))
        c = None
        if connect:
            host, port = ports[plant["plant"]["id"]]["links"]["plc"].rsplit(":", 1)
            c = ModbusTcpClient(host, port=int(port))
            c.connect()
        for d in plant["devices"]:
            if "link" not in d:
                continue
            for t in profiles[d["profile"]]["modbus"]:
                jobs.append((c, plant["plant"]["id"], t["table"], d["unit"], t["address"], width(t)))
    return jobs


def main():
    out, ports, secs = pathlib.Path(sys.argv[1]), json.load(open(sys.argv[2])), float(sys.argv[3])
    jobs = jobs_of(out, ports)
    print(f"polling {len(jobs)} tags, {sum(j[5] for j in jobs)} registers per second", flush=True)
    end = time.time() + secs
    errors = reads = 0
    while time.time() < end:
        t = time.time()
        for c, _, table, unit, addr, n in jobs:
            read = c.read_holding_registers if table == "holding" else c.read_input_registers
            r = read(addr, count=n, device_id=unit)
            errors += r.isError()
            reads += 1
        time.sleep(max(0, 1 - (time.time() - t)))
    print(f"reads {reads}, errors {errors}", flush=True)


if __name__ == "__main__":
    main()
