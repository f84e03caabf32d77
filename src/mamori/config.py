"""One settings object with embedded defaults.

Defaults are chosen to match a stock Zeek run (timeouts, local networks), because analysts compare
mamori's records with Zeek's; a TOML file or ``MAMORI_*`` variables override them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

# Zeek's Site::private_address_space (scripts/base/utils/site.zeek), which stock Zeek treats as local
# because Site::private_address_space_is_local defaults to T (IANA special-purpose ranges and their
# 6to4 images).
PRIVATE_ADDRESS_SPACE: tuple[str, ...] = (
    "0.0.0.0/8",
    "2002::/24",
    "10.0.0.0/8",
    "2002:a00::/24",
    "100.64.0.0/10",
    "2002:6440::/26",
    "127.0.0.0/8",
    "2002:7f00::/24",
    "169.254.0.0/16",
    "2002:a9fe::/32",
    "172.16.0.0/12",
    "2002:ac10::/28",
    "192.0.0.0/24",
    "2002:c000::/40",
    "192.0.2.0/24",
    "2002:c000:200::/40",
    "192.168.0.0/16",
    "2002:c0a8::/32",
    "198.18.0.0/15",
    "2002:c612::/31",
    "198.51.100.0/24",
    "2002:c633:6400::/40",
    "203.0.113.0/24",
    "2002:cb00:7100::/40",
    "224.0.0.0/24",
    "2002:e000::/40",
    "239.0.0.0/8",
    "2002:ef00::/24",
    "240.0.0.0/4",
    "2002:f000::/20",
    "255.255.255.255/32",
    "2002:ffff:ffff::/48",
    "::/128",
    "::1/128",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:2::/48",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run can tune. Field comments are the user-facing help."""

    # Networks whose addresses count as local for conn.log's local_orig/local_resp.
    local_nets: tuple[str, ...] = PRIVATE_ADDRESS_SPACE
    # Zeek's tcp_inactivity_timeout, udp_inactivity_timeout, icmp_inactivity_timeout (seconds).
    tcp_inactivity_timeout: float = 300.0
    udp_inactivity_timeout: float = 60.0
    icmp_inactivity_timeout: float = 60.0
    unknown_ip_inactivity_timeout: float = 60.0
    # Bytes of capture read per batch, in each worker process: bounds memory whatever the
    # capture's size.
    batch_bytes: int = 16 * 1024 * 1024
    # Processes that share a capture's connections (0: one per usable core). Each reads the whole
    # capture and tracks only its shard of the connections.
    workers: int = 0
    # Captures smaller than this are read by one process: starting a worker costs about a second.
    parallel_min_bytes: int = 64 * 1024 * 1024
    # Names hosts have in logs, and their addresses ("pc01.example.corp=10.0.0.5"): a Windows
    # computer or syslog host name and the IP the network records know it by are one entity, so
    # incidents join host and network evidence about it.
    host_addresses: tuple[str, ...] = ()
    # The zone syslog's RFC 3164 ("Mmm dd hh:mm:ss") timestamps are written in, an IANA name such as
    # "Europe/Berlin": they carry none. Other log times name their zone or are UTC.
    log_timezone: str = "UTC"
    # Parquet codec of the lake's files: snappy (fastest to write), or zstd for ~30 % smaller
    # files at ~7 % slower ingest; lz4, gzip, brotli and none also work.
    lake_compression: str = "snappy"
    # Where shared test data lives (tests and benchmarks only).
    data_dir: Path = field(default=Path("../shared/data"))


def load_settings(path: Path | None = None) -> Settings:
    """Embedded defaults, then a TOML file, then ``MAMORI_*`` environment variables."""
    values: dict[str, object] = {}
    if path is not None:
        with path.open("rb") as fh:
            values.update(tomllib.load(fh))
    for f in fields(Settings):
        env = os.environ.get(f"MAMORI_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    base = Settings()
    coerced: dict[str, object] = {}
    for f in fields(Settings):
        if f.name not in values:
            continue
        raw = values[f.name]
        current = getattr(base, f.name)
        if isinstance(current, tuple):
            coerced[f.name] = tuple(raw.split(",")) if isinstance(raw, str) else tuple(raw)  # type: ignore[arg-type]
        elif isinstance(current, Path):
            coerced[f.name] = Path(str(raw))
        else:
            coerced[f.name] = type(current)(raw)
    return replace(base, **coerced)  # type: ignore[arg-type]
