"""An asyncua client reading the simulator's CNC server the way a third
party would: BrowseNames qualified by namespace URI (never by a fixed
index), one JSON line of values, then one JSON line per data change of
`PartsProducedInLifetime` for `--watch` seconds.

Usage: opcua_cnc_client.py --url opc.tcp://127.0.0.1:PORT/ --machine cnc-01
       [--security none|sign|encrypt --pki DIR] [--watch SECONDS]
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from asyncua import Client

from opcua_common import MODES, own_certificate, policy

MT = "http://opcfoundation.org/UA/MachineTool/"
MACHINERY = "http://opcfoundation.org/UA/Machinery/"
SIM = "urn:shuzhuan:simulator:cnc"

# tag -> path below the machine object, each element (namespace uri, name); None is ns 0.
PATHS = {
    "operation_mode": [(MT, "Monitoring"), (MT, "MachineTool"), (MT, "OperationMode")],
    "power_kw": [(MT, "Monitoring"), (MT, "MachineTool"), (SIM, "Power")],
    "channel_state": [(MT, "Monitoring"), (SIM, "Channel1"), (MT, "ChannelState")],
    "channel_mode": [(MT, "Monitoring"), (SIM, "Channel1"), (MT, "ChannelMode")],
    "spindle_rotating": [(MT, "Monitoring"), (SIM, "Spindle1"), (MT, "IsRotating")],
    "program_state": [(MT, "Production"), (MT, "ActiveProgram"), (MT, "State"), (None, "CurrentState")],
    "parts_produced": [(MT, "Production"), (MT, "Statistics"), (MT, "PartsProducedInLifetime")],
    "machinery_item_state": [(MACHINERY, "MachineryItemState"), (None, "CurrentState")],
}


def plain(v):
    if hasattr(v, "Text"):
        return v.Text
    return v


class Changes:
    def datachange_notification(self, node, val, data):
        print(json.dumps({"parts_produced": plain(val)}), flush=True)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--security", default="none", choices=list(MODES))
    ap.add_argument("--pki", type=Path)
    ap.add_argument("--watch", type=float, default=0.0)
    a = ap.parse_args()

    client = Client(url=a.url, timeout=5)
    app_uri = "urn:shuzhuan:tests:asyncua-client"
    client.application_uri = app_uri
    if MODES[a.security] is not None:
        cert, key = await own_certificate(a.pki, app_uri, server=False)
        await client.set_security(policy(), str(cert), str(key), mode=MODES[a.security])
    async with client:
        ns = {None: 0}
        for uri in (MT, MACHINERY, SIM):
            ns[uri] = await client.get_namespace_index(uri)
        machine = await client.nodes.objects.get_child(
            [f"{ns[MACHINERY]}:Machines", f"{ns[SIM]}:{a.machine}"]
        )
        values, nodes = {}, {}
        for tag, path in PATHS.items():
            node = await machine.get_child([f"{ns[u]}:{n}" for u, n in path])
            nodes[tag] = node
            values[tag] = plain(await node.read_value())
        print(json.dumps(values), flush=True)
        if a.watch > 0:
            sub = await client.create_subscription(100, Changes())
            await sub.subscribe_data_change(nodes["parts_produced"])
            await asyncio.sleep(a.watch)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # a clear line for the Rust test's assertion message
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)
