"""Makes a self-signed OPC UA server (or, with --client, user) certificate
for 127.0.0.1 with the application URI as the first subject alternative
name (async-opcua insists on that order; node-opcua's own certificates put
the DNS name first), as DER and PEM, for peers and tests that cannot make
such a certificate themselves.

Usage: opcua_make_cert.py --pki DIR --uri APPLICATION_URI [--client]
Writes DIR/cert.der, DIR/cert.pem, DIR/key.pem.
"""

import argparse
import asyncio
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from opcua_common import own_certificate


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pki", type=Path, required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--client", action="store_true", help="a client/user certificate")
    a = ap.parse_args()
    cert, _key = await own_certificate(a.pki, a.uri, server=not a.client)
    der = cert.read_bytes()
    (a.pki / "cert.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))


if __name__ == "__main__":
    asyncio.run(main())
