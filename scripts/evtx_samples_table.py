"""The labelled EVTX samples through ``mamori patrol``: what each one raises, against its label.

``evtx-attack-samples`` (sbousseaden's EVTX-ATTACK-SAMPLES) files each sample under an ATT&CK
tactic folder; ``index.tsv`` gives that label and a technique hint taken from the file name. Every
sample goes through the same patrol a user runs (``mamori.patrol.patrol``, the Python API behind
``mamori patrol FILE --params P.yaml``) with the Sigma detector pointed at SigmaHQ's windows rules,
and the table says which alerts came out (detector, Sigma rule titles, techniques) and whether any
alert's technique belongs to the labelled tactic (ATT&CK's technique -> tactic table, the one
incidents use), and, where the file name names a technique (``..._t1098``), whether that one was
found.

    python scripts/evtx_samples_table.py [--rules DIR] [--min-level low] [--write docs/sigma.md]

Without ``--write`` the section is printed; with it, the section "Labelled EVTX samples" of that
file is replaced (or appended), leaving the rest of the file as it is.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAMORI_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLES = SHARED / "evtx-attack-samples"
RULES = SHARED / "sigma" / "rules" / "windows"
HEADING = "## Labelled EVTX samples"
_TECHNIQUE = re.compile(r"(?i)(?<![a-z0-9])t(\d{4})(?:[._](\d{3}))?(?![0-9])")
_SIGMA = re.compile(r"^Sigma: (.*) \(\d+ event\(s\) on .*\)$")


@dataclass
class Sample:
    file: str
    label: str
    hint: str
    events: int
    detectors: list[str]
    titles: list[str]
    techniques: list[str]
    tactic: (
        str | None
    )  # the label as an ATT&CK tactic id (credential-access), None if it is not one
    tactic_found: bool
    hinted: list[str]  # techniques named in the file name
    hinted_found: bool
    problem: str | None
    kind: str = "evtx"  # the sensor that read it (``capture``: a pcap in the folder)


def tactic_of_label(label: str) -> str | None:
    """'Credential Access' -> 'credential-access' when ATT&CK has that tactic."""
    from mamori.correlate.attack import tactic_order

    name = re.sub(r"\s*\(.*\)$", "", label).strip().lower().replace(" ", "-")
    return name if name in tactic_order() else None


def run_sample(path: Path, label: str, hint: str, params: dict, settings: object) -> Sample:
    from mamori.correlate.attack import tactics_of
    from mamori.patrol import patrol
    from mamori.sensors.inputs import kind_of

    kind = kind_of(path)
    if kind is None:  # the folder holds a few non-EVTX files (.etl, a web server log)
        return Sample(
            str(path.relative_to(SAMPLES)), label, hint, 0, [], [], [], tactic_of_label(label),
            False, [], False, "no mamori sensor reads this format", kind="none",
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mamori-samples-") as tmp:
        result = patrol([path], Path(tmp) / "lake", Path(tmp) / "out", settings, params)  # type: ignore[arg-type]
    alerts = result.alerts
    log = result.logs[0] if result.logs else None
    techniques = sorted({t for ts in alerts["techniques"].to_list() for t in ts})
    titles = sorted(
        {m.group(1) for s in alerts["summary"].to_list() if (m := _SIGMA.match(s)) is not None}
    )
    detectors = sorted(set(alerts["detector"].to_list()) - {"sigma"})
    tactic = tactic_of_label(label)
    found_tactics = {t for tid in techniques for t in tactics_of(tid)}
    hinted = sorted(
        {
            f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")
            for m in _TECHNIQUE.finditer(hint)
        }
    )
    found = set(techniques) | {t.split(".")[0] for t in techniques}
    return Sample(
        file=str(path.relative_to(SAMPLES)),
        label=label,
        hint=hint,
        events=log.records if log else 0,
        detectors=detectors,
        titles=titles,
        techniques=techniques,
        tactic=tactic,
        tactic_found=tactic is not None and tactic in found_tactics,
        hinted=hinted,
        hinted_found=bool(hinted) and any(h in found or h.split(".")[0] in found for h in hinted),
        problem=(log.error or log.problem) if log else None,
        kind=kind,
    )


def _cell(items: list[str], limit: int = 6) -> str:
    shown = items[:limit]
    more = f" (+{len(items) - limit})" if len(items) > limit else ""
    return ("; ".join(shown) + more).replace("|", "\\|") or "-"


def section(samples: list[Sample], rules: Path, min_level: str, seconds: float) -> str:
    labelled = [s for s in samples if s.tactic]
    hinted = [s for s in samples if s.hinted]
    with_alerts = [s for s in samples if s.titles or s.detectors]
    per_label: dict[str, list[Sample]] = {}
    for s in samples:
        per_label.setdefault(s.label, []).append(s)
    lines = [
        HEADING,
        "",
        "Every file of `evtx-attack-samples` through `mamori patrol` (the Python API of"
        " `mamori patrol FILE --params P.yaml`) with the Sigma detector on SigmaHQ's"
        f" `rules/windows` (`min_level: {min_level}`) and every other detector at its defaults."
        " *Tactic found*: some alert's technique belongs to the sample's tactic folder (ATT&CK's"
        " technique -> tactic table; folders that are not tactics, like `AutomatedTestingTools`,"
        " are `n/a`). *Hint*: a technique the file name names (`..._t1098`) was found."
        f" Generated by `python scripts/evtx_samples_table.py --write docs/sigma.md`"
        f" ({len(samples)} samples in {seconds:.0f} s). Unlike the Sigma-only table of the section"
        " above, this is the whole patrol a user runs (every detector, one patrol per file), and"
        " it is scored against the samples' labels.",
        "",
        f"- samples: **{len(samples)}**, with at least one alert: **{len(with_alerts)}**"
        f" ({len(with_alerts) / max(1, len(samples)):.0%})",
        f"- labelled with a tactic: {len(labelled)}, the tactic found:"
        f" **{sum(s.tactic_found for s in labelled)}**"
        f" ({sum(s.tactic_found for s in labelled) / max(1, len(labelled)):.0%})",
        f"- file name names a technique: {len(hinted)}, that technique found:"
        f" **{sum(s.hinted_found for s in hinted)}**",
        f"- files not read or read with a problem: {sum(1 for s in samples if s.problem)}"
        f"; a capture, read as one: {sum(1 for s in samples if s.kind == 'capture')}",
        "",
        "The label is the folder the sample's author filed it under; rules tag what an event"
        " *shows*, so a lateral-movement sample caught by the service it installs on the target"
        " carries persistence and privilege-escalation techniques (T1543.003), and a credential"
        " dump by a renamed or unsigned tool defense-evasion ones. *Tactic found* is therefore a"
        " strict measure; *with alerts* says whether mamori raised anything at all.",
        "",
        "| tactic folder | samples | with alerts | tactic found |",
        "|---|---:|---:|---:|",
    ]
    for label, group in sorted(per_label.items()):
        found = str(sum(s.tactic_found for s in group)) if group[0].tactic else "n/a"
        lines.append(
            f"| {label} | {len(group)} | {sum(1 for s in group if s.titles or s.detectors)}"
            f" | {found} |"
        )
    lines += [
        "",
        "<details><summary>Per sample</summary>",
        "",
        "| sample | tactic label | events | alerts (Sigma rule titles; other detectors) |"
        " techniques | tactic found | hint |",
        "|---|---|---:|---|---|---|---|",
    ]
    for s in samples:
        alerts = _cell(s.titles) + (f"; **{', '.join(s.detectors)}**" if s.detectors else "")
        found = ("yes" if s.tactic_found else "no") if s.tactic else "n/a"
        hint = f"{', '.join(s.hinted)}: {'yes' if s.hinted_found else 'no'}" if s.hinted else ""
        name = s.file.replace("|", "\\|")
        if s.problem:
            name += f" ({s.problem})"
        elif s.kind not in ("evtx", "none"):
            name += f" (read as {s.kind})"
        lines.append(
            f"| {name} | {s.label} | {s.events} | {alerts} | {_cell(s.techniques, 8)} |"
            f" {found} | {hint} |"
        )
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_section(doc: Path, text: str) -> None:
    """Replace this script's section of ``doc`` (up to the next ``## `` heading), or append it."""
    current = doc.read_text() if doc.exists() else ""
    start = current.find(HEADING + "\n")
    if start < 0:
        sep = (
            ""
            if not current or current.endswith("\n\n")
            else ("\n" if current.endswith("\n") else "\n\n")
        )
        doc.write_text(current + sep + text)
        return
    end = current.find("\n## ", start + len(HEADING))
    rest = current[end + 1 :] if end >= 0 else ""
    doc.write_text(current[:start] + text + ("\n" + rest if rest else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=Path, default=RULES)
    ap.add_argument("--min-level", default="low")
    ap.add_argument("--limit", type=int, help="only the first N samples (a quick look)")
    ap.add_argument("--write", type=Path, help="replace the section in this Markdown file")
    args = ap.parse_args()

    logging.disable(logging.WARNING)
    from mamori.config import load_settings
    from mamori.detect.base import load_params

    if not args.rules.exists():
        print(f"error: no such rules folder: {args.rules}", file=sys.stderr)
        return 2
    params = load_params(None)
    params["sigma"] = type(params["sigma"])(rules=(str(args.rules),), min_level=args.min_level)
    settings = load_settings(None)
    with (SAMPLES / "index.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if args.limit:
        rows = rows[: args.limit]
    started = time.perf_counter()
    samples = []
    for i, row in enumerate(rows, 1):
        path = SAMPLES / row["file"]
        sample = run_sample(
            path,
            row["attck_tactic_folder(label)"],
            row["technique_hint_from_filename"],
            params,
            settings,
        )
        samples.append(sample)
        print(
            f"[{i}/{len(rows)}] {sample.file}: {len(sample.titles)} rule(s),"
            f" {len(sample.detectors)} other detector(s)",
            file=sys.stderr,
        )
    text = section(samples, args.rules, args.min_level, time.perf_counter() - started)
    if args.write:
        write_section(args.write, text)
    else:
        print(text)
    counts = Counter(s.tactic_found for s in samples if s.tactic)
    print(
        f"tactic found in {counts[True]} of {sum(counts.values())} labelled samples",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
