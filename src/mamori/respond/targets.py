"""Reading decision targets: addresses, networks and domain names, each in one canonical form.

The guard compares targets with protected assets, so every spelling of the same thing must compare
equal: ``192.0.2.1`` and ``192.0.2.1/32``, ``Example.ORG.`` and ``example.org``, an IPv4 address and
the IPv6 forms that carry it (IPv4-mapped ``::ffff:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4
``2002::/16``). A target that cannot be read is never guessed at: it raises ``TargetError``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import cached_property

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes whose addresses carry an IPv4 address: (prefix, its length, bit offset of the
# IPv4 address). Kept as integers: the guard judges tens of thousands of targets a second.
_EMBEDDING: tuple[tuple[int, int, int], ...] = (
    (0xFFFF << 32, 96, 96),  # IPv4-mapped ::ffff:0:0/96
    (0x0064FF9B << 96, 96, 96),  # NAT64 well-known prefix 64:ff9b::/96 (RFC 6052)
    (0x2002 << 112, 16, 16),  # 6to4 2002::/16 (RFC 3056): the IPv4 address in bits 16..47
)
_BITS = {4: 32, 6: 128}

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class TargetError(ValueError):
    """A target that is neither a usable address/network nor a usable domain name."""


@dataclass(frozen=True, slots=True)
class Span:
    """A network as integers: family, first and last address, prefix length."""

    version: int
    lo: int
    hi: int
    prefixlen: int

    @property
    def network(self) -> Network:
        if self.version == 4:
            return ipaddress.IPv4Network((self.lo, self.prefixlen))
        return ipaddress.IPv6Network((self.lo, self.prefixlen))

    def __str__(self) -> str:
        return str(self.network)


def _span(version: int, addr: int, plen: int) -> Span:
    host = (1 << (_BITS[version] - plen)) - 1
    lo = addr & ~host
    return Span(version, lo, lo | host, plen)


@dataclass(frozen=True)
class IpTarget:
    """A network in canonical text, with every form to compare against protected ranges."""

    text: str  # canonical: an address without /len for one host, else network/len
    span: Span
    forms: tuple[Span, ...]  # the network itself, then its IPv4 or IPv6 equivalents

    @property
    def is_host(self) -> bool:
        return self.span.lo == self.span.hi

    @cached_property
    def network(self) -> Network:
        return self.span.network


@dataclass(frozen=True)
class DomainTarget:
    text: str  # lower case, no trailing dot, IDNA (xn--) for non-ASCII names
    labels: tuple[str, ...]


def parse_network(text: str) -> IpTarget:
    """An address or CIDR; host bits set are cleared (``10.0.0.5/8`` is ``10.0.0.0/8``) so the
    guard judges the network that an enforcement point would actually block.

    Addresses are read by the C library's ``inet_pton`` (strict dotted quads, no zone ids), the
    prefix as plain decimal digits."""
    if not isinstance(text, str):
        raise TargetError(f"{text!r} is not an IP address or network")
    addr_text, slash, plen_text = text.partition("/")
    family, version = (socket.AF_INET6, 6) if ":" in addr_text else (socket.AF_INET, 4)
    try:
        addr = int.from_bytes(socket.inet_pton(family, addr_text), "big")
    except (OSError, ValueError) as e:
        raise TargetError(f"{text!r} is not an IP address or network") from e
    bits = _BITS[version]
    if slash:
        if not (plen_text.isdigit() and plen_text.isascii()) or int(plen_text) > bits:
            raise TargetError(f"{text!r} is not an IP address or network")
        plen = int(plen_text)
    else:
        plen = bits
    span = _span(version, addr, plen)
    packed = span.lo.to_bytes(bits // 8, "big")
    canon = socket.inet_ntop(family, packed)
    if plen != bits:
        canon = f"{canon}/{plen}"
    return IpTarget(canon, span, spans(span))


def spans(span: Span) -> tuple[Span, ...]:
    """``span`` and the same addresses in the other family's embeddings (IPv4 <-> IPv6)."""
    out = [span]
    if span.version == 4:
        for base, _, offset in _EMBEDDING:
            shift = 128 - offset - 32
            out.append(_span(6, base | (span.lo << shift), offset + span.prefixlen))
        return tuple(out)
    for base, elen, offset in _EMBEDDING:
        if span.prefixlen >= elen and span.lo >> (128 - elen) == base >> (128 - elen):
            v4_len = min(32, span.prefixlen - offset)
            v4 = (span.lo >> (128 - offset - 32)) & 0xFFFFFFFF
            out.append(_span(4, v4, v4_len))
        elif span.prefixlen < elen and base >> (128 - span.prefixlen) == span.lo >> (
            128 - span.prefixlen
        ):  # e.g. ::/0 or 2000::/3 contains the whole embedding: all of IPv4
            out.append(Span(4, 0, 0xFFFFFFFF, 0))
    return tuple(dict.fromkeys(out))


def equivalents(net: Network) -> tuple[Network, ...]:
    """``net`` and its equivalents in the other family, as ``ipaddress`` networks."""
    span = _span(net.version, int(net.network_address), net.prefixlen)
    return tuple(s.network for s in spans(span))


def looks_like_ip(text: str) -> bool:
    try:
        parse_network(text)
    except TargetError:
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
