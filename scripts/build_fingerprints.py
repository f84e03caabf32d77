#!/usr/bin/env python3
"""Build the shipped list of known malicious TLS/SSH fingerprints (fingerprint.known's list).

    python scripts/build_fingerprints.py \\
        --sslbl-ja3 ja3_fingerprints.csv --ja4-mapping ja4plus-mapping.csv \\
        > src/mamori/detect/detectors/fingerprints.json

Every entry comes from a cited public source; nothing is typed in from memory:

* **Certificates of AsyncRAT-family C2 servers.** The rule is Corelight's zeek-asyncrat-detector
  (BSD-3-Clause, ``scripts/main.zeek`` at commit 0c08b15): an issuer or subject matching
  ``(((async|dc)rat|SXN) Server)|(DcRat By)`` (case-insensitive), plus its Suricata rule sid
  3000066 (issuer containing ``By qwqdanchun``, the VenomRAT variant). The certificates' SHA-256
  fingerprints are read from that package's own test baselines in the shared data
  (``zeek-detector-pcaps/zeek-asyncrat-detector/testing/Baseline/*/notice.log``).
* **abuse.ch SSLBL JA3 fingerprints** (``--sslbl-ja3``): https://sslbl.abuse.ch/blacklist/
  ``ja3_fingerprints.csv`` (abuse.ch terms of use; the copy used is the 98-row snapshot of
  github.com/BranislavDubec/Analyza-skodlivej-sifrovaneho-sietovej-prevadzky @2ad7aa4,
  ``ja3_fingerprints.csv``). A JA3 names a TLS library that innocent software may share (one of
  these matches a plain HTTPS request in Suricata's tests), so these entries are low.
* **FoxIO JA4+ mapping** (``--ja4-mapping``): ``ja4plus-mapping.csv`` of FoxIO-LLC/ja4 (JA4 TLS
  client fingerprints are BSD-3-Clause). Only malware rows with a JA4 of their own are taken: rows
  whose JA4 the mapping also gives to a library or browser, and rows noted as riding Windows'
  wininet/winhttp, say nothing about the malware and are left out.
* **HASSH of offensive tools' SSH clients**: the examples of Salesforce's HASSH README
  (github.com/salesforce/hassh, BSD-3-Clause, commit 12202d4), which names them as used by
  Empire and Metasploit modules. They are client libraries, so low.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mamori.detect.detectors.fingerprint import _check, parse_sslbl_ja3  # noqa: E402

CORELIGHT = "Corelight zeek-asyncrat-detector"
CORELIGHT_URL = "https://github.com/corelight/zeek-asyncrat-detector/tree/0c08b157a218b7aa9732c2ab27e0faa53f99cb0f"
C2_TLS = ["T1573.002"]
# The Zeek package's regular expression, in the Rust/Polars dialect (same meaning).
ASYNCRAT_RE = r"(?i)((async|dc)rat|sxn) server|dcrat by"
VENOMRAT_RE = r"(?i)by qwqdanchun"
HASSH_README = "Salesforce HASSH README"
HASSH_URL = (
    "https://github.com/salesforce/hassh/blob/12202d4da99aa04cf721bc768efbb8fe2e01f015/README.md"
)
HASSH = [  # (hassh, what the README says it is)
    ("de30354b88bae4c2810426614e1b6976", "PowerShell Renci.SshNet (used by Empire modules)"),
    ("fafc45381bfde997b6305c4e1600f1bf", "Ruby Net::SSH 5.0.2 (used by Metasploit modules)"),
    ("b5752e36ba6c5979a575e43178908adf", "Python Paramiko 2.4.1 (used by Metasploit modules)"),
]
# JA4+ mapping applications that are malware or C2 implants (not tools, VPNs or browsers).
MALWARE = re.compile(r"(?i)sliver|icedid|cobalt strike|qakbot|pikabot|darkgate|lumma|havoc")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def certificates(data: Path) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    """The Corelight rule, and the certificate fingerprints its test baselines report."""
    entries = [
        {"field": f, "match": "pattern", "value": rx, "family": family, "source": CORELIGHT,
         "reference": ref, "severity": "high", "confidence": 0.9, "techniques": C2_TLS}
        for rx, family, ref in (
            (ASYNCRAT_RE, "AsyncRAT/DcRAT", f"{CORELIGHT_URL}/scripts/main.zeek (asyncrat_re)"),
            (VENOMRAT_RE, "DcRAT/VenomRAT", f"{CORELIGHT_URL}/suri/suricata.rules (sid 3000066)"),
        )
        for f in ("issuer", "subject")
    ]  # fmt: skip
    base = data / "zeek-detector-pcaps" / "zeek-asyncrat-detector" / "testing" / "Baseline"
    logs = sorted(base.glob("*/notice.log"))
    if not logs:
        raise SystemExit(f"{base}: no notice.log baselines (is --data the shared data folder?)")
    for log in logs:
        for line in log.read_text().splitlines():
            if line.startswith("#") or "AsyncRAT::C2_Traffic_Observed" not in line:
                continue
            m = re.search(r"Cert Fingerprints: \[([0-9a-f,]+)\] (?:Issuer|Subject): (.*?)\t", line)
            if not m:
                raise SystemExit(f"{log}: unexpected notice format: {line[:120]}")
            family = "DcRAT" if "dcrat" in m.group(2).lower() else "AsyncRAT"
            leaf = m.group(1).split(",")[0]
            entries.append(
                {"field": "cert_sha256", "match": "exact", "value": leaf, "family": family,
                 "source": CORELIGHT,
                 "reference": f"shared data {log.relative_to(data)} (issuer {m.group(2)})",
                 "severity": "high", "confidence": 0.9, "techniques": C2_TLS}
            )  # fmt: skip
    source = {
        "id": "corelight-asyncrat",
        "what": "AsyncRAT-family default certificate rule and its test baselines' certificates",
        "where": "github.com/corelight/zeek-asyncrat-detector (scripts/main.zeek, suri/"
        "suricata.rules); baselines from the shared data "
        + ", ".join(str(p.relative_to(data)) for p in logs),
        "licence": "BSD-3-Clause (Corelight, Inc.)",
    }
    return entries, source


def ja4_entries(path: Path) -> list[dict]:  # type: ignore[type-arg]
    rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    benign = {r["ja4"] for r in rows if r["ja4"] and not MALWARE.search(r["Application"])}
    out = []
    for r in rows:
        app, ja4 = r["Application"].strip(), r["ja4"].strip()
        if not ja4 or not MALWARE.search(app) or r["Library"].strip() or ja4 in benign:
            continue
        if re.search(r"(?i)wininet|winhttp", r.get("Notes", "")):
            continue  # Windows' own HTTP stack: every Windows application shares it
        out.append(
            {"field": "ja4", "match": "exact", "value": ja4, "family": app,
             "source": "FoxIO JA4+ mapping",
             "reference": "https://github.com/FoxIO-LLC/ja4/blob/main/ja4plus-mapping.csv",
             "severity": "low", "confidence": 0.3, "techniques": C2_TLS}
        )  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sslbl-ja3", type=Path, required=True, help="abuse.ch ja3_fingerprints.csv")
    ap.add_argument("--ja4-mapping", type=Path, required=True, help="FoxIO ja4plus-mapping.csv")
    ap.add_argument(
        "--sslbl-copy",
        default="github.com/BranislavDubec/Analyza-skodlivej-sifrovaneho-sietovej-prevadzky"
        " @2ad7aa4ea20de222ae3ccfb111052a501d0cfa13 ja3_fingerprints.csv",
        help="where the SSLBL file given came from (recorded in the list)",
    )
    ap.add_argument(
        "--ja4-copy",
        default="github.com/FoxIO-LLC/ja4 @f1fea2e2313b5fd57de313fd5882eeacb3bd22ef",
        help="where the JA4+ mapping given came from (recorded in the list)",
    )
    args = ap.parse_args()

    entries, cert_source = certificates(args.data)
    ja3 = parse_sslbl_ja3(
        args.sslbl_ja3.read_text(encoding="utf-8"), str(args.sslbl_ja3),
        source="abuse.ch SSLBL JA3",
    )  # fmt: skip
    ja4 = ja4_entries(args.ja4_mapping)
    hassh = [
        {"field": "hassh", "match": "exact", "value": h, "family": what, "source": HASSH_README,
         "reference": HASSH_URL, "severity": "low", "confidence": 0.2, "techniques": ["T1021.004"]}
        for h, what in HASSH
    ]  # fmt: skip
    checked = [_check(e, f"entry {i + 1}") for i, e in enumerate(entries + ja3 + ja4 + hassh)]
    doc = {
        "generated_by": "scripts/build_fingerprints.py",
        "sources": [
            cert_source,
            {
                "id": "sslbl-ja3",
                "what": f"{len(ja3)} JA3 fingerprints of malware TLS clients",
                "where": "https://sslbl.abuse.ch/blacklist/ja3_fingerprints.csv",
                "copy": args.sslbl_copy,
                "input_sha256": _sha256(args.sslbl_ja3),
                "licence": "abuse.ch terms of use (https://abuse.ch/terms-of-use/)",
            },
            {
                "id": "foxio-ja4",
                "what": f"{len(ja4)} JA4 fingerprints of malware TLS clients",
                "where": "https://github.com/FoxIO-LLC/ja4/blob/main/ja4plus-mapping.csv",
                "copy": args.ja4_copy,
                "input_sha256": _sha256(args.ja4_mapping),
                "licence": "JA4 (TLS client): BSD-3-Clause, FoxIO",
            },
            {
                "id": "salesforce-hassh",
                "what": f"{len(hassh)} HASSH of offensive-tool SSH clients",
                "where": "https://github.com/salesforce/hassh (README, examples)",
                "licence": "BSD-3-Clause (Salesforce)",
            },
        ],
        "entries": checked,
    }
    json.dump(doc, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
