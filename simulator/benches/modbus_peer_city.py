"""The baseline of simulator/benches/generated_city.sh: pymodbus serving the
same generated city (one TCP server per plant, the same units and register
addresses as the simulator, from OUT/plants/*.toml and config/profiles) in
one asyncio process; fixed values (the simulator computes its values per
request, pymodbus only looks them up). Writes PORTS.json in
the simulator's shape, then prints READY.

Usage: modbus_peer_city.py OUT PORTS.json
"""

import asyncio
import json
import pathlib
import socket
import sys

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from modbus_poll import jobs_of  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def blocks(addrs):
    """SimData blocks covering the sorted addresses, one per contiguous run."""
    out, run = [], []
    for a in sorted(addrs):
        if run and a != run[-1] + 1:
            out.append(SimData(run[0], values=[1] * len(run), datatype=DataType.REGISTERS))
            run = []
        run.append(a)
    if run:
        out.append(SimData(run[0], values=[1] * len(run), datatype=DataType.REGISTERS))
    return out


async def main():
    out, ports_path = pathlib.Path(sys.argv[1]), sys.argv[2]
    layout = {}
    for _, plant, table, unit, addr, n in jobs_of(out, {}, connect=False):
        regs = layout.setdefault(plant, {}).setdefault(unit, {"holding": set(), "input": set()})[table]
        regs.update(range(addr, addr + n))
    servers, ports = [], {}
    for plant, units in layout.items():
        devices = []
        for unit, t in sorted(units.items()):
            bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
            devices.append(SimDevice(unit, simdata=(bits, bits, blocks(t["holding"]) or bits, blocks(t["input"]) or bits)))
        port = free_port()
        ports[plant] = {"links": {"plc": f"127.0.0.1:{port}"}}
        servers.append(ModbusTcpServer(devices, address=("127.0.0.1", port)))
    for s in servers:
        await s.listen()
    json.dump(ports, open(ports_path, "w"))
    print("READY", flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
