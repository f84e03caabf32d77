"""Enforcement speed: incident -> enforced nftables rule, and nftables element apply rate.

Both beside peers measured in the same run, in a network namespace this script creates (and
deletes), so the host's own firewall is never touched:

* incident -> rule: ``Ledger.plan`` on a real patrol report (the SSH guessing capture), the guard's
  judgement, ``Ledger.active`` and ``NftablesPoint.apply``, against the floor a hand-written
  enforcement pays: one ``nft add element`` subprocess for the same address.
* apply rate: N decisions (/32s, plus a share of nested /24s that force the overlap-free layout)
  applied and then removed by ``NftablesPoint.apply``, against (a) one ``nft add element`` process
  per address, the way scripts and many fail2ban-style actions do it, and (b) one hand-built
  ``nft -f`` batch of the same elements (no comments, no layout), the best a caller can do; removal
  against one ``nft -f`` batch of ``delete element`` (element by element, as the kernel does it).

    python benchmarks/bench_respond_points.py [--elements 20000] [--per-process 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mamori.config import load_settings
from mamori.patrol import patrol
from mamori.respond.decision import Action, Decision
from mamori.respond.ledger import Ledger
from mamori.respond.points.nftables import NftablesPoint
from mamori.respond.policy import parse_policy
from mamori.store import Store

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = "zeek-btest/Traces/ssh/sshguess.pcap"
POLICY = """
protected:
  own: [10.0.0.0/8]
max_prefix: {ipv4: 24, ipv6: 48}
min_confidence: {default: 0.5}
max_per_minute: 1000000
max_ttl: {default: 24h}
"""


def sh(*args: str, input: str | None = None) -> None:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)}: {proc.stderr.strip()}")


def nft(ns: str, *args: str, input: str | None = None) -> None:
    sh("ip", "netns", "exec", ns, "nft", *args, input=input)


def fresh_peer_table(ns: str) -> None:
    """The same set a hand-written setup would use: interval + timeout, ipv4."""
    nft(ns, "-f", "-", input="table inet peer\ndelete table inet peer\ntable inet peer {\n"
        "set block4 { type ipv4_addr; flags interval, timeout; }\n}\n")  # fmt: skip


def addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    picked = rng.sample(range(2**17), n)  # inside 198.18.0.0/15 (RFC 2544 benchmarking space)
    return [str(ipaddress.IPv4Address(0xC6120000 + k)) for k in picked]


def bench_incident_to_rule(ns: str, report: Path, rounds: int) -> dict[str, float]:
    policy = parse_policy(POLICY, "bench-policy.yaml")
    ours, peer = [], []
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/state.db")
            ledger = Ledger(store, policy)
            point = NftablesPoint(namespace=ns)
            point.load([])
            t0 = time.perf_counter()
            entries = ledger.plan(report)
            point.apply(ledger.active(), [])
            ours.append(time.perf_counter() - t0)
            store.close()
        target = next(e.decision.target for e in entries if e.decision.action is Action.block_ip)
        fresh_peer_table(ns)
        t0 = time.perf_counter()
        nft(ns, "add", "element", "inet", "peer", "block4", f"{{ {target} timeout 4h }}")
        peer.append(time.perf_counter() - t0)
        _ = r
    return {"mamori_ms": statistics.median(ours) * 1e3, "peer_ms": statistics.median(peer) * 1e3}


def bench_apply_rate(ns: str, n: int, per_process: int, seed: int) -> dict[str, float]:
    hosts = addresses(n, seed)
    rng = random.Random(seed + 1)
    # a few /24s over some of the hosts, so the layout has overlaps to cut
    wide = {str(ipaddress.ip_network(f"{h}/24", strict=False)) for h in rng.sample(hosts, n // 100)}
    decisions = [Decision(Action.block_ip, h, "bench", f"i{k}", 0.9, 14400)
                 for k, h in enumerate(hosts)]  # fmt: skip
    decisions += [Decision(Action.block_ip, w, "bench", f"w{k}", 0.9, 7200)
                  for k, w in enumerate(sorted(wide))]  # fmt: skip
    point = NftablesPoint(namespace=ns)
    point.load([])
    t0 = time.perf_counter()
    point.apply(decisions, [])
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    point.apply([], decisions[:per_process])
    del_some_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    point.apply([], decisions[per_process:])
    del_s = time.perf_counter() - t0

    fresh_peer_table(ns)
    some = hosts[:per_process]
    t0 = time.perf_counter()
    for h in some:
        nft(ns, "add", "element", "inet", "peer", "block4", f"{{ {h} timeout 4h }}")
    one_by_one_s = time.perf_counter() - t0

    fresh_peer_table(ns)
    batch = "add element inet peer block4 { " + ", ".join(f"{h} timeout 4h" for h in hosts) + " }\n"
    t0 = time.perf_counter()
    nft(ns, "-f", "-", input=batch)
    batch_s = time.perf_counter() - t0
    gone = "delete element inet peer block4 { " + ", ".join(hosts[:per_process]) + " }\n"
    t0 = time.perf_counter()
    nft(ns, "-f", "-", input=gone)
    batch_del_s = time.perf_counter() - t0
    return {
        "elements": len(decisions),
        "mamori_add_per_s": len(decisions) / add_s,
        "mamori_del_some_per_s": per_process / del_some_s,
        "mamori_del_per_s": (len(decisions) - per_process) / del_s,
        "peer_process_per_s": len(some) / one_by_one_s,
        "peer_batch_per_s": len(hosts) / batch_s,
        "peer_batch_del_per_s": per_process / batch_del_s,
        "mamori_add_s": add_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--elements", type=int, default=20_000)
    ap.add_argument("--per-process", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()

    ns = f"mamori-bench-{int(time.time()) % 100000}"
    sh("ip", "netns", "add", ns)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            patrol([args.data / CAPTURE], out / "lake", out, load_settings(None))
            first = bench_incident_to_rule(ns, out / "report.json", args.rounds)
        rate = bench_apply_rate(ns, args.elements, args.per_process, args.seed)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    result = {"when": datetime.now(UTC).isoformat(), "python": sys.version.split()[0],
              **{f"incident_{k}": v for k, v in first.items()}, **rate}  # fmt: skip
    print(json.dumps(result, indent=1))
    print()
    print("| measure | mamori | peer | ratio |")
    print("|---|---|---|---|")
    print(f"| incident → enforced rule (plan + guard + apply), median of {args.rounds} | "
          f"{first['mamori_ms']:.0f} ms | {first['peer_ms']:.1f} ms (one `nft add element`) | "
          f"{first['mamori_ms'] / first['peer_ms']:.1f}× |")  # fmt: skip
    print(f"| apply {rate['elements']:,} elements, one transaction | "
          f"{rate['mamori_add_per_s']:,.0f}/s | {rate['peer_process_per_s']:,.0f}/s "
          f"(one `nft` process per address) | "
          f"{rate['mamori_add_per_s'] / rate['peer_process_per_s']:.0f}× faster |")  # fmt: skip
    print(f"| same, against a hand-built `nft -f` batch | {rate['mamori_add_per_s']:,.0f}/s | "
          f"{rate['peer_batch_per_s']:,.0f}/s | "
          f"{rate['mamori_add_per_s'] / rate['peer_batch_per_s']:.2f}× |")  # fmt: skip
    print(f"| remove {args.per_process:,} of them | {rate['mamori_del_some_per_s']:,.0f}/s | "
          f"{rate['peer_batch_del_per_s']:,.0f}/s (`nft -f` batch deleting the same number) | "
          f"{rate['mamori_del_some_per_s'] / rate['peer_batch_del_per_s']:.0f}× |")  # fmt: skip
    print(f"| remove the rest | {rate['mamori_del_per_s']:,.0f}/s | – | – |")


if __name__ == "__main__":
    main()
