"""Loaders turning the shared DNS-tunnel lists into rows of the ``dns`` table (test helpers).

The lists carry names (and, for BoneLee, the raw DNS message) but no Zeek log; each is replayed as
one client's queries so the detector sees them the way it would see a live client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

DNS = {
    "ts": pl.Datetime("us", "UTC"),
    "uid": pl.String,
    "orig_h": pl.String,
    "resp_h": pl.String,
    "query": pl.String,
    "qtype_name": pl.String,
    "rcode_name": pl.String,
}
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 10: "NULL", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(names: list[str], client: str, qtypes: list[str] | None = None, gap_s: float = 1.0,
          rcode: str = "NOERROR", tag: str = "D") -> pl.DataFrame:  # fmt: skip
    """Rows of the dns table: one query per name from ``client``, ``gap_s`` seconds apart."""
    return pl.DataFrame(
        {
            "ts": [T0 + timedelta(seconds=i * gap_s) for i in range(len(names))],
            "uid": [f"{tag}{client}-{i}" for i in range(len(names))],
            "orig_h": client,
            "resp_h": "192.0.2.53",
            "query": names,
            "qtype_name": qtypes or ["A"] * len(names),
            "rcode_name": rcode,
        },
        schema=DNS,
    )


def _question(payload_hex: str) -> tuple[str, str] | None:
    """(qname, qtype) from a raw DNS message in hex (the first question)."""
    try:
        msg = bytes.fromhex(payload_hex)
    except ValueError:
        return None
    i, labels = 12, []
    while i < len(msg) and msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1 : i + 1 + n].decode("latin-1"))
        i += 1 + n
    if i + 3 > len(msg):
        return None
    qtype = int.from_bytes(msg[i + 1 : i + 3], "big")
    return ".".join(labels), QTYPES.get(qtype, str(qtype))


def bonelee(path: Path) -> tuple[list[str], list[str]]:
    """Query names and types of one BoneLee sample file (the raw message is the hex field)."""
    names, types = [], []
    for line in path.read_text(errors="replace").splitlines():
        hexes = [
            f for f in line.split("^") if len(f) > 24 and all(c in "0123456789abcdef" for c in f)
        ]
        q = _question(hexes[0]) if hexes else None
        if q and q[0]:
            names.append(q[0])
            types.append(q[1])
    return names, types


def netrack(path: Path) -> list[str]:
    return pl.read_csv(path)["qname"].to_list()
