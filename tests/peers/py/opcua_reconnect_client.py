"""An asyncua client that keeps reading one CNC machine of the simulator and
reconnects when its session drops, as a gateway would (security None).

Prints JSON lines: {"event": "values", "session": k, "node_ids": {...},
"values": {...}} after each successful connect (k counts sessions from 1),
{"event": "dropped", "error": "..."} when a read fails, and keeps trying to
connect every 0.2 s until --seconds have passed since the start.

Usage: opcua_reconnect_client.py --url opc.tcp://127.0.0.1:PORT/ --machine cnc-1
       [--seconds 30] [--period 0.2]
"""

import argparse
import asyncio
import json
import sys
import time

from asyncua import Client

from opcua_cnc_client import MACHINERY, MT, PATHS, SIM, plain


def line(**kw):
    print(json.dumps(kw), flush=True)


async def connect(url, machine):
    client = Client(url=url, timeout=2)
    await client.connect()
    ns = {None: 0}
    for uri in (MT, MACHINERY, SIM):
        ns[uri] = await client.get_namespace_index(uri)
    root = await client.nodes.objects.get_child([f"{ns[MACHINERY]}:Machines", f"{ns[SIM]}:{machine}"])
    nodes = {}
    for tag, path in PATHS.items():
        nodes[tag] = await root.get_child([f"{ns[u]}:{n}" for u, n in path])
    return client, nodes


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--period", type=float, default=0.2)
    a = ap.parse_args()
    end = time.monotonic() + a.seconds
    session = 0
    while time.monotonic() < end:
        try:
            client, nodes = await connect(a.url, a.machine)
        except Exception:
            await asyncio.sleep(a.period)
            continue
        session += 1
        try:
            values = {t: plain(await n.read_value()) for t, n in nodes.items()}
            line(
                event="values",
                session=session,
                node_ids={t: n.nodeid.to_string() for t, n in nodes.items()},
                values=values,
            )
            while time.monotonic() < end:
                await asyncio.sleep(a.period)
                for n in nodes.values():
                    await n.read_value()
        except Exception as e:
            line(event="dropped", session=session, error=f"{type(e).__name__}: {e}")
        try:
            await asyncio.wait_for(client.disconnect(), 1)
        except Exception:
            pass


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        line(event="error", error=f"{type(e).__name__}: {e}")
        sys.exit(1)
