"""A pymodbus TCP server holding known values for the agent's Modbus tests.

Unit 1 holds, from holding register 0 on, every data type in every byte and
word order (64 registers, zeros up to 80) (ABCD, CDAB, BADC, DCBA named by where the bytes of the
big-endian value land), packed here independently of the agent's codec;
then a status word with bit 5 set (80), the text "SHUZHUAN" (81-84), and a
hole at 90-91 (undefined registers: reading them is an illegal address)
before 4242 at 92. Coil 3 is on. Other units do not exist.

Usage: modbus_server.py --port N   (prints "ready" once listening)
"""

import argparse
import asyncio
import struct

from pymodbus.server import StartAsyncTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

TYPES = [
    (">h", -1234),
    (">H", 54321),
    (">I", 3_000_000_123),
    (">i", -2_000_000_123),
    (">f", 123.456),
    (">Q", 9_000_000_000_000_000_123),
    (">d", -98765.4321),
]
ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def words(fmt, value, order):
    raw = struct.pack(fmt, value)
    ws = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        ws.reverse()
    if order in ("BADC", "DCBA"):
        ws = [w[::-1] for w in ws]
    return [int.from_bytes(w, "big") for w in ws]


def holding():
    regs = []
    for order in ORDERS:
        for fmt, value in TYPES:
            regs += words(fmt, value, order)
    assert len(regs) == 64, len(regs)
    regs += [0] * 16
    regs.append(1 << 5)
    text = b"SHUZHUAN"
    regs += [int.from_bytes(text[i : i + 2], "big") for i in range(0, 8, 2)]
    regs += [0] * (90 - len(regs))
    return regs


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    hr = [
        SimData(0, values=holding(), datatype=DataType.REGISTERS),
        SimData(92, values=[4242], datatype=DataType.REGISTERS),
    ]
    co = [SimData(0, values=[False, False, False, True, False, False, False, False], datatype=DataType.BITS)]
    di = [SimData(0, values=[False] * 8, datatype=DataType.BITS)]
    ir = [SimData(0, values=[0] * 8, datatype=DataType.REGISTERS)]
    device = SimDevice(1, simdata=(co, di, hr, ir))
    print("ready", flush=True)
    await StartAsyncTcpServer(context=device, address=("127.0.0.1", args.port))


if __name__ == "__main__":
    asyncio.run(main())
