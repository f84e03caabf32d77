"""The compiled conn.log text columns say exactly what the readable definitions say.

Addresses against Python's ``ipaddress`` (IPv6 zero-run compression is where hand-written
formatters go wrong), uids against the uid recipe written with Python integers, networks against
``ipaddress`` membership.
"""

from __future__ import annotations

import hashlib
import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.conn_columns import addr_array, in_table, network_table, uid_array

M64 = (1 << 64) - 1
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _split(value: int) -> tuple[int, int]:
    """An address as the tracker holds it: two int64 halves (bit patterns)."""
    hi, lo = value >> 64, value & M64
    return (hi - (1 << 64) if hi >> 63 else hi), (lo - (1 << 64) if lo >> 63 else lo)


# Addresses rich in zero groups (runs of every length and position) and IPv4-mapped ones.
_groups = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC, 0x10]), min_size=8, max_size=8)
_v6 = _groups.map(lambda g: sum(v << (16 * (7 - k)) for k, v in enumerate(g)))
_addr = st.one_of(
    _v6,
    st.integers(0, (1 << 128) - 1),
    st.integers(0, (1 << 32) - 1).map(lambda v: (0xFFFF << 32) | v),
    # IPv4 next to the edges of the networks below (a /16 partly inside is tested exactly).
    st.sampled_from([0x0A000000, 0xC0A80100, 0xC0A80200, 0x01020304, 0x64400000, 0xE0000000])
    .flatmap(lambda b: st.integers(b - 300, b + 300))
    .map(lambda v: (0xFFFF << 32) | v),
)


def _expected(value: int) -> str:
    if value >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(value))


@settings(max_examples=300, deadline=None)
@given(st.lists(_addr, max_size=40))
def test_addresses_print_as_python_prints_them(values: list[int]) -> None:
    halves = [_split(v) for v in values]
    hi = np.array([h for h, _ in halves], np.int64)
    lo = np.array([low for _, low in halves], np.int64)
    assert addr_array(hi, lo).to_pylist() == [_expected(v) for v in values]


def _uid(seed: bytes, number: int) -> str:
    h0 = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "little")
    x = (number & M64) ^ h0
    out = "C"
    for r, salt in enumerate((0x9E3779B97F4A7C15, 0xD1B54A32D192ED03)):
        z = (x + salt) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        z ^= z >> 31
        for _ in range(9 if r == 0 else 8):
            out += B62[z % 62]
            z //= 62
    return out


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=16), st.lists(st.integers(0, 1 << 62), max_size=30))
def test_uids_follow_the_recipe(seed: bytes, numbers: list[int]) -> None:
    got = uid_array(seed, np.array(numbers, np.int64)).to_pylist()
    assert got == [_uid(seed, n) for n in numbers]
    assert all(len(u) == 18 for u in got)


@settings(max_examples=200, deadline=None)
@given(st.lists(_addr, min_size=1, max_size=30))
def test_local_networks_as_ipaddress_decides(values: list[int]) -> None:
    # IPv4 networks shorter than /8 span several first octets (the compiled test buckets them).
    nets = ("10.0.0.0/8", "192.168.1.0/24", "100.64.0.0/10", "0.0.0.0/4", "224.0.0.0/3")
    nets += ("fe80::/10", "2001:db8::/32", "1.2.3.4/32", "::ffff:0:0/100", "::/0")
    for chosen in (nets[:8], nets[:9], nets):
        table = network_table(chosen)
        halves = [_split(v) for v in values]
        hi = np.array([h for h, _ in halves], np.int64)
        lo = np.array([low for _, low in halves], np.int64)
        parsed = [ipaddress.ip_network(n) for n in chosen]

        def inside(v: int, parsed: list = parsed) -> bool:  # type: ignore[type-arg]
            if v >> 32 == 0xFFFF:
                a: ipaddress._BaseAddress = ipaddress.IPv4Address(v & 0xFFFFFFFF)
            else:
                a = ipaddress.IPv6Address(v)
            return any(a.version == n.version and a in n for n in parsed)

        expect = [inside(v) for v in values]
        if "::/0" in chosen:  # the whole IPv6 space holds the IPv4-mapped range too
            expect = [True] * len(values)
        assert in_table(hi, lo, table).tolist() == expect
