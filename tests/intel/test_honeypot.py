"""Honeypot logs imported as intel: every attacker an indicator, confidence by what it did."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from mamori.intel.store import detect_format, import_files, read


def test_cowrie_log_becomes_indicators(data_dir: Path, tmp_path: Path) -> None:
    log = data_dir / "logs/cowrie-honeypot/cowrie.json.2018-05-06"
    assert detect_format(log) == "honeypot"
    [summary] = import_files([log], tmp_path / "store", tlp="amber")
    ind = read(tmp_path / "store")
    events = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    sources = {e["src_ip"] for e in events if "src_ip" in e}
    assert set(ind.filter(pl.col("type") == "ip")["value"]) == sources
    assert summary.indicators == ind.height and (ind["tlp"] == "amber").all()
    typed = {e["src_ip"] for e in events if e["eventid"] == "cowrie.command.input"}
    high = set(ind.filter(pl.col("confidence") == 90)["value"])
    assert typed and typed <= high
    assert all("honeypot" in labels for labels in ind["labels"])
    assert (ind["valid_until"] > ind["valid_from"]).all()


def test_download_urls_and_hashes(tmp_path: Path) -> None:
    log = tmp_path / "cowrie.json"
    lines = [
        {"eventid": "cowrie.session.file_download", "timestamp": "2024-05-01T10:00:02Z",
         "src_ip": "198.51.100.7", "session": "s1", "url": "http://dl.evil.example/bot.sh",
         "shasum": "ab" * 32},
    ]  # fmt: skip
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    import_files([log], tmp_path / "store")
    ind = read(tmp_path / "store")
    assert dict(zip(ind["type"], ind["value"], strict=True)) == {
        "ip": "198.51.100.7",
        "url": "dl.evil.example/bot.sh",  # the store keeps URLs without their scheme
        "sha256": "ab" * 32,
    }
