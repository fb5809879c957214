"""Count the OPC UA nodes a running shuzhuan-sim serves: for every OPC UA
link in ports.json, connect (security None), browse from the simulator's
`Machines` folder down every forward hierarchical reference, and count the
distinct nodes (the folder, machine objects, their objects and variables)
and the variables among them. Prints one JSON line.

Usage: opcua_count.py PORTS_JSON
"""

import asyncio
import json
import sys

from asyncua import Client, ua

SIM_NS = "urn:shuzhuan:simulator:cnc"


async def count(url, sem):
    async with sem:
        c = Client(url, timeout=30)
        await c.connect()
        try:
            ns = await c.get_namespace_index(SIM_NS)
            root = c.get_node(f"ns={ns};s=Machines")
            seen, variables, todo = {root.nodeid}, 0, [root]
            while todo:
                node = todo.pop()
                for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                    if child.nodeid in seen or child.nodeid.NamespaceIndex == 0:
                        continue
                    seen.add(child.nodeid)
                    if await child.read_node_class() == ua.NodeClass.Variable:
                        variables += 1
                    todo.append(child)
            return len(seen), variables
        finally:
            await c.disconnect()


async def main():
    ports = json.load(open(sys.argv[1]))
    urls = [u for k, v in ports.items() if k != "control"
            for u in v["links"].values() if u.startswith("opc.tcp://")]
    sem = asyncio.Semaphore(8)
    results = await asyncio.gather(*(count(u, sem) for u in urls))
    print(json.dumps({"servers": len(urls), "nodes": sum(r[0] for r in results),
                      "variables": sum(r[1] for r in results)}))


asyncio.run(main())
