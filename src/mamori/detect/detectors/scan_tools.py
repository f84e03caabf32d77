"""Scanning and attack tools that name themselves in their HTTP User-Agent: Nmap's scripting
engine, masscan, ZGrab, sqlmap, Nikto, Nuclei, WPScan, directory brute-forcers and the
commercial vulnerability scanners (ATT&CK T1595.002 Vulnerability Scanning; the port scanners
also T1046 Network Service Discovery, the injection tools also T1190).

Why a list of names, not behaviour: these tools announce themselves by default, and a scan of a
single web port (``nmap -p 80 -A``: one open port, a dozen script probes, the shared trace) is
too small for any behavioural scan rule (``scan.trw`` sees one answered first contact, which is
what a client is). The User-Agent is the tool's default string, which an operator can change,
so the absence of an alert proves nothing; its presence is a tool the source ran. Suricata's
``ET SCAN`` rules work the same way. One alert per source, tool and window, naming the servers
it touched: medium, as scanning is reconnaissance, not yet an intrusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "scan.tools"
PORT_SCAN = ("T1046", "T1595.002")
VULN_SCAN = ("T1595.002",)
INJECTION = ("T1595.002", "T1190")

# tool -> (regular expression on the lower-cased User-Agent, ATT&CK techniques); each
# expression is the tool's default User-Agent or the part of it no browser or library sends.
TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Nmap": (r"nmap scripting engine|\bnmap\b", PORT_SCAN),
    "masscan": (r"\bmasscan\b", PORT_SCAN),
    "ZGrab": (r"\bzgrab\b", PORT_SCAN),
    "sqlmap": (r"\bsqlmap\b", INJECTION),
    "Havij": (r"\bhavij\b", INJECTION),
    "commix": (r"\bcommix\b", INJECTION),
    "XSSer": (r"\bxsser\b", INJECTION),
    "Nikto": (r"\bnikto\b", VULN_SCAN),
    "Nuclei": (r"\bnuclei\b.*projectdiscovery|projectdiscovery/nuclei", VULN_SCAN),
    "WPScan": (r"\bwpscan\b", VULN_SCAN),
    "DirBuster": (r"\bdirbuster\b", VULN_SCAN),
    "gobuster": (r"\bgobuster\b", VULN_SCAN),
    "feroxbuster": (r"\bferoxbuster\b", VULN_SCAN),
    "ffuf": (r"fuzz faster u fool", VULN_SCAN),
    "wfuzz": (r"\bwfuzz\b", VULN_SCAN),
    "Acunetix": (r"\bacunetix\b", VULN_SCAN),
    "Netsparker": (r"\bnetsparker\b", VULN_SCAN),
    "Nessus": (r"\bnessus\b", VULN_SCAN),
    "OpenVAS": (r"\bopenvas\b", VULN_SCAN),
    "w3af": (r"\bw3af\b", VULN_SCAN),
    "Arachni": (r"\barachni\b", VULN_SCAN),
    "skipfish": (r"\bskipfish\b", VULN_SCAN),
    "WhatWeb": (r"\bwhatweb\b", VULN_SCAN),
    "ZmEu": (r"\bzmeu\b", VULN_SCAN),
    "Morfeus": (r"morfeus fucking scanner", VULN_SCAN),
    "Hydra": (r"\(hydra\)", ("T1110",)),
}


@dataclass(frozen=True)
class ScanToolsParams(Params):
    # One alert per source and tool per window; repeats inside it are merged.
    window_minutes: float = 60.0


def _tool(user_agent: pl.Expr) -> pl.Expr:
    """The first tool whose expression matches the User-Agent (None for any other)."""
    ua = user_agent.fill_null("").str.to_lowercase()
    out: pl.Expr = pl.lit(None, pl.String)
    for name in reversed(TOOLS):
        out = pl.when(ua.str.contains(TOOLS[name][0])).then(pl.lit(name)).otherwise(out)
    return out


@detector(
    ID, reads="http", key=("orig_h",), attack=("T1595.002", "T1046", "T1190"),
    params=ScanToolsParams,
)  # fmt: skip
def scan_tools(http: pl.LazyFrame, p: ScanToolsParams) -> pl.LazyFrame:
    """Sources whose requests carry a scanning tool's own User-Agent."""
    found = (
        http.with_columns(tool=_tool(pl.col("user_agent")))
        .filter(pl.col("tool").is_not_null())
        .sort("ts", "uid")
    )
    hits = threshold(
        found,
        key=("orig_h", "tool"),
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(
            pl.col("resp_h").unique().sort().alias("targets"),
            pl.col("user_agent").first().alias("agent"),
        ),
    )
    techniques = pl.col("tool").replace_strict(
        {name: list(t) for name, (_, t) in TOOLS.items()}, return_dtype=pl.List(pl.String)
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=techniques,
        severity="medium",
        confidence=0.9,
        summary=pl.format(
            "{} ran {} against {} server(s) ({}): {} request(s), User-Agent {}",
            "orig_h",
            "tool",
            pl.col("targets").list.len(),
            pl.col("targets").list.head(5).list.join(", "),
            "n",
            pl.col("agent").str.slice(0, 120),
        ),
        src=pl.col("orig_h"),
        dst=pl.when(pl.col("targets").list.len() == 1)
        .then(pl.col("targets").list.first())
        .otherwise(pl.lit(None, pl.String)),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="http",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", "orig_h", "tool"),
    )
