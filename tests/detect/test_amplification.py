"""UDP reflection per victim: the DNS and SNMP attack captures, a golden case, what must stay quiet
(a resolver that asked, one-way legit replies), unflipped ports, and key sufficiency."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from detect.test_ddos import T0, capture, conn, golden, row, run
from mamori.detect.detectors.amplification import responses


def reflected(
    victim: str, port: int, n: int = 100, start: int = 0, flipped: bool = True
) -> list[dict[str, Any]]:
    """``n`` unsolicited 1.4 kB responses from 25 reflectors on ``port`` to ``victim``."""
    out = []
    for i in range(start, start + n):
        refl = f"100.64.{i % 25}.{port % 200}"
        if (
            flipped
        ):  # Zeek flips a reply from a likely server port: victim is the originator, ``^d``
            out.append(row(i, orig_h=victim, orig_p=8080, resp_h=refl, resp_p=port, proto="udp", history="^d",
                           conn_state="SHR", orig_pkts=0, orig_ip_bytes=0, resp_pkts=3, resp_ip_bytes=4200))  # fmt: skip
        else:  # a port outside likely_server_ports: no flip, the reflector originates, ``D``
            out.append(row(i, orig_h=refl, orig_p=port, resp_h=victim, resp_p=8080, proto="udp", history="D",
                           orig_pkts=3, orig_ip_bytes=4200))  # fmt: skip
    return out


def test_dns_amplification_capture(data_dir: Path) -> None:
    alerts = run(capture(data_dir, "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap"))
    assert alerts["detector"].to_list() == ["ddos.amplification"]
    a = alerts.row(0, named=True)
    assert a["dst"] == "10.10.10.10" and a["techniques"] == ["T1498.002"] and "DNS" in a["summary"]


def test_snmp_reflection_capture(data_dir: Path) -> None:
    """Also no backscatter: the ICMP unreachables in it are refusals of the same attack."""
    alerts = run(capture(data_dir, "pcaps-ddos-stopddos/amp.UDP.snmp.src161.pcapng"))
    assert alerts["detector"].to_list() == ["ddos.amplification"]
    a = alerts.row(0, named=True)
    assert a["dst"] == "10.10.10.10" and "SNMP" in a["summary"] and a["severity"] == "critical"


def test_golden_case() -> None:
    golden("amplification_ntp", ["ddos.amplification"])


def test_unflipped_memcached_reflection() -> None:
    alerts = run(conn(reflected("203.0.113.40", 11211, flipped=False)))
    assert (
        alerts["detector"].to_list() == ["ddos.amplification"]
        and "memcached" in alerts["summary"][0]
    )
    assert alerts["dst"].to_list() == ["203.0.113.40"]


def test_recursive_resolver_is_quiet() -> None:
    """A resolver hears from many servers, but it asked each one and got ~5x back."""
    rows = [row(i, orig_h="192.0.2.53", resp_h=f"100.70.{i % 300}.1", resp_p=53, proto="udp", history="Dd",
                conn_state="SF", orig_pkts=1, orig_ip_bytes=90, resp_pkts=1, resp_ip_bytes=450) for i in range(3000)]  # fmt: skip
    assert run(conn(rows)).height == 0


def test_key_is_sufficient() -> None:
    full = conn(reflected("203.0.113.20", 123) + reflected("203.0.113.21", 1900, start=500, flipped=False)
                + reflected("203.0.113.22", 53, start=1000))  # fmt: skip
    everything = run(full, ["ddos.amplification"])
    keep = ["203.0.113.21", "203.0.113.22"]
    uids = (
        responses(full.lazy()).filter(pl.col("victim").is_in(keep)).select("uid").collect()["uid"]
    )
    subset = run(full.filter(pl.col("uid").is_in(uids.implode())), ["ddos.amplification"])
    assert everything.height == 3 and subset.equals(everything.filter(pl.col("dst").is_in(keep)))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 80),
    port=st.sampled_from([53, 123, 161, 389, 19]),
)
def test_row_order_and_unrelated_traffic_do_not_change_alerts(seed: int, n: int, port: int) -> None:
    attack = conn(reflected("203.0.113.20", port))
    benign = [row(10_000 + i, ts=T0 + timedelta(milliseconds=7 * i, microseconds=3), orig_h=f"192.168.{i % 9}.2",
                  resp_h=f"100.64.{i % 25}.{port % 200}", resp_p=port, proto="udp", history="Dd", orig_pkts=1,
                  orig_ip_bytes=80, resp_pkts=1, resp_ip_bytes=300) for i in range(n)]  # fmt: skip
    expected = run(attack)
    mixed = pl.concat([attack, conn(benign)]) if benign else attack
    got = run(mixed.sample(fraction=1.0, shuffle=True, seed=seed)).filter(
        pl.col("dst") == "203.0.113.20"
    )
    assert expected.height == 1 and got.equals(expected)
