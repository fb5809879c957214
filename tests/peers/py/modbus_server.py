"""A pymodbus Modbus server (TCP, or RTU on a serial port) holding known
values for the agent's Modbus tests.

Unit 1 holds, from holding register 0 on, every data type in every byte and
word order (64 registers, zeros up to 80) (ABCD, CDAB, BADC, DCBA named by
where the bytes of the big-endian value land), packed here independently of
the agent's codec; then a status word with bit 5 set (80), the text
"SHUZHUAN" (81-84), and a hole at 90-91 (undefined registers: reading them
is an illegal address) before 4242 at 92. Coil 3 is on. Other units do not
exist: over TCP pymodbus answers them with exception 0B (gateway target did
not respond), over RTU they are not answered (as on a bus where that unit is
absent).

Usage: modbus_server.py --port N                     (Modbus TCP on 127.0.0.1)
       modbus_server.py --serial PATH [--baud 9600]  (Modbus RTU, e.g. one end of a socat pty pair)
Prints "ready" once listening.
"""

import argparse
import asyncio
import struct

from pymodbus import FramerType
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
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
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--serial")
    p.add_argument("--baud", type=int, default=9600)
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
    if args.serial:
        await StartAsyncSerialServer(
            context=device,
            framer=FramerType.RTU,
            port=args.serial,
            baudrate=args.baud,
            ignore_missing_devices=True,
        )
    else:
        await StartAsyncTcpServer(context=device, address=("127.0.0.1", args.port))


if __name__ == "__main__":
    asyncio.run(main())
