"""Honeypot logs as threat intelligence: who attacked the honeypot, and what it tried to fetch.

A honeypot has no legitimate users, so every source address in its log is an attacker; the URLs it
tried to download from and the files' SHA-256 are malware infrastructure. Imported as indicators,
they are matched against the network's own traffic (an attacker of the honeypot talking to a real
server) and can be shared with partners. Confidence follows what the source did: commands or
downloads are certain hostility, a login attempt strong, a bare connection a scanner.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from mamori.intel.schema import ImportResult, Indicator, IntelFormatError, normalise

VALID_FOR = timedelta(days=30)  # addresses are reassigned: a sighting ages out


def is_honeypot_log(path: Path) -> bool:
    from mamori.sensors.registry import read_head, registered_sensors

    try:
        return registered_sensors()["cowrie"].sniff(read_head(path))
    except OSError:
        return False


def load(path: Path, default_tlp: str) -> ImportResult:
    from mamori.sensors.logingest import ingest_log
    from mamori.sensors.registry import registered_sensors

    frames: list[pl.DataFrame] = []
    stats = ingest_log(
        path,
        registered_sensors()["cowrie"],
        lambda table, batch: frames.append(pl.from_arrow(batch)),  # type: ignore[arg-type]
    )
    if stats.error:
        raise IntelFormatError(stats.error)
    result = ImportResult(Path(path), "honeypot", [])
    result.skipped.extend((f"record {w}", "unreadable") for w in stats.warnings)
    if not frames:
        return result
    events = pl.concat(frames)
    per_source = (
        events.filter(pl.col("src_ip").is_not_null())
        .group_by("src_ip")
        .agg(
            first=pl.col("ts").min(),
            last=pl.col("ts").max(),
            logins=pl.col("event").str.starts_with("cowrie.login.").sum(),
            commands=(pl.col("event") == "cowrie.command.input").sum(),
            urls=pl.col("url").drop_nulls().unique().sort(),
            hashes=pl.col("shasum").drop_nulls().unique().sort(),
        )
        .sort("src_ip")
    )
    for row in per_source.iter_rows(named=True):
        ip = normalise("ip", row["src_ip"])
        if ip is None:
            result.skipped.append((row["src_ip"], "not an IP address"))
            continue
        did = []
        if row["logins"]:
            did.append("brute-force")
        if row["commands"]:
            did.append("shell-commands")
        if row["urls"]:
            did.append("malware-download")
        confidence = 90 if row["commands"] or row["urls"] else 70 if row["logins"] else 50
        common = {
            "object_id": f"honeypot:{ip[1]}",
            "tlp": default_tlp,
            "valid_from": row["first"],
            "valid_until": row["last"] + VALID_FOR,
        }
        result.indicators.append(
            Indicator(
                type=ip[0],
                value=ip[1],
                name=f"honeypot attacker {ip[1]}",
                confidence=confidence,
                labels=["honeypot", "malicious-activity", *did],
                **common,  # type: ignore[arg-type]
            )
        )
        fetched = [
            ("url", u, f"download attempted by {ip[1]}", "malware-download") for u in row["urls"]
        ]
        fetched += [("sha256", h, f"file fetched by {ip[1]}", "malware") for h in row["hashes"]]
        for kind, raw, name, label in fetched:
            found = normalise(kind, raw)
            if found:
                result.indicators.append(
                    Indicator(
                        type=found[0],
                        value=found[1],
                        name=name,
                        confidence=80,
                        labels=["honeypot", label],
                        **common,  # type: ignore[arg-type]
                    )
                )
    return result
