// A node-opcua server shaped like a CNC machine tool (OPC 40501-1
// BrowseNames) for the agent's interop tests: security None and
// Basic256Sha256 Sign/SignAndEncrypt, a self-signed certificate for
// 127.0.0.1, unknown client certificates accepted. Namespaces are
// registered in yet another order than the simulator's and asyncua's.
//
// Usage: NODE_PATH=tests/peers/node/node_modules node opcua_peer_server.js PORT PKI_DIR
// where PKI_DIR may hold cert.pem and key.pem from
// `opcua_make_cert.py --uri urn:shuzhuan:tests:node-opcua-server`.
// PartsProducedInLifetime counts up every 200 ms.
"use strict";
const fs = require("fs");
const path = require("path");
const {
  OPCUAServer,
  OPCUACertificateManager,
  SecurityPolicy,
  MessageSecurityMode,
  DataType,
  Variant,
  LocalizedText,
  coerceQualifiedName,
} = require("node-opcua");

const MT = "http://opcfoundation.org/UA/MachineTool/";
const MACHINERY = "http://opcfoundation.org/UA/Machinery/";
const INSTANCE = "urn:shuzhuan:tests:node-opcua-peer";

async function main() {
  const port = Number(process.argv[2]);
  const pki = process.argv[3];
  const serverCertificateManager = new OPCUACertificateManager({
    automaticallyAcceptUnknownCertificate: true,
    rootFolder: path.join(pki, "pki"),
  });
  // With cert.pem/key.pem from opcua_make_cert.py the certificate names
  // 127.0.0.1 (the address tests connect to) after the application URI;
  // without them node-opcua makes its own (DNS name first, this host's name).
  const ownCert = fs.existsSync(path.join(pki, "cert.pem"));
  const applicationUri = ownCert ? "urn:shuzhuan:tests:node-opcua-server" : undefined;
  const certificate = ownCert
    ? {
        certificateFile: path.join(pki, "cert.pem"),
        privateKeyFile: path.join(pki, "key.pem"),
        serverInfo: { applicationUri },
      }
    : {};
  const server = new OPCUAServer({
    ...certificate,
    port,
    host: "127.0.0.1",
    resourcePath: "/UA/ShuzhuanPeer",
    serverCertificateManager,
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256],
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: true,
    buildInfo: { productName: "Shuzhuan node-opcua peer" },
  });
  await server.initialize();
  const space = server.engine.addressSpace;
  const mt = space.registerNamespace(MT);
  const inst = space.registerNamespace(INSTANCE);
  const ma = space.registerNamespace(MACHINERY);
  const qn = (ns, name) => coerceQualifiedName({ name, namespaceIndex: ns.index });

  const machines = inst.addFolder(space.rootFolder.objects, { browseName: qn(ma, "Machines") });
  const mill = inst.addObject({ organizedBy: machines, browseName: qn(inst, "mill-1") });
  const monitoring = inst.addObject({ componentOf: mill, browseName: qn(mt, "Monitoring") });
  const machineTool = inst.addObject({ componentOf: monitoring, browseName: qn(mt, "MachineTool") });
  inst.addVariable({
    componentOf: machineTool,
    browseName: qn(mt, "OperationMode"),
    dataType: DataType.Int32,
    value: new Variant({ dataType: DataType.Int32, value: 1 }),
  });
  const spindle = inst.addObject({ componentOf: monitoring, browseName: qn(inst, "Spindle1") });
  inst.addVariable({
    componentOf: spindle,
    browseName: qn(mt, "IsRotating"),
    dataType: DataType.Boolean,
    value: new Variant({ dataType: DataType.Boolean, value: true }),
  });
  const production = inst.addObject({ componentOf: mill, browseName: qn(mt, "Production") });
  const statistics = inst.addObject({ componentOf: production, browseName: qn(mt, "Statistics") });
  const parts = inst.addVariable({
    componentOf: statistics,
    browseName: qn(mt, "PartsProducedInLifetime"),
    dataType: DataType.UInt32,
    value: new Variant({ dataType: DataType.UInt32, value: 0 }),
  });
  const program = inst.addObject({ componentOf: production, browseName: qn(mt, "ActiveProgram") });
  const state = inst.addObject({ componentOf: program, browseName: qn(mt, "State") });
  inst.addVariable({
    componentOf: state,
    browseName: coerceQualifiedName({ name: "CurrentState", namespaceIndex: 0 }),
    dataType: DataType.LocalizedText,
    value: new Variant({ dataType: DataType.LocalizedText, value: new LocalizedText({ text: "Running" }) }),
  });

  await server.start();
  console.log("READY");
  let n = 0;
  setInterval(() => {
    n += 1;
    parts.setValueFromSource(new Variant({ dataType: DataType.UInt32, value: n }));
  }, 200);
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
