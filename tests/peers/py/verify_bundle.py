#!/usr/bin/env python3
"""Independent checker of Shuzhuan evidence bundles, written from
docs/specs/evidence.md (not from the Rust code).

Usage: verify_bundle.py BUNDLE.json --log-key BASE64

Checks V1-V4 and R1-R8 of the spec, recomputes a few figures from the
reports that pass (reports, agents, devices seen/reporting, samples, parts,
energy per carrier, time coverage) and prints one JSON object. Exit status
0 when the bundle is ok, 1 when a check failed, 2 on usage errors.

Needs Python 3.11 and the `cryptography` package (Ed25519).
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "shuzhuan-evidence-bundle/1"
BUNDLE_KEYS = {
    "format", "enterprise", "window_start", "window_end", "log_public_key",
    "checkpoint", "enrolments", "enrolments_signature", "entries",
}


def sha256(b):
    return hashlib.sha256(b).digest()


def node(left, right):
    return sha256(b"\x01" + left + right)


def verify_sig(pub_b64_or_bytes, message, sig_b64):
    try:
        raw = pub_b64_or_bytes if isinstance(pub_b64_or_bytes, bytes) else base64.b64decode(pub_b64_or_bytes, validate=True)
        key = Ed25519PublicKey.from_public_bytes(raw)
        key.verify(base64.b64decode(sig_b64, validate=True), message)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def check(bundle, trusted_key_b64):
    problems = []

    def problem(kind, message, leaf=None, agent=None, seq=None):
        problems.append({"kind": kind, "leaf_index": leaf, "agent_id": agent, "seq": seq, "message": message})

    unknown = set(bundle) - BUNDLE_KEYS
    missing = BUNDLE_KEYS - set(bundle)
    if unknown or missing:
        problem("format", f"unknown members {sorted(unknown)}, missing members {sorted(missing)}")
        return problems, None
    # V1
    if bundle["format"] != FORMAT:
        problem("format", f"format is {bundle['format']!r}")
    ws, we = bundle["window_start"], bundle["window_end"]
    if we <= ws:
        problem("format", "window is empty or reversed")
    # V2
    trusted = base64.b64decode(trusted_key_b64)
    if base64.b64decode(bundle["log_public_key"]) != trusted:
        problem("log_key", "bundle names another log key")
    # V3
    cp = bundle["checkpoint"]["checkpoint"]
    root = bytes.fromhex(cp["root_hash"])
    body = f"{cp['origin']}\n{cp['size']}\n{base64.b64encode(root).decode()}\n"
    if "\n" in cp["origin"] or not cp["origin"] or not verify_sig(trusted, body.encode(), bundle["checkpoint"]["signature"]):
        problem("checkpoint", "checkpoint signature does not verify")
    # V4
    ent = bundle["enterprise"]
    lines = ["shuzhuan-enrolments/1", ent, str(cp["size"])]
    keys = {}
    for e in bundle["enrolments"]:
        rev = "-" if e["revoked_at"] is None else str(e["revoked_at"])
        lines.append(f"{e['agent_id']} {e['enterprise']} {e['public_key']} {e['enrolled_at']} {rev}")
        keys.setdefault(e["agent_id"], []).append(e)
    ebody = "".join(line + "\n" for line in lines)
    if not verify_sig(trusted, ebody.encode(), bundle["enrolments_signature"]):
        problem("enrolments", "enrolment records do not match the log's signature")

    accepted = []
    heads = {}
    last = None
    for entry in bundle["entries"]:
        li = entry["leaf_index"]
        # R1
        if last is not None and li <= last:
            problem("order", f"leaf {li} follows leaf {last}", li)
        last = li
        # R2
        try:
            payload = base64.b64decode(entry["report"]["payload"], validate=True)
            report = json.loads(payload)
            agent, seq = report["agent_id"], report["seq"]
        except (ValueError, KeyError, TypeError) as exc:
            problem("malformed", f"payload does not decode: {exc}", li)
            continue
        if agent not in keys:
            problem("unknown_agent", f"agent {agent} has no enrolment", li, agent, seq)
            continue
        # R3
        enrolment = next((e for e in keys[agent] if verify_sig(e["public_key"], payload, entry["report"]["signature"])), None)
        rhash = sha256(payload)
        if enrolment is None or report.get("schema") != 1:
            problem("signature", f"report {seq} of {agent}: no enrolled key verifies it", li, agent, seq)
            heads[agent] = (seq, rhash)
            continue
        fine = True
        # R6
        if enrolment["revoked_at"] is not None and enrolment["revoked_at"] <= report["window_end"]:
            fine = False
            problem("revoked_key", f"report {seq} of {agent} after revocation", li, agent, seq)
        # R4
        if report["enterprise"] != ent or enrolment["enterprise"] != ent:
            fine = False
            problem("enterprise", f"report {seq} of {agent} is for {report['enterprise']}", li, agent, seq)
        # R5
        if report["window_start"] < ws or report["window_end"] > we:
            fine = False
            problem("window", f"report {seq} of {agent} outside the window", li, agent, seq)
        # R7
        proof = [bytes.fromhex(h) for h in entry["inclusion_proof"]]
        if not verify_inclusion(sha256(b"\x00" + rhash), li, cp["size"], proof, root):
            fine = False
            problem("inclusion", f"report {seq} of {agent}: inclusion proof fails", li, agent, seq)
        # R8
        prev = heads.get(agent)
        if prev is None:
            ok = seq >= 1 and (seq != 1 or report["prev_hash"] == "0" * 64)
        else:
            ok = seq == prev[0] + 1 and bytes.fromhex(report["prev_hash"]) == prev[1]
        if not ok:
            problem("chain", f"report {seq} of {agent} does not follow the previous report", li, agent, seq)
        heads[agent] = (seq, rhash)
        if fine:
            accepted.append(report)
    return problems, accepted


def figures(bundle, reports):
    ws, we = bundle["window_start"], bundle["window_end"]
    agents = sorted({e["agent_id"] for e in bundle["enrolments"]})
    spans = {}
    devices = {}
    energy = {}
    samples_expected = samples_received = parts = 0
    for r in reports:
        spans.setdefault(r["agent_id"], []).append((r["window_start"], r["window_end"]))
        for s in r["summaries"]:
            devices[s["device_id"]] = devices.get(s["device_id"], 0) + s["samples_received"]
            samples_expected += s["samples_expected"]
            samples_received += s["samples_received"]
            parts += s.get("parts") or 0
            for e in s.get("energy", []):
                slot = energy.setdefault((e["carrier"], e["unit"]), [0.0, 0.0])
                slot[0] += e["quantity"]
                slot[1] += e.get("exported", 0.0)
    covered = 0
    for a in agents:
        cursor = ws
        for s, e in sorted(spans.get(a, [])):
            if e > cursor:
                covered += e - max(s, cursor)
                cursor = e
    expected = len(agents) * (we - ws)
    return {
        "reports": len(reports),
        "agents_enrolled": len(agents),
        "agents_reporting": len(spans),
        "devices_seen": len(devices),
        "devices_reporting": sum(1 for v in devices.values() if v > 0),
        "samples_expected": samples_expected,
        "samples_received": samples_received,
        "parts": parts,
        "covered_secs": covered,
        "time_coverage": covered / expected if expected else 0.0,
        "energy": [
            {"carrier": c, "unit": u, "quantity": q, "exported": x}
            for (c, u), (q, x) in sorted(energy.items())
        ],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--log-key", required=True, help="trusted log public key, base64")
    args = ap.parse_args()
    with open(args.bundle, "rb") as f:
        bundle = json.load(f)
    problems, accepted = check(bundle, args.log_key)
    out = {
        "ok": not problems,
        "untrusted": any(p["kind"] in ("format", "log_key", "checkpoint", "enrolments") for p in problems),
        "problems": problems,
        "figures": figures(bundle, accepted) if accepted is not None else None,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
