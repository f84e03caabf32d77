"""Guard throughput: decisions judged per second, beside a plain per-decision Python baseline.

Synthetic and seeded. Decisions: 70 % IPv4 hosts, 10 % IPv4 networks (/16–/32), 10 % IPv6
(a fifth of them IPv4-mapped), 10 % domain names (a third under a protected domain); about 5 % of
the addresses are drawn inside protected ranges. Two policies: a small site (20 protected entries)
and a provider-sized one (a few thousand: own ranges, partners, critical hosts), both with the
well-known resolvers.

The baseline is what one would write without the guard: ``ipaddress.ip_network`` per decision,
a loop over every protected network calling ``overlaps`` (IPv4-mapped targets converted first),
parent-domain checks by suffix, then the prefix, confidence and TTL rules. Both run in the same
process on the same decisions, and their verdicts are compared (they must agree).

A second figure: ``Ledger.submit`` (judge, store, audit) into SQLite against a bare
``executemany`` of the same rows.

    python benchmarks/bench_respond.py [--decisions 50000] [--baseline 5000] [--ledger 5000] [--write]
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from mamori.respond.decision import Action, Decision
from mamori.respond.guard import Guard
from mamori.respond.policy import WELL_KNOWN_RESOLVERS, Policy, build_policy

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- bench_respond:begin -->", "<!-- bench_respond:end -->"
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def make_policy(rng: random.Random, size: int) -> dict:
    def v4net(lo: int, hi: int) -> str:
        plen = rng.randint(lo, hi)
        return str(ipaddress.IPv4Network((rng.getrandbits(32), plen), strict=False))

    n = max(1, size // 4)
    return {
        "protected": {
            "own": [v4net(16, 24) for _ in range(n)] + ["2001:db8::/32", "corp.example"],
            "critical": [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(n)],
            "partners": [v4net(20, 28) for _ in range(n)]
            + [f"partner{i}.example" for i in range(n)],
        },
        "max_prefix": {"ipv4": 24, "ipv6": 48},
        "min_confidence": {"default": 0.5, "quarantine": 0.9},
        "max_per_minute": 10**9,  # throughput, not the rate rule
        "max_ttl": "24h",
    }


def make_decisions(rng: random.Random, raw: dict, n: int) -> list[Decision]:
    own = [ipaddress.ip_network(t) for t in raw["protected"]["own"] if "/" in t and ":" not in t]
    doms = [t for g in raw["protected"].values() for t in g if t.endswith(".example")]
    out = []
    for i in range(n):
        r = rng.random()
        inside = rng.random() < 0.05
        if r < 0.7:
            if inside:
                net = rng.choice(own)
                addr = int(net.network_address) + rng.randrange(net.num_addresses)
            else:
                addr = rng.getrandbits(32)
            target, action = str(ipaddress.IPv4Address(addr)), Action.block_ip
        elif r < 0.8:
            target = str(
                ipaddress.IPv4Network((rng.getrandbits(32), rng.randint(16, 32)), strict=False)
            )
            action = Action.rate_limit
        elif r < 0.9:
            if rng.random() < 0.2:
                target = f"::ffff:{ipaddress.IPv4Address(rng.getrandbits(32))}"
            else:
                target = str(
                    ipaddress.IPv6Network(
                        ((0x2A00 << 112) | rng.getrandbits(100), rng.choice([48, 64, 128])),
                        strict=False,
                    )
                )
            action = Action.block_ip
        else:
            name = f"x{rng.getrandbits(24):x}."
            target = name + (rng.choice(doms) if rng.random() < 0.33 else "bad.example.net")
            action = Action.sinkhole
        out.append(
            Decision(
                action=action,
                target=target,
                reason="bench",
                incident=f"INC-{i % 1000}",
                confidence=rng.choice([0.3, 0.7, 0.95]),
                ttl=rng.choice([3600, 86400, 7 * 86400]),
            )
        )
    return out


class Baseline:
    """Plain per-decision Python: what the guard replaces."""

    def __init__(self, raw: dict) -> None:
        items = [t for g in raw["protected"].values() for t in g] + list(WELL_KNOWN_RESOLVERS)
        items += ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128", "localhost"]
        self.nets, self.domains = [], []
        for t in items:
            try:
                self.nets.append(ipaddress.ip_network(t, strict=False))
            except ValueError:
                self.domains.append(t.lower())
        self.raw = raw

    def judge(self, d: Decision) -> bool:
        """True when the decision may be enforced (allow or needs_approval)."""
        ok = True
        if d.action in (Action.sinkhole, Action.block_domain):
            name = d.target.lower().rstrip(".")
            for p in self.domains:
                if name == p or name.endswith("." + p) or p.endswith("." + name):
                    ok = False
        else:
            net = ipaddress.ip_network(d.target, strict=False)
            forms = [net]
            if net.version == 6 and net.subnet_of(MAPPED):
                v4 = int(net.network_address) & 0xFFFFFFFF
                forms.append(ipaddress.IPv4Network((v4, max(0, net.prefixlen - 96)), strict=False))
            for form in forms:
                for p in self.nets:
                    if p.version == form.version and form.overlaps(p):
                        ok = False
                limit = self.raw["max_prefix"]["ipv4" if form.version == 4 else "ipv6"]
                if form.prefixlen < limit:
                    ok = False
        least = self.raw["min_confidence"].get(str(d.action), self.raw["min_confidence"]["default"])
        if d.confidence < least:
            ok = False
        return ok and isinstance(d.ttl, int) and math.isfinite(d.ttl) and d.ttl > 0


def run(size: int, n: int, n_base: int, seed: int) -> dict:
    rng = random.Random(seed)
    raw = make_policy(rng, size)
    policy: Policy = build_policy(raw, "bench-policy")
    decisions = make_decisions(rng, raw, n)
    now = datetime(2026, 1, 1, tzinfo=UTC)

    guard = Guard(policy)
    t = time.perf_counter()
    verdicts = [guard.judge(d, now).verdict for d in decisions]
    guard_s = time.perf_counter() - t

    base = Baseline(raw)
    sample = decisions[:n_base]
    t = time.perf_counter()
    base_ok = [base.judge(d) for d in sample]
    base_s = time.perf_counter() - t

    disagree = sum((v != "deny") != ok for v, ok in zip(verdicts, base_ok, strict=False))
    entries = len(policy.own.entries) + len(policy.guarded.entries)
    return {
        "protected_entries": entries,
        "decisions": n,
        "guard_per_s": n / guard_s,
        "baseline_decisions": len(sample),
        "baseline_per_s": len(sample) / base_s,
        "ratio": (n / guard_s) / (len(sample) / base_s),
        "denied": sum(v == "deny" for v in verdicts) / n,
        "disagreements": disagree,
    }


def ledger_run(n: int, seed: int) -> dict:
    """``Ledger.submit`` (judge, store, hash-chain every step) against the floor any store pays:
    the same decision rows inserted by one SQLAlchemy ``executemany``, no guard, no audit."""
    import tempfile

    import sqlalchemy as sa

    from mamori.respond.ledger import Ledger
    from mamori.respond.tables import decisions as decisions_table
    from mamori.store import Store

    rng = random.Random(seed)
    raw = make_policy(rng, 400)
    ds = make_decisions(rng, raw, n)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/ledger.db")
        ledger = Ledger(store, build_policy(raw, "bench-policy"))
        t = time.perf_counter()
        ledger.submit(ds, now)
        ledger_s = time.perf_counter() - t
        floor = Store(f"sqlite:///{tmp}/floor.db")
        rows = [
            {"id": f"d-{i:016x}", "action": str(d.action), "target": d.target, "scope": d.scope,
             "reason": d.reason, "incident": d.incident, "confidence": d.confidence, "ttl": d.ttl,
             "proposed_ttl": d.ttl, "verdict": "allow", "reasons": [], "state": "approved",
             "proposed": now, "judged": now, "updated": now}
            for i, d in enumerate(ds)
        ]  # fmt: skip
        t = time.perf_counter()
        with floor.begin() as conn:
            conn.execute(sa.insert(decisions_table), rows)
        floor_s = time.perf_counter() - t
        store.close()
        floor.close()
    return {"decisions": n, "ledger_per_s": n / ledger_s, "floor_per_s": n / floor_s}


def table(rows: list[dict]) -> str:
    lines = [
        "| protected entries | guard (decisions/s) | plain `ipaddress` loop (decisions/s) | ratio | denied | verdicts differing |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['protected_entries']:,} | {r['guard_per_s']:,.0f} | {r['baseline_per_s']:,.0f} "
            f"| {r['ratio']:.1f}× | {r['denied']:.0%} | {r['disagreements']} of {r['baseline_decisions']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=50_000)
    ap.add_argument("--baseline", type=int, default=5_000, help="decisions the baseline judges")
    ap.add_argument("--ledger", type=int, default=5_000, help="decisions through Ledger.submit")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--write", action="store_true", help="write the table into benchmarks/README.md"
    )
    args = ap.parse_args()
    rows = [run(size, args.decisions, args.baseline, args.seed) for size in (20, 400, 4000)]
    led = ledger_run(args.ledger, args.seed)
    text = table(rows) + (
        f"\n\n| into the state database (SQLite) | decisions/s | peer: bare `executemany` of the rows |"
        f" ratio |\n|---|---:|---:|---:|\n| `Ledger.submit` of {led['decisions']:,} decisions "
        f"(judge, store, 2–3 hash-chained audit entries each) | {led['ledger_per_s']:,.0f} "
        f"| {led['floor_per_s']:,.0f} | {led['ledger_per_s'] / led['floor_per_s']:.2f}× |"
    )
    print(text)
    if args.write:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        block = (
            f"{BEGIN}\n{text}\n\n{args.decisions:,} decisions per policy, the baseline on the first "
            f"{args.baseline:,}; {stamp}, Python {platform.python_version()}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine), "
            f"`python benchmarks/bench_respond.py --write`.\n{END}"
        )
        readme = README.read_text()
        start, end = readme.find(BEGIN), readme.find(END)
        if start < 0 or end < 0:
            raise SystemExit(f"{README}: markers {BEGIN} / {END} not found")
        README.write_text(readme[:start] + block + readme[end + len(END) :])


if __name__ == "__main__":
    main()
