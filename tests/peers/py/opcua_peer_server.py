"""An asyncua OPC UA server shaped like a CNC machine tool (OPC 40501-1
BrowseNames), for the agent's interop tests. Its namespaces are registered
in a different order than the simulator's, so indexes differ and clients
must match BrowseNames by name or URI.

Usage: opcua_peer_server.py --port PORT --pki DIR [--security none,sign,encrypt]
       [--interval 0.2]
Prints READY when listening; PartsProducedInLifetime counts up every interval.
"""

import argparse
import asyncio
from pathlib import Path

from asyncua import Server, ua

from opcua_common import own_certificate

MT = "http://opcfoundation.org/UA/MachineTool/"
MACHINERY = "http://opcfoundation.org/UA/Machinery/"
INSTANCE = "urn:shuzhuan:tests:asyncua-peer"
POLICIES = {
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", type=Path, required=True)
    ap.add_argument("--security", default="none")
    ap.add_argument("--interval", type=float, default=0.2)
    a = ap.parse_args()
    modes = a.security.split(",")

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{a.port}/shuzhuan/peer/")
    server.set_server_name("Shuzhuan asyncua peer")
    server.set_security_policy([POLICIES[m] for m in modes])
    if any(m != "none" for m in modes):
        app_uri = "urn:shuzhuan:tests:asyncua-server"
        await server.set_application_uri(app_uri)
        cert, key = await own_certificate(a.pki, app_uri, server=True)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))

    await server.register_namespace("urn:shuzhuan:tests:unrelated")
    inst = await server.register_namespace(INSTANCE)
    ma = await server.register_namespace(MACHINERY)
    mt = await server.register_namespace(MT)

    def nid(s):
        return ua.NodeId(s, inst)

    machines = await server.nodes.objects.add_folder(nid("Machines"), ua.QualifiedName("Machines", ma))
    lathe = await machines.add_object(nid("lathe-1"), ua.QualifiedName("lathe-1", inst))
    mon = await lathe.add_object(nid("lathe-1.Monitoring"), ua.QualifiedName("Monitoring", mt))
    mtm = await mon.add_object(nid("lathe-1.Monitoring.MachineTool"), ua.QualifiedName("MachineTool", mt))
    await mtm.add_variable(
        nid("lathe-1.OperationMode"), ua.QualifiedName("OperationMode", mt), ua.Variant(1, ua.VariantType.Int32)
    )
    spindle = await mon.add_object(nid("lathe-1.Monitoring.Spindle1"), ua.QualifiedName("Spindle1", inst))
    await spindle.add_variable(nid("lathe-1.IsRotating"), ua.QualifiedName("IsRotating", mt), True)
    prod = await lathe.add_object(nid("lathe-1.Production"), ua.QualifiedName("Production", mt))
    stats = await prod.add_object(nid("lathe-1.Production.Statistics"), ua.QualifiedName("Statistics", mt))
    parts = await stats.add_variable(
        nid("lathe-1.Parts"), ua.QualifiedName("PartsProducedInLifetime", mt), ua.Variant(0, ua.VariantType.UInt32)
    )
    prog = await prod.add_object(nid("lathe-1.Production.ActiveProgram"), ua.QualifiedName("ActiveProgram", mt))
    state = await prog.add_object(nid("lathe-1.Production.ActiveProgram.State"), ua.QualifiedName("State", mt))
    await state.add_variable(
        nid("lathe-1.ProgramState"), ua.QualifiedName("CurrentState", 0), ua.LocalizedText("Running")
    )

    async with server:
        print("READY", flush=True)
        n = 0
        while True:
            await asyncio.sleep(a.interval)
            n += 1
            await parts.write_value(ua.Variant(n, ua.VariantType.UInt32))


if __name__ == "__main__":
    asyncio.run(main())
