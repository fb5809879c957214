// A modbus-serial (Node) Modbus server holding known values for the agent's
// Modbus tests: the same map as tests/peers/py/modbus_server.py, packed here
// independently with Node's Buffer writers.
//
// Unit 1 holds, from holding register 0 on, every data type in every byte and
// word order (64 registers, zeros up to 80; ABCD, CDAB, BADC, DCBA named by
// where the bytes of the big-endian value land), then a status word with bit 5
// set (80), the text "SHUZHUAN" (81-84), zeros to 89, a hole at 90-91 (reading
// it is exception 02, illegal data address) and 4242 at 92. Coil 3 is on
// (coils, discrete inputs and input registers 0-7 exist). Requests for any
// other unit id are not answered (modbus-serial's `unitID` option), as on a
// bus where that unit is absent.
//
// Usage: NODE_PATH=tests/peers/node/node_modules node modbus_server.js --port N
//        NODE_PATH=... node modbus_server.js --serial /dev/pts/N [--baud 9600]
// Prints "ready" once listening (TCP) or once the serial port is open.
"use strict";
const { ServerTCP, ServerSerial } = require("modbus-serial");

const ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"];
// [byte length, writer] per data type, in the order of the Python peer.
const TYPES = [
  [2, (b) => b.writeInt16BE(-1234)],
  [2, (b) => b.writeUInt16BE(54321)],
  [4, (b) => b.writeUInt32BE(3000000123)],
  [4, (b) => b.writeInt32BE(-2000000123)],
  [4, (b) => b.writeFloatBE(123.456)],
  [8, (b) => b.writeBigUInt64BE(9000000000000000123n)],
  [8, (b) => b.writeDoubleBE(-98765.4321)],
];

function words(len, write, order) {
  const raw = Buffer.alloc(len);
  write(raw);
  let ws = [];
  for (let i = 0; i < len; i += 2) ws.push([raw[i], raw[i + 1]]);
  if (order === "CDAB" || order === "DCBA") ws.reverse();
  if (order === "BADC" || order === "DCBA") ws = ws.map(([hi, lo]) => [lo, hi]);
  return ws.map(([hi, lo]) => (hi << 8) | lo);
}

function holding() {
  const regs = new Map();
  let addr = 0;
  for (const order of ORDERS) {
    for (const [len, write] of TYPES) {
      for (const w of words(len, write, order)) regs.set(addr++, w);
    }
  }
  if (addr !== 64) throw new Error(`map is ${addr} registers`);
  for (; addr < 80; addr++) regs.set(addr, 0);
  regs.set(addr++, 1 << 5);
  const text = Buffer.from("SHUZHUAN", "ascii");
  for (let i = 0; i < text.length; i += 2) regs.set(addr++, text.readUInt16BE(i));
  for (; addr < 90; addr++) regs.set(addr, 0);
  regs.set(92, 4242);
  return regs;
}

const HOLDING = holding();
const COILS = [false, false, false, true, false, false, false, false];
const ILLEGAL = { modbusErrorCode: 0x02, msg: "Illegal data address" };

function register(table, addr) {
  if (!table.has(addr)) throw ILLEGAL;
  return table.get(addr);
}

function bit(table, addr) {
  if (addr < 0 || addr >= table.length) throw ILLEGAL;
  return table[addr];
}

const INPUT = new Map([...Array(8).keys()].map((a) => [a, 0]));
const vector = {
  getHoldingRegister: (addr) => register(HOLDING, addr),
  getMultipleHoldingRegisters: (addr, len) =>
    Array.from({ length: len }, (_, i) => register(HOLDING, addr + i)),
  getInputRegister: (addr) => register(INPUT, addr),
  getMultipleInputRegisters: (addr, len) =>
    Array.from({ length: len }, (_, i) => register(INPUT, addr + i)),
  getCoil: (addr) => bit(COILS, addr),
  getDiscreteInput: (addr) => bit(new Array(8).fill(false), addr),
  setRegister: () => {
    throw ILLEGAL;
  },
  setCoil: () => {
    throw ILLEGAL;
  },
};

function arg(name) {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

const port = arg("--port");
const serial = arg("--serial");
if (port) {
  const server = new ServerTCP(vector, { host: "127.0.0.1", port: Number(port), unitID: 1 });
  server.on("initialized", () => console.log("ready"));
  server.on("socketError", (e) => console.error("socket error:", e.message));
} else if (serial) {
  const baudRate = Number(arg("--baud") || 9600);
  const server = new ServerSerial(vector, {
    path: serial,
    baudRate,
    unitID: 1,
    openCallback: (err) => {
      if (err) {
        console.error("cannot open", serial, err.message);
        process.exit(1);
      }
      console.log("ready");
    },
  });
  server.on("error", (e) => console.error("serial error:", e.message));
} else {
  console.error("usage: modbus_server.js --port N | --serial PATH [--baud B]");
  process.exit(2);
}
