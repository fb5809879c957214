#!/usr/bin/env python3
"""Independent checker of Shuzhuan evidence bundles, written from
docs/specs/evidence.md (not from the Rust code).

Usage: verify_bundle.py BUNDLE --log-key BASE64

Reads a line-oriented bundle (format 2: header line, one line per report,
trailer line) one line at a time, or a format 1 bundle (one JSON document).
Checks V1-V4, L1-L3 and R1-R8 of the spec, accumulates a few figures from
the reports that pass (reports, agents, devices seen/reporting, samples,
parts, energy per carrier, time coverage) and prints one JSON object. Exit
status 0 when the bundle is ok, 1 when a check failed, 2 on usage errors.

Needs Python 3.11 and the `cryptography` package (Ed25519).
"""

import argparse
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "shuzhuan-evidence-bundle/2"
FORMAT_V1 = "shuzhuan-evidence-bundle/1"
HEADER_KEYS = {
    "format", "enterprise", "window_start", "window_end", "log_public_key",
    "checkpoint", "enrolments", "enrolments_signature",
}
ENTRY_KEYS = {"leaf_index", "report", "inclusion_proof", "proof_reuse"}


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


class Checker:
    """Checks a bundle entry by entry and accumulates its figures."""

    def __init__(self, header, trusted_key_b64, formats):
        self.problems = []
        self.header = header
        self.heads = {}
        self.last = None
        self.entries = 0
        # Figures, accumulated per accepted report.
        self.reports = 0
        self.spans = {}
        self.devices = {}
        self.energy = {}
        self.samples_expected = self.samples_received = self.parts = 0
        # V1
        if header["format"] not in formats:
            self.problem("format", f"format is {header['format']!r}")
        self.ws, self.we = header["window_start"], header["window_end"]
        if self.we <= self.ws:
            self.problem("format", "window is empty or reversed")
        # V2
        trusted = base64.b64decode(trusted_key_b64)
        if base64.b64decode(header["log_public_key"]) != trusted:
            self.problem("log_key", "bundle names another log key")
        # V3
        cp = header["checkpoint"]["checkpoint"]
        self.size = cp["size"]
        self.root = bytes.fromhex(cp["root_hash"])
        body = f"{cp['origin']}\n{cp['size']}\n{base64.b64encode(self.root).decode()}\n"
        if "\n" in cp["origin"] or not cp["origin"] or not verify_sig(trusted, body.encode(), header["checkpoint"]["signature"]):
            self.problem("checkpoint", "checkpoint signature does not verify")
        # V4
        self.ent = header["enterprise"]
        lines = ["shuzhuan-enrolments/1", self.ent, str(cp["size"])]
        self.keys = {}
        for e in header["enrolments"]:
            rev = "-" if e["revoked_at"] is None else str(e["revoked_at"])
            lines.append(f"{e['agent_id']} {e['enterprise']} {e['public_key']} {e['enrolled_at']} {rev}")
            self.keys.setdefault(e["agent_id"], []).append(e)
        ebody = "".join(line + "\n" for line in lines)
        if not verify_sig(trusted, ebody.encode(), header["enrolments_signature"]):
            self.problem("enrolments", "enrolment records do not match the log's signature")
        self.agents = sorted({e["agent_id"] for e in header["enrolments"]})

    def problem(self, kind, message, leaf=None, agent=None, seq=None):
        self.problems.append({"kind": kind, "leaf_index": leaf, "agent_id": agent, "seq": seq, "message": message})

    def entry(self, entry, proof):
        """One entry; `proof` is its full audit path (bytes, leaf first)."""
        self.entries += 1
        problem = self.problem
        heads = self.heads
        li = entry["leaf_index"]
        # R1
        if self.last is not None and li <= self.last:
            problem("order", f"leaf {li} follows leaf {self.last}", li)
        self.last = li
        # R2
        try:
            payload = base64.b64decode(entry["report"]["payload"], validate=True)
            report = json.loads(payload)
            agent, seq = report["agent_id"], report["seq"]
        except (ValueError, KeyError, TypeError) as exc:
            problem("malformed", f"payload does not decode: {exc}", li)
            return
        if agent not in self.keys:
            problem("unknown_agent", f"agent {agent} has no enrolment", li, agent, seq)
            return
        # R3
        enrolment = next((e for e in self.keys[agent] if verify_sig(e["public_key"], payload, entry["report"]["signature"])), None)
        rhash = sha256(payload)
        if enrolment is None or report.get("schema") != 1:
            problem("signature", f"report {seq} of {agent}: no enrolled key verifies it", li, agent, seq)
            heads[agent] = (seq, rhash)
            return
        fine = True
        # R6
        if enrolment["revoked_at"] is not None and enrolment["revoked_at"] <= report["window_end"]:
            fine = False
            problem("revoked_key", f"report {seq} of {agent} after revocation", li, agent, seq)
        # R4
        if report["enterprise"] != self.ent or enrolment["enterprise"] != self.ent:
            fine = False
            problem("enterprise", f"report {seq} of {agent} is for {report['enterprise']}", li, agent, seq)
        # R5
        if report["window_start"] < self.ws or report["window_end"] > self.we:
            fine = False
            problem("window", f"report {seq} of {agent} outside the window", li, agent, seq)
        # R7
        if not verify_inclusion(sha256(b"\x00" + rhash), li, self.size, proof, self.root):
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
            self.add(report)

    def add(self, r):
        self.reports += 1
        spans = self.spans.setdefault(r["agent_id"], [])
        if spans and spans[-1][0] <= r["window_start"] <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], r["window_end"])
        else:
            spans.append([r["window_start"], r["window_end"]])
        for s in r["summaries"]:
            self.devices[s["device_id"]] = self.devices.get(s["device_id"], 0) + s["samples_received"]
            self.samples_expected += s["samples_expected"]
            self.samples_received += s["samples_received"]
            self.parts += s.get("parts") or 0
            for e in s.get("energy", []):
                slot = self.energy.setdefault((e["carrier"], e["unit"]), [0.0, 0.0])
                slot[0] += e["quantity"]
                slot[1] += e.get("exported", 0.0)

    def figures(self):
        covered = 0
        for a in self.agents:
            cursor = self.ws
            for s, e in sorted(self.spans.get(a, [])):
                if e > cursor:
                    covered += e - max(s, cursor)
                    cursor = e
        expected = len(self.agents) * (self.we - self.ws)
        return {
            "reports": self.reports,
            "agents_enrolled": len(self.agents),
            "agents_reporting": len(self.spans),
            "devices_seen": len(self.devices),
            "devices_reporting": sum(1 for v in self.devices.values() if v > 0),
            "samples_expected": self.samples_expected,
            "samples_received": self.samples_received,
            "parts": self.parts,
            "covered_secs": covered,
            "time_coverage": covered / expected if expected else 0.0,
            "energy": [
                {"carrier": c, "unit": u, "quantity": q, "exported": x}
                for (c, u), (q, x) in sorted(self.energy.items())
            ],
        }


def keys_ok(obj, required, optional=frozenset()):
    return isinstance(obj, dict) and required <= set(obj) <= required | optional


def check_v1(doc, trusted):
    """Format 1: one JSON document with every entry's full audit path."""
    if not keys_ok(doc, HEADER_KEYS | {"entries"}):
        return None, [{"kind": "format", "leaf_index": None, "agent_id": None, "seq": None,
                       "message": "format 1 bundle has unknown or missing members"}]
    c = Checker({k: doc[k] for k in HEADER_KEYS}, trusted, {FORMAT_V1})
    for entry in doc["entries"]:
        c.entry(entry, [bytes.fromhex(h) for h in entry["inclusion_proof"]])
    return c, c.problems


def check_stream(f, trusted):
    """Format 2, one line at a time (section 4 of the spec)."""
    first = f.readline()
    try:
        header = json.loads(first)
    except ValueError as exc:
        header = exc
    if not isinstance(header, dict):
        # L1
        return None, [{"kind": "format", "leaf_index": None, "agent_id": None, "seq": None,
                       "message": f"line 1 is not a bundle header: {header}"}]
    if header.get("format") == FORMAT_V1:
        return check_v1(json.loads(first + f.read()), trusted)
    if not keys_ok(header, HEADER_KEYS):
        return None, [{"kind": "format", "leaf_index": None, "agent_id": None, "seq": None,
                       "message": "header line has unknown or missing members"}]
    c = Checker(header, trusted, {FORMAT})
    prev = []
    trailer = None
    for number, line in enumerate(f, start=2):
        line = line.rstrip("\r\n")
        if not line:
            continue
        if trailer is not None:
            c.problem("format", f"line {number}: text after the trailer")
            break
        try:
            obj = json.loads(line)
        except ValueError as exc:
            c.entries += 1
            c.problem("malformed", f"line {number} is not JSON: {exc}")
            continue
        if isinstance(obj, dict) and set(obj) == {"trailer"} and keys_ok(obj["trailer"], {"entries"}):
            trailer = obj["trailer"]["entries"]
            continue
        # L3
        if not keys_ok(obj, ENTRY_KEYS - {"proof_reuse"}, {"proof_reuse"}):
            c.entries += 1
            c.problem("malformed", f"line {number} is not an entry")
            continue
        # Section 4.5: the full path is this line's nodes, then the last
        # proof_reuse nodes of the previous line's full path.
        own = [bytes.fromhex(h) for h in obj["inclusion_proof"]]
        k = min(obj.get("proof_reuse", 0), len(prev))
        proof = own + (prev[len(prev) - k:] if k else [])
        c.entry(obj, proof)
        prev = proof
    # L2
    if trailer is None:
        c.problem("format", "the bundle ends without its trailer line: it is truncated")
    elif trailer != c.entries:
        c.problem("format", f"the trailer counts {trailer} entries, the bundle holds {c.entries}")
    return c, c.problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--log-key", required=True, help="trusted log public key, base64")
    args = ap.parse_args()
    with open(args.bundle, "r", encoding="utf-8") as f:
        checker, problems = check_stream(f, args.log_key)
    out = {
        "ok": not problems,
        "untrusted": any(p["kind"] in ("format", "log_key", "checkpoint", "enrolments") for p in problems),
        "problems": problems,
        "figures": checker.figures() if checker is not None else None,
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
