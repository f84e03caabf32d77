"""Reading decision targets: addresses, networks and domain names, each in one canonical form.

The guard compares targets with protected assets, so every spelling of the same thing must compare
equal: ``192.0.2.1`` and ``192.0.2.1/32``, ``Example.ORG.`` and ``example.org``, an IPv4 address and
the IPv6 forms that carry it (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``). A target that cannot be read is never guessed at: it raises ``TargetError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes whose addresses carry an IPv4 address: (prefix, bit offset of the IPv4 address).
_EMBEDDING: tuple[tuple[ipaddress.IPv6Network, int], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), 96),  # IPv4-mapped
    (ipaddress.IPv6Network("64:ff9b::/96"), 96),  # NAT64 well-known prefix (RFC 6052)
    (ipaddress.IPv6Network("2002::/16"), 16),  # 6to4 (RFC 3056): bits 16..47
)

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class TargetError(ValueError):
    """A target that is neither a usable address/network nor a usable domain name."""


@dataclass(frozen=True)
class IpTarget:
    """A network in canonical text, with every form to compare against protected ranges."""

    text: str  # canonical: an address without /len for one host, else network/len
    network: Network
    forms: tuple[Network, ...]  # the network itself plus its IPv4 or IPv6 equivalents

    @property
    def is_host(self) -> bool:
        return self.network.num_addresses == 1


@dataclass(frozen=True)
class DomainTarget:
    text: str  # lower case, no trailing dot, IDNA (xn--) for non-ASCII names
    labels: tuple[str, ...]


def parse_network(text: str) -> IpTarget:
    """An address or CIDR; host bits set are cleared (``10.0.0.5/8`` is ``10.0.0.0/8``) so the
    guard judges the network that an enforcement point would actually block."""
    if not isinstance(text, str) or not text or text != text.strip() or "%" in text:
        raise TargetError(f"{text!r} is not an IP address or network")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise TargetError(f"{text!r} is not an IP address or network") from e
    canon = str(net.network_address) if net.num_addresses == 1 else net.with_prefixlen
    return IpTarget(canon, net, equivalents(net))


def equivalents(net: Network) -> tuple[Network, ...]:
    """``net`` and the same addresses in the other family's embeddings (IPv4 <-> IPv6)."""
    out: list[Network] = [net]
    if isinstance(net, ipaddress.IPv4Network):
        for prefix, offset in _EMBEDDING:
            base = int(prefix.network_address) | (int(net.network_address) << (128 - offset - 32))
            out.append(ipaddress.IPv6Network((base, offset + net.prefixlen)))
        return tuple(out)
    for prefix, offset in _EMBEDDING:
        if net.prefixlen >= prefix.prefixlen and net.subnet_of(prefix):
            # the part of the embedded IPv4 address this network fixes
            v4_len = min(32, net.prefixlen - offset)
            v4 = (int(net.network_address) >> (128 - offset - 32)) & 0xFFFFFFFF
            out.append(ipaddress.IPv4Network((v4, v4_len), strict=False))
        elif prefix.subnet_of(net):  # e.g. ::/0 or 2000::/3 contains the whole embedding
            out.append(ipaddress.IPv4Network("0.0.0.0/0"))
    return tuple(dict.fromkeys(out))


def looks_like_ip(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def parse_domain(text: str) -> DomainTarget:
    """A domain name: case and one trailing dot ignored, ``*.`` dropped (the guard then judges the
    whole zone, which is never narrower), non-ASCII names in their IDNA form."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise TargetError(f"{text!r} is not a domain name")
    name = text.lower()
    if name.startswith("*."):
        name = name[2:]
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise TargetError(f"{text!r} is not a domain name ({e})") from e
    labels = tuple(name.split("."))
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise TargetError(f"{text!r} is not a domain name")
    if looks_like_ip(name):
        raise TargetError(f"{text!r} is an address, not a domain name")
    return DomainTarget(name, labels)
