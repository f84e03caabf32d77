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
    assert parse_network("2001:db8::1/32").text == "2001:db8::/32"
    assert parse_network("::ffff:192.0.2.9").text == "::ffff:192.0.2.9"


@given(st.integers(0, 2**128 - 1), st.integers(0, 128), st.booleans())
def test_parsing_agrees_with_ipaddress(addr: int, plen: int, v4: bool) -> None:
    net = ipaddress.ip_network((addr % 2**32, plen % 33) if v4 else (addr, plen), strict=False)
    for text in (f"{net.network_address}/{net.prefixlen}", str(net.network_address)):
        got = parse_network(text)
        want = ipaddress.ip_network(text, strict=False)
        assert got.network == want
        assert ipaddress.ip_network(got.text, strict=True) == want


@pytest.mark.parametrize(
    "bad",
    ["", " 1.2.3.4", "1.2.3.4/33", "fe80::1%eth0", "1.2.3", "x", "01.2.3.4", "1.2.3.4/+8",
     "1.2.3.4/ 8", "1.2.3.4/", "1.2.3.4/8/8", "::1/129", "1.2.3.4/٣"],
)  # fmt: skip
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
        forms = parse_network(text).forms
        assert any((f.version, f.prefixlen) == (4, 0) for f in forms), text


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
