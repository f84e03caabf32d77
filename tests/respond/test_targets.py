"""Targets: one canonical spelling each, and every IPv6 form that carries an IPv4 address."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.targets import TargetError, equivalents, parse_domain, parse_network


def test_hosts_lose_their_length_and_networks_their_host_bits() -> None:
    assert parse_network("192.0.2.1/32").text == "192.0.2.1"
    assert parse_network("192.0.2.1/24").text == "192.0.2.0/24"
    assert parse_network("2001:DB8::1").text == "2001:db8::1"


@pytest.mark.parametrize("bad", ["", " 1.2.3.4", "1.2.3.4/33", "fe80::1%eth0", "1.2.3", "x"])
def test_unreadable_networks_raise(bad: str) -> None:
    with pytest.raises(TargetError):
        parse_network(bad)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_ipv4_networks_are_found_again_in_each_ipv6_embedding(addr: int, plen: int) -> None:
    net = ipaddress.IPv4Network((addr, plen), strict=False)
    forms = equivalents(net)
    v6 = [f for f in forms if f.version == 6]
    assert len(v6) == 3  # mapped, NAT64, 6to4
    for f in v6:  # and reading each back gives the IPv4 network again
        assert net in equivalents(f)
    mapped = next(f for f in v6 if f.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96")))
    assert mapped.network_address.ipv4_mapped == net.network_address


def test_ipv6_supernets_of_an_embedding_cover_all_of_ipv4() -> None:
    for text in ("::/0", "2000::/3", "::ffff:0:0/96", "2002::/16"):
        assert ipaddress.IPv4Network("0.0.0.0/0") in parse_network(text).forms


@pytest.mark.parametrize(
    ("given_", "canonical"),
    [
        ("Example.ORG.", "example.org"),
        ("*.example.org", "example.org"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("_dmarc.example.org", "_dmarc.example.org"),
    ],
)
def test_domains_are_canonical(given_: str, canonical: str) -> None:
    assert parse_domain(given_).text == canonical


@pytest.mark.parametrize(
    "bad",
    ["", "a..b", "example.org..", "-a.com", "a b.com", "1.2.3.4", "a" * 64 + ".com", " x.org"],
)
def test_unreadable_domains_raise(bad: str) -> None:
    with pytest.raises(TargetError):
        parse_domain(bad)
