#!/usr/bin/env python3
"""Generate ``src/mamori/correlate/attack.json`` from MITRE's ATT&CK STIX data in the shared folder.

mamori ships only what correlation needs: each Enterprise technique's name and tactics, and the
tactics in kill-chain order. Run it again when the shared ATT&CK data is updated:

    python scripts/gen_attack.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "mamori" / "correlate" / "attack.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    base = args.data / "threat-intel" / "mitre-attack-cti" / "enterprise-attack"
    techniques: dict[str, dict[str, object]] = {}
    for path in sorted((base / "attack-pattern").glob("*.json")):
        for obj in json.loads(path.read_text())["objects"]:
            if (
                obj.get("type") != "attack-pattern"
                or obj.get("revoked")
                or obj.get("x_mitre_deprecated")
            ):
                continue
            ext = next(
                (
                    r
                    for r in obj.get("external_references", [])
                    if r.get("source_name") == "mitre-attack"
                ),
                None,
            )
            if not ext:
                continue
            tactics = [
                p["phase_name"]
                for p in obj.get("kill_chain_phases", [])
                if p.get("kill_chain_name") == "mitre-attack"
            ]
            techniques[ext["external_id"]] = {"name": obj["name"], "tactics": tactics}
    order: list[str] = []
    matrix_dir = base / "x-mitre-matrix"
    tactic_dir = base / "x-mitre-tactic"
    shortname = {}
    for path in sorted(tactic_dir.glob("*.json")):
        for obj in json.loads(path.read_text())["objects"]:
            if obj.get("type") == "x-mitre-tactic":
                shortname[obj["id"]] = obj["x_mitre_shortname"]
    for path in sorted(matrix_dir.glob("*.json")):
        for obj in json.loads(path.read_text())["objects"]:
            if obj.get("type") == "x-mitre-matrix":
                order = [shortname[t] for t in obj["tactic_refs"] if t in shortname]
    out = {
        "source": "MITRE ATT&CK Enterprise (STIX 2.1, mitre/cti); (c) The MITRE Corporation, see LICENSE.txt there",
        "tactics": order,
        "techniques": dict(sorted(techniques.items())),
    }
    OUT.write_text(json.dumps(out, indent=0, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(techniques)} techniques, {len(order)} tactics)")


if __name__ == "__main__":
    main()
