"""Hypothesis strategies for the rules of engagement, and an independent oracle of them.

The oracle re-derives "may this be enforced?" with plain ``ipaddress`` calls (``ipv4_mapped``,
``sixtofour``, ``overlaps``), not with the guard's interval index or its embedding table, so a bug
in the guard is not mirrored here. Shared by the guard, ledger and benchmark-free property tests.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision
from mamori.respond.policy import ALWAYS_PROTECTED, WELL_KNOWN_RESOLVERS, Policy, build_policy

V4, V6 = ipaddress.IPv4Network, ipaddress.IPv6Network
EMBED = {
    "mapped": V6("::ffff:0:0/96"),
    "nat64": V6("64:ff9b::/96"),
    "6to4": V6("2002::/16"),
}


# ------------------------------------------------------------------------------- the oracle


def _to_v4(addr: ipaddress.IPv6Address, kind: str) -> ipaddress.IPv4Address:
    if kind == "mapped":
        assert addr.ipv4_mapped is not None
        return addr.ipv4_mapped
    if kind == "6to4":
        assert addr.sixtofour is not None
        return addr.sixtofour
    return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)  # NAT64 /96: the low 32 bits


def v4_ranges(net: V6) -> list[tuple[int, int]]:
    """The IPv4 addresses an IPv6 network carries in any embedding, as closed int ranges."""
    out = []
    for kind, embed in EMBED.items():
        if not net.overlaps(embed):
            continue
        inner = net if net.subnet_of(embed) else embed
        lo, hi = inner.network_address, inner.broadcast_address
        out.append((int(_to_v4(lo, kind)), int(_to_v4(hi, kind))))
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def ip_touches(target: ipaddress.IPv4Network | V6, protected: ipaddress.IPv4Network | V6) -> bool:
    if target.version == protected.version:
        return target.overlaps(protected)  # type: ignore[arg-type]
    v6, v4 = (target, protected) if target.version == 6 else (protected, target)
    span = (int(v4.network_address), int(v4.broadcast_address))
    return any(_overlap(r, span) for r in v4_ranges(v6))  # type: ignore[arg-type]


def domain_touches(target: str, protected: str) -> bool:
    return (
        target == protected or target.endswith("." + protected) or protected.endswith("." + target)
    )


@dataclass
class Assets:
    own_nets: list[Any]
    own_domains: list[str]
    guarded_nets: list[Any]
    guarded_domains: list[str]


def assets(raw: dict[str, Any]) -> Assets:
    """The protected assets a raw policy mapping names, read independently of the guard."""
    prot = raw["protected"]
    guarded = [*ALWAYS_PROTECTED]
    for g in ("critical", "resolvers", "partners"):
        guarded += prot.get(g) or []
    if raw.get("well_known_resolvers", True):
        guarded += WELL_KNOWN_RESOLVERS

    def split(items: list[str]) -> tuple[list[Any], list[str]]:
        nets, doms = [], []
        for t in items:
            try:
                nets.append(ipaddress.ip_network(t, strict=False))
            except ValueError:
                doms.append(t.lower().rstrip(".").removeprefix("*."))
        return nets, doms

    on, od = split(prot["own"])
    gn, gd = split(guarded)
    return Assets(on, od, gn, gd)


def enforceable_problems(d: Decision, policy: Policy, a: Assets) -> list[str]:
    """Why the oracle says ``d`` (as judged) must not be enforced; empty when it may be."""
    raw = policy.raw
    problems = []
    ttl = d.ttl
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        problems.append(f"ttl {ttl!r} is not a finite positive integer")
    elif ttl > policy.max_ttl[d.action]:
        problems.append(f"ttl {ttl} beyond {policy.max_ttl[d.action]}")
    c = d.confidence
    if not isinstance(c, int | float) or not math.isfinite(c) or not 0 <= c <= 1:
        problems.append("confidence out of range")
    elif c < policy.min_confidence[d.action]:
        problems.append("confidence below the least")
    if d.action not in policy.actions:
        problems.append("action disabled")
    try:
        net = ipaddress.ip_network(d.target, strict=True)
    except ValueError:
        net = None
    if net is not None:
        if d.action in (Action.block_domain, Action.sinkhole):
            problems.append("an address given to a domain action")
        widest = {4: raw.get("max_prefix", {}).get("ipv4", 24), 6: 0}
        widest[6] = raw.get("max_prefix", {}).get("ipv6", 48)
        if net.prefixlen < widest[net.version]:
            problems.append(f"/{net.prefixlen} wider than /{widest[net.version]}")
        if net.version == 6:
            for lo, hi in v4_ranges(net):  # type: ignore[arg-type]
                size = hi - lo + 1
                if size > 2 ** (32 - widest[4]):
                    problems.append("embedded IPv4 range wider than allowed")
        for p in a.guarded_nets:
            if ip_touches(net, p):
                problems.append(f"touches guarded {p}")
        if d.action is Action.quarantine:
            if net.num_addresses != 1:
                problems.append("quarantine of a network")
            if not any(
                ip_touches(net, p) and (net.version != p.version or net.subnet_of(p))
                for p in a.own_nets
            ):
                problems.append("quarantine outside own")
        else:
            for p in a.own_nets:
                if ip_touches(net, p):
                    problems.append(f"touches own {p}")
        return problems
    if d.action in (Action.block_ip, Action.rate_limit, Action.quarantine):
        problems.append(f"{d.target!r} is not a canonical network for {d.action}")
        return problems
    name = d.target
    if name != name.lower() or name.endswith(".") or name.startswith("*") or not name:
        problems.append(f"domain {name!r} not canonical")
    labels = name.split(".")
    if len(labels) < raw.get("min_domain_labels", 2) or any(not x for x in labels):
        problems.append("too few labels")
    for p in a.own_domains + a.guarded_domains:
        if domain_touches(name, p):
            problems.append(f"touches protected domain {p}")
    return problems


# ------------------------------------------------------------------------------ strategies

PROTECTED_V4 = ["192.0.2.0/24", "198.51.100.7", "10.20.0.0/16"]
PROTECTED_V6 = ["2001:db8:100::/48", "2001:db8:ffff::53"]
PROTECTED_DOMAINS = ["example.org", "partner.example", "mail.example.net"]


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Random but valid policies over a fixed pool of protected assets split among groups."""
    pool = PROTECTED_V4 + PROTECTED_V6 + PROTECTED_DOMAINS
    groups: dict[str, list[str]] = {"own": [], "critical": [], "resolvers": [], "partners": []}
    for item in pool:
        groups[draw(st.sampled_from(list(groups)))].append(item)
    if not groups["own"]:
        groups["own"].append("192.0.2.0/24")
    raw: dict[str, Any] = {
        "protected": groups,
        "well_known_resolvers": draw(st.booleans()),
        "max_prefix": {
            "ipv4": draw(st.integers(0, 32)),
            "ipv6": draw(st.integers(0, 128)),
        },
        "min_domain_labels": draw(st.integers(1, 3)),
        "min_confidence": {
            "default": draw(st.floats(0, 1)),
            **draw(st.dictionaries(st.sampled_from(list(Action)), st.floats(0, 1), max_size=3)),
        },
        "approval": draw(st.lists(st.sampled_from(list(Action)), unique=True, max_size=4)),
        "max_per_minute": draw(st.integers(0, 20)),
        "over_rate": draw(st.sampled_from(["needs_approval", "deny"])),
        "max_ttl": draw(st.sampled_from(["1h", "24h", 600, {"default": "1d", "quarantine": "4h"}])),
        "over_ttl": draw(st.sampled_from(["clamp", "deny"])),
        "actions": draw(st.lists(st.sampled_from(list(Action)), unique=True, min_size=1)),
    }
    raw["min_confidence"] = {str(k): v for k, v in raw["min_confidence"].items()}
    raw["approval"] = [str(a) for a in raw["approval"]]
    raw["actions"] = [str(a) for a in raw["actions"]]
    return build_policy(raw, "hypothesis-policy")


def _v4(draw: st.DrawFn) -> str:
    base = draw(
        st.one_of(
            st.integers(0, 2**32 - 1),
            st.sampled_from([int(ipaddress.ip_network(p, strict=False).network_address)
                             for p in [*PROTECTED_V4, "8.8.8.8", "1.1.1.1", "127.0.0.1"]]),
        )
    )  # fmt: skip
    base += draw(st.sampled_from([0, 0, 1, 255, 256]))
    return str(ipaddress.IPv4Address(base % 2**32))


@st.composite
def ip_targets(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(["v4", "v6", "mapped", "nat64", "6to4", "protected-v6", "zero", "raw"])
    )
    if kind == "zero":
        return draw(st.sampled_from(["0.0.0.0/0", "::/0", "::ffff:0:0/96", "2002::/16",
                                     "64:ff9b::/96", "::/96", "2000::/3", "0.0.0.0/1"]))  # fmt: skip
    if kind == "raw":
        return draw(st.text(max_size=20))
    if kind == "v4":
        return f"{_v4(draw)}/{draw(st.integers(0, 32))}" if draw(st.booleans()) else _v4(draw)
    if kind == "protected-v6":
        net = ipaddress.ip_network(draw(st.sampled_from(PROTECTED_V6)), strict=False)
        host = int(net.network_address) + draw(st.integers(0, 2**16))
        return f"{ipaddress.IPv6Address(host)}/{draw(st.integers(0, 128))}"
    if kind == "v6":
        addr = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
        return f"{addr}/{draw(st.integers(0, 128))}"
    v4 = int(ipaddress.IPv4Address(_v4(draw)))
    if kind == "mapped":
        addr, plen = ipaddress.IPv6Address((0xFFFF << 32) | v4), draw(st.integers(80, 128))
    elif kind == "nat64":
        addr = ipaddress.IPv6Address(int(EMBED["nat64"].network_address) | v4)
        plen = draw(st.integers(80, 128))
    else:
        addr = ipaddress.IPv6Address((0x2002 << 112) | (v4 << 80))
        plen = draw(st.integers(8, 64))
    return f"{addr}/{plen}" if draw(st.booleans()) else str(addr)


@st.composite
def domain_targets(draw: st.DrawFn) -> str:
    base = draw(
        st.one_of(
            st.sampled_from(
                [*PROTECTED_DOMAINS, "dns.google", "localhost", "org", "net", "example"]
            ),
            st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}", fullmatch=True),
        )
    )
    sub = draw(st.sampled_from(["", "www.", "a.b.", "*.", "x-y."]))
    name = sub + base
    if draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    if draw(st.booleans()):
        name += "."
    return name


targets = st.one_of(ip_targets(), domain_targets())

confidences = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, -0.1, 1.5, math.nan, math.inf]))
ttls = st.one_of(
    st.integers(-10, 10 * 86400),
    st.sampled_from([0, -1, 1, math.inf, math.nan, 10**12, 2.5, 3600.0]),
)


@st.composite
def decisions(draw: st.DrawFn) -> Decision:
    return Decision(
        action=draw(st.sampled_from(list(Action))),
        target=draw(targets),
        reason="property test",
        incident=draw(st.sampled_from(["INC-a", "INC-b", "INC-c"])),
        confidence=draw(confidences),
        ttl=draw(ttls),
        scope=draw(st.sampled_from(["edge", "resolver"])),
    )
