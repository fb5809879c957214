"""The baseline of simulator/benches/opcua_city.sh: one asyncua server
holding N CNC machines with the simulator's BrowseNames (OPC 40501-1 and
40001-1 names under Objects/Machines), each machine's part counter and power
changing once a second. Writes targets.json for opcua_poll.py, then prints
READY.

Usage: opcua_peer_city.py --port PORT --machines N --targets FILE
"""

import argparse
import asyncio
import json

from asyncua import Server, ua

MT = "http://opcfoundation.org/UA/MachineTool/"
MACHINERY = "http://opcfoundation.org/UA/Machinery/"
SIM = "urn:shuzhuan:simulator:cnc"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--machines", type=int, required=True)
    ap.add_argument("--targets", required=True)
    a = ap.parse_args()
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{a.port}/"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    sim = await server.register_namespace(SIM)
    mt = await server.register_namespace(MT)
    ma = await server.register_namespace(MACHINERY)
    machines = await server.nodes.objects.add_folder(ua.NodeId("Machines", sim), ua.QualifiedName("Machines", ma))
    changing = []
    for i in range(1, a.machines + 1):
        m = f"cnc-{i}"
        nid = lambda p: ua.NodeId(f"{m}.{p}", sim)  # noqa: E731
        root = await machines.add_object(ua.NodeId(m, sim), ua.QualifiedName(m, sim))
        mon = await root.add_object(nid("Monitoring"), ua.QualifiedName("Monitoring", mt))
        mtm = await mon.add_object(nid("Monitoring.MachineTool"), ua.QualifiedName("MachineTool", mt))
        await mtm.add_variable(nid("Monitoring.MachineTool.OperationMode"), ua.QualifiedName("OperationMode", mt), 1, ua.VariantType.Int32)
        power = await mtm.add_variable(nid("Monitoring.MachineTool.Power"), ua.QualifiedName("Power", sim), 0.0)
        ch = await mon.add_object(nid("Monitoring.Channel1"), ua.QualifiedName("Channel1", sim))
        await ch.add_variable(nid("Monitoring.Channel1.ChannelState"), ua.QualifiedName("ChannelState", mt), 0, ua.VariantType.Int32)
        await ch.add_variable(nid("Monitoring.Channel1.ChannelMode"), ua.QualifiedName("ChannelMode", mt), 0, ua.VariantType.Int32)
        sp = await mon.add_object(nid("Monitoring.Spindle1"), ua.QualifiedName("Spindle1", sim))
        await sp.add_variable(nid("Monitoring.Spindle1.IsRotating"), ua.QualifiedName("IsRotating", mt), True)
        prod = await root.add_object(nid("Production"), ua.QualifiedName("Production", mt))
        prog = await prod.add_object(nid("Production.ActiveProgram"), ua.QualifiedName("ActiveProgram", mt))
        st = await prog.add_object(nid("Production.ActiveProgram.State"), ua.QualifiedName("State", mt))
        await st.add_variable(nid("Production.ActiveProgram.State.CurrentState"), ua.QualifiedName("CurrentState", 0), ua.LocalizedText("Running"))
        stats = await prod.add_object(nid("Production.Statistics"), ua.QualifiedName("Statistics", mt))
        parts = await stats.add_variable(nid("Production.Statistics.PartsProducedInLifetime"), ua.QualifiedName("PartsProducedInLifetime", mt), 0, ua.VariantType.UInt32)
        item = await root.add_object(nid("MachineryItemState"), ua.QualifiedName("MachineryItemState", ma))
        await item.add_variable(nid("MachineryItemState.CurrentState"), ua.QualifiedName("CurrentState", 0), ua.LocalizedText("Executing"))
        changing.append((parts, power))
    json.dump([{"url": url, "machine": f"cnc-{i}"} for i in range(1, a.machines + 1)], open(a.targets, "w"))
    async with server:
        print("READY", flush=True)
        k = 0
        while True:
            await asyncio.sleep(1)
            k += 1
            for parts, power in changing:
                await parts.write_value(ua.Variant(k, ua.VariantType.UInt32))
                await power.write_value(12.0 + (k % 7) * 0.5)


asyncio.run(main())
