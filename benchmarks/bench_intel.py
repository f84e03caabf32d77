"""Threat-intel matching throughput: 1 M indicators against 10 M records, beside plain Python.

Synthetic and seeded: IPv4 CIDRs of /8–/32 (a dozen /8–/19, 2 % each /20–/23, the rest /24–/32; nested ranges included, so longest-prefix matters)
and domains of 2–3 labels; records are random addresses and names of 2–5 labels, ~5 % of them
built to hit. The plain-Python baseline (``ipaddress`` over a dict per prefix length; a set probe
per parent domain) runs on a slice of the same records in the same run and is quoted per second.

    python benchmarks/bench_intel.py [--records 10000000] [--indicators 1000000] [--baseline 200000]
"""

from __future__ import annotations

import argparse
import ipaddress
import time

import numpy as np
import polars as pl

from mamori.intel.match import CidrIndex, DomainIndex


def _dotted(v: np.ndarray) -> pl.Series:
    s = pl.Series(v.astype(np.uint32)).cast(pl.UInt32)
    return pl.select(
        pl.format("{}.{}.{}.{}", s // 16777216, (s // 65536) % 256, (s // 256) % 256, s % 256)
    ).to_series()


def workload(
    n_ind: int, n_rec: int, seed: int
) -> tuple[pl.Series, pl.Series, pl.Series, pl.Series]:
    rng = np.random.default_rng(seed)
    plen = rng.choice(
        np.arange(8, 33),
        size=n_ind,
        p=np.r_[np.full(12, 1e-5), np.full(4, 0.02), np.full(9, (1 - 12e-5 - 0.08) / 9)],
    )
    addr = rng.integers(0, 2**32, n_ind, dtype=np.uint64)
    cidrs = pl.select(pl.format("{}/{}", _dotted(addr), pl.Series(plen))).to_series()
    hit = rng.random(n_rec) < 0.05
    rec = rng.integers(0, 2**32, n_rec, dtype=np.uint64)
    rec[hit] = addr[rng.integers(0, n_ind, hit.sum())] | rng.integers(
        0, 256, hit.sum(), dtype=np.uint64
    )
    addrs = _dotted(rec)

    words = pl.Series([f"w{i:x}" for i in range(50_000)])
    tlds = pl.Series(["com", "net", "org", "info", "io", "ru", "cn", "de"])
    pick = lambda n, s: s.gather(rng.integers(0, len(s), n))  # noqa: E731
    base = pl.select(pl.format("{}.{}", pick(n_ind, words), pick(n_ind, tlds))).to_series()
    three = rng.random(n_ind) < 0.3
    doms = (
        pl.select(
            pl.when(pl.Series(three))
            .then(pl.format("{}.{}", pick(n_ind, words), base))
            .otherwise(base)
        )
        .to_series()
        .unique()
    )
    # names that are not listed come from a far larger vocabulary than the listed ones
    q_words = pl.select(pl.format("q{}", pl.Series(rng.integers(0, 2**24, n_rec)))).to_series()
    q_base = pl.select(pl.format("{}.{}", q_words, pick(n_rec, tlds))).to_series()
    hitd = pl.Series(rng.random(n_rec) < 0.05)
    q_base = pl.select(pl.when(hitd).then(pick(n_rec, doms)).otherwise(q_base)).to_series()
    depth = rng.integers(0, 4, n_rec)
    names = pl.select(
        pl.when(pl.Series(depth) == 0).then(q_base)
        .when(pl.Series(depth) == 1).then(pl.format("www.{}", q_base))
        .when(pl.Series(depth) == 2).then(pl.format("a{}.cdn.{}", pl.Series(rng.integers(0, 99, n_rec)), q_base))
        .otherwise(pl.format("x.y.z.{}", q_base))
    ).to_series()  # fmt: skip
    return cidrs, addrs, doms, names


def python_cidr(cidrs: list[str], addrs: list[str]) -> tuple[float, int]:
    by_len: dict[int, set[int]] = {}
    for c in cidrs:
        n = ipaddress.ip_network(c, strict=False)
        by_len.setdefault(n.prefixlen, set()).add(int(n.network_address))
    lens = sorted(by_len, reverse=True)
    t = time.perf_counter()
    hits = 0
    for a in addrs:
        v = int(ipaddress.IPv4Address(a))
        for pl_ in lens:
            if (v >> (32 - pl_)) << (32 - pl_) in by_len[pl_]:
                hits += 1
                break
    return time.perf_counter() - t, hits


def python_domains(doms: set[str], names: list[str]) -> tuple[float, int]:
    t = time.perf_counter()
    hits = 0
    for n in names:
        labels = n.lower().rstrip(".").split(".")
        for i in range(len(labels)):
            if ".".join(labels[i:]) in doms:
                hits += 1
    return time.perf_counter() - t, hits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--indicators", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    t = time.perf_counter()
    cidrs, addrs, doms, names = workload(a.indicators, a.records, a.seed)
    print(
        f"workload: {cidrs.n_unique():,} CIDRs, {doms.len():,} domains, {a.records:,} records ({time.perf_counter() - t:.1f} s)"
    )

    # warm the JIT on a tiny input so compile time is not counted as matching
    CidrIndex.build(pl.Series(["10.0.0.0/8"])).lookup(pl.Series(["10.0.0.1"]))
    DomainIndex.build(pl.Series(["a.b"])).lookup(pl.Series(["x.a.b"]))

    t = time.perf_counter()
    ci = CidrIndex.build(cidrs)
    build_c = time.perf_counter() - t
    t = time.perf_counter()
    lab = ci.lookup(addrs)
    look_c = time.perf_counter() - t
    n_c = int((lab >= 0).sum())

    t = time.perf_counter()
    di = DomainIndex.build(doms)
    build_d = time.perf_counter() - t
    t = time.perf_counter()
    rec, _ = di.lookup(names)
    look_d = time.perf_counter() - t
    n_d = len(rec)

    m = a.baseline
    pc, pc_hits = python_cidr(cidrs.to_list(), addrs.head(m).to_list())
    pd, pd_hits = python_domains(set(doms.to_list()), names.head(m).to_list())
    assert pc_hits == int((lab[:m] >= 0).sum()), "CIDR: compiled and Python disagree"
    assert pd_hits == int((rec < m).sum()), "domains: compiled and Python disagree"

    rows = [
        ("CIDR longest prefix", build_c, look_c, a.records / look_c, n_c, m / pc),
        ("domain + parents", build_d, look_d, a.records / look_d, n_d, m / pd),
    ]
    print(
        "| matcher | index build (s) | match 10 M (s) | records/s | hits | plain Python records/s | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, b, dt, r, h, p in rows:
        print(
            f"| {name} | {b:.2f} | {dt:.2f} | {r / 1e6:.1f} M | {h:,} | {p / 1e3:.0f} k | {r / p:.0f}× |"
        )


if __name__ == "__main__":
    main()
