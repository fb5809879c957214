"""Shared helpers of the OPC UA peer scripts: self-signed certificates and
security settings for asyncua clients and servers."""

from pathlib import Path

from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua import ua
from cryptography.x509.oid import ExtendedKeyUsageOID

MODES = {
    "none": None,
    "sign": ua.MessageSecurityMode.Sign,
    "encrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


async def own_certificate(pki: Path, app_uri: str, server: bool):
    """Creates (once) a self-signed certificate and key in `pki`. Its host
    name is 127.0.0.1, the address tests connect to: clients check that the
    endpoint's host appears in the server certificate."""
    pki.mkdir(parents=True, exist_ok=True)
    cert = pki / "cert.der"
    key = pki / "key.pem"
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    await setup_self_signed_certificate(
        key,
        cert,
        app_uri,
        "127.0.0.1",
        [usage],
        {"countryName": "CN", "organizationName": "Shuzhuan tests", "commonName": app_uri},
    )
    return cert, key


def policy():
    return SecurityPolicyBasic256Sha256
