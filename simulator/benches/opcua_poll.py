"""The OPC UA poller of simulator/benches/opcua_city.sh: one asyncua session
per (endpoint, machine) in targets.json, resolving the machine's eight
OPC 40501-1 variables by BrowseName and reading them in one Read request
once a second. Prints "polling N sessions, V values/s" once every session is
up, then "reads R, errors E, values V" at the end.

Usage: opcua_poll.py TARGETS.json SECONDS
"""

import asyncio
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests/peers/py"))
from asyncua import Client  # noqa: E402

from opcua_cnc_client import MACHINERY, MT, PATHS, SIM  # noqa: E402


async def session(url, machine):
    c = Client(url=url, timeout=10)
    await c.connect()
    ns = {None: 0}
    for uri in (MT, MACHINERY, SIM):
        ns[uri] = await c.get_namespace_index(uri)
    root = await c.nodes.objects.get_child([f"{ns[MACHINERY]}:Machines", f"{ns[SIM]}:{machine}"])
    nodes = [await root.get_child([f"{ns[u]}:{n}" for u, n in p]) for p in PATHS.values()]
    return c, nodes


async def poll(c, nodes, end, stats):
    nxt = time.monotonic()
    while time.monotonic() < end:
        try:
            vals = await c.read_values(nodes)
            stats["reads"] += 1
            stats["values"] += len(vals)
        except Exception:
            stats["errors"] += 1
        nxt += 1.0
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))


async def main():
    targets = json.load(open(sys.argv[1]))
    secs = float(sys.argv[2])
    sem = asyncio.Semaphore(10)

    async def open_one(t):
        async with sem:
            return await session(t["url"], t["machine"])

    sessions = await asyncio.gather(*(open_one(t) for t in targets))
    n = sum(len(ns) for _, ns in sessions)
    print(f"polling {len(sessions)} sessions, {n} values/s", flush=True)
    stats = {"reads": 0, "errors": 0, "values": 0}
    end = time.monotonic() + secs
    await asyncio.gather(*(poll(c, ns, end, stats) for c, ns in sessions))
    print(f"reads {stats['reads']}, errors {stats['errors']}, values {stats['values']}", flush=True)
    for c, _ in sessions:
        try:
            await asyncio.wait_for(c.disconnect(), 2)
        except Exception:
            pass


asyncio.run(main())
