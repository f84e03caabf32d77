"""Threat-intel matching throughput: 1 M indicators against 10 M records, beside plain Python.

Synthetic and seeded: IPv4 CIDRs of /8–/32 (a dozen /8–/19, 2 % each /20–/23, the rest /24–/32; nested ranges included, so longest-prefix matters)
and domains of 2–3 labels; records are random addresses and names of 2–5 labels, ~5 % of them
built to hit. The plain-Python baseline (``ipaddress`` over a dict per prefix length; a set probe
per parent domain) runs on a slice of the same records in the same run and is quoted per second.

    python benchmarks/bench_intel.py [--records 10000000] [--indicators 1000000] [--baseline 200000]

With ``--lake DIR`` it measures ``match()`` end to end instead: 1 M indicators (IPs, CIDRs,
domains, URLs; up to 1 % drawn from what the lake saw rarely) against every record of the synthetic lake that
``bench_detect.py`` writes (conn, dns, http, ssl: addresses repeat as in real traffic), beside the
plain Python matcher on a slice and a Polars semi-join of conn's two address columns against
the listed addresses (exact IPs only: the floor a vectorised matcher must beat), and ``match()``
with those listed IPs alone against conn alone, cold (its indexes built in the call, as the
semi-join builds its hash table) and warm (the same indicators again: indexes cached by content).
The last lines print ``match()``'s speed as a multiple of the semi-join's, median and per round.
Each round also runs ``match()`` with every indicator a second time, its indexes cached.

    python benchmarks/bench_intel.py --lake benchmarks/work/synth-lake-10000000-1

``--broad`` adds 0.0.0.0/0 and ::/0 to those indicators: every address then hits once (its
longest range), and memory follows the hits.

``--before REV`` times the kernels of commit REV beside the working tree's, alternately (with
``--lake``: the whole ``match()`` of REV beside the current one, checking that the hits agree):

    python benchmarks/bench_intel.py --before 00f574a
    python benchmarks/bench_intel.py --lake benchmarks/work/synth-lake-10000000-1 --before 3ad7581
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import time
from pathlib import Path
from typing import Any

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
        .unique(maintain_order=True)  # seeded runs must pick the same names
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


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


def kernels(a: argparse.Namespace) -> None:
    """The two indexes over 10 M random records: every record distinct, the worst case."""
    t = time.perf_counter()
    cidrs, addrs, doms, names = workload(a.indicators, a.records, a.seed)
    print(
        f"workload: {cidrs.n_unique():,} CIDRs, {doms.len():,} domains, {a.records:,} records "
        f"({time.perf_counter() - t:.1f} s); load {os.getloadavg()[0]:.1f}"
    )

    # warm the JIT on a tiny input so compile time is not counted as matching
    CidrIndex.build(pl.Series(["10.0.0.0/8"])).lookup(pl.Series(["10.0.0.1"]))
    DomainIndex.build(pl.Series(["a.b"])).lookup(pl.Series(["x.a.b"]))

    t = time.perf_counter()
    ci = CidrIndex.build(cidrs)
    build_c = time.perf_counter() - t
    t = time.perf_counter()
    di = DomainIndex.build(doms)
    build_d = time.perf_counter() - t
    look_c: list[float] = []
    look_d: list[float] = []
    cpu_c: list[float] = []
    cpu_d: list[float] = []
    for _ in range(a.repeat):  # interleaved, so both see the same machine
        c, t = time.process_time(), time.perf_counter()
        lab = ci.lookup(addrs)
        look_c.append(time.perf_counter() - t)
        cpu_c.append(time.process_time() - c)
        c, t = time.process_time(), time.perf_counter()
        rec, _ = di.lookup(names)
        look_d.append(time.perf_counter() - t)
        cpu_d.append(time.process_time() - c)
    n_c = int((lab >= 0).sum())
    n_d = len(rec)

    m = a.baseline
    pc, pc_hits = python_cidr(cidrs.to_list(), addrs.head(m).to_list())
    pd, pd_hits = python_domains(set(doms.to_list()), names.head(m).to_list())
    assert pc_hits == int((lab[:m] >= 0).sum()), "CIDR: compiled and Python disagree"
    assert pd_hits == int((rec < m).sum()), "domains: compiled and Python disagree"

    print(f"\nrepeat {a.repeat}: median (min–max)\n")
    print(
        "| matcher | index build (s) | match 10 M (s) | records/s (median; best) "
        "| records per CPU-second | hits | plain Python records/s | speed-up (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, b, xs, cs, h, py in (
        ("CIDR longest prefix", build_c, look_c, cpu_c, n_c, m / pc),
        ("domain + parents", build_d, look_d, cpu_d, n_d, m / pd),
    ):
        r = a.records / statistics.median(xs)
        print(
            f"| {name} | {b:.2f} | {_spread(xs)} | {r / 1e6:.1f} M; {a.records / min(xs) / 1e6:.1f} M "
            f"| {a.records / statistics.median(cs) / 1e6:.1f} M | {h:,} | {py / 1e3:.0f} k | {r / py:.0f}× |"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def lake_indicators(frames: dict[str, pl.DataFrame], n: int, seed: int) -> pl.DataFrame:
    """``n`` indicators as an intel store holds them: ~45 % IPv4 CIDRs and addresses, ~45 %
    domains, ~10 % URLs; up to 1 % of the addresses and domains drawn from what the lake saw
    rarely (external servers and names seen at most 5 times, so there are hits, but not on every
    record), the rest from elsewhere."""
    from mamori.intel.schema import SCHEMA

    rng = np.random.default_rng(seed)
    n_ip, n_dom = int(n * 0.45), int(n * 0.45)
    n_url = n - n_ip - n_dom

    def rare(values: pl.Series) -> pl.Series:
        """Values seen at most 5 times: listed infrastructure is rarely what everyone talks to."""
        counts = values.value_counts(sort=True, name="n")
        return counts.filter(pl.col("n") <= 5).get_column(values.name).sort()

    seen_ips = rare(
        frames["conn"]["resp_h"].filter(~frames["conn"]["resp_h"].str.starts_with("10."))
    )
    k = min(n_ip // 100, seen_ips.len())
    plen = rng.choice([32, 32, 32, 24, 28, 30], n_ip - k)  # /16s would cover the Internet
    addr = rng.integers(0, 2**32, n_ip - k, dtype=np.uint64)
    cidr = pl.select(pl.format("{}/{}", _dotted(addr), pl.Series(plen))).to_series()
    cidr = pl.select(pl.when(pl.Series(plen) == 32).then(_dotted(addr)).otherwise(cidr)).to_series()
    ips = pl.concat([cidr, seen_ips.sample(k, seed=seed)])
    ip_type = pl.Series(np.r_[np.where(plen == 32, "ip", "cidr"), np.full(k, "ip")])
    # parents (a name minus its first label) that few lookups fall under: a listed domain then
    # matches its subdomains too, without listing what everyone resolves
    seen_names = rare(frames["dns"]["query"].drop_nulls().str.replace(r"^[^.]+\.", ""))
    kd = min(n_dom // 100, seen_names.len())
    words = pl.select(pl.format("bad{}", pl.Series(rng.integers(0, 2**40, n_dom - kd)))).to_series()
    tlds = pl.Series(["com", "net", "ru", "top", "xyz"]).gather(rng.integers(0, 5, n_dom - kd))
    parents = seen_names.sample(kd, seed=seed)
    doms = pl.concat([pl.select(pl.format("{}.{}", words, tlds)).to_series(), parents])
    urls = pl.select(pl.format("bad{}.com/x/{}.exe", pl.Series(rng.integers(0, 2**30, n_url)),
                               pl.Series(rng.integers(0, 999, n_url)))).to_series()  # fmt: skip
    values = pl.concat([ips, doms, urls])
    types = pl.concat(
        [ip_type, pl.Series(np.full(len(doms), "domain")), pl.Series(np.full(n_url, "url"))]
    )
    m = len(values)
    base = pl.from_arrow(SCHEMA.empty_table())
    data = pl.DataFrame({
        "id": pl.select(pl.format("indicator--{}", pl.int_range(m, eager=True))).to_series(),
        "type": types, "value": values,
    })  # fmt: skip
    return pl.concat([base, data], how="diagonal_relaxed")  # type: ignore[list-item]


def python_match(ind: pl.DataFrame, conn: pl.DataFrame, dns: pl.DataFrame) -> tuple[float, int]:
    """The plain Python matcher: ipaddress and a dict per prefix length, a parent-domain loop."""
    ips = set(ind.filter(pl.col("type") == "ip")["value"].to_list())
    by_len: dict[int, set[int]] = {}
    for c in ind.filter(pl.col("type") == "cidr")["value"].to_list():
        net = ipaddress.ip_network(c, strict=False)
        by_len.setdefault(net.prefixlen, set()).add(int(net.network_address))
    lens = sorted(by_len, reverse=True)
    doms = set(ind.filter(pl.col("type") == "domain")["value"].to_list())
    pairs = list(zip(conn["orig_h"].to_list(), conn["resp_h"].to_list(), strict=True))
    queries = dns["query"].drop_nulls().to_list()
    t = time.perf_counter()
    hits = 0
    for pair in pairs:
        for a in pair:
            hits += a in ips
            v = int(ipaddress.ip_address(a))
            for p in lens:
                if (v >> (32 - p)) << (32 - p) in by_len[p]:
                    hits += 1
                    break
    for q in queries:
        labels = q.lower().rstrip(".").split(".")
        for i in range(len(labels)):
            hits += ".".join(labels[i:]) in doms
    return time.perf_counter() - t, hits


def polars_semi(conn: pl.LazyFrame, ips: pl.DataFrame) -> int:
    """The peer for exact addresses: conn records whose originator or responder is a listed
    address, by Polars semi-joins (one per column: each record is matched on both addresses,
    as ``match()`` does), counted."""
    listed = ips.lazy()
    return sum(
        conn.select(a=pl.col(col))
        .join(listed, on="a", how="semi")
        .select(pl.len())
        .collect()
        .item()
        for col in ("orig_h", "resp_h")
    )


class PeakRss:
    """Peak resident memory of this process while the block runs, above what it held before
    (sampled every 5 ms from /proc: the growth ``match()`` itself causes)."""

    def __enter__(self) -> PeakRss:
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self._rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth_gb(self) -> float:
        return (self.peak - self.start) / 1e9


def _load_before(rev: str) -> object:
    """``src/mamori/intel/match.py`` as it was at commit ``rev``, imported beside the current."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    src = subprocess.run(
        ["git", "show", f"{rev}:src/mamori/intel/match.py"],
        check=True, capture_output=True, text=True, cwd=Path(__file__).parent,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "match_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("match_before", path)
    old = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["match_before"] = old
    spec.loader.exec_module(old)  # type: ignore[union-attr]
    return old


def lake_mode(a: argparse.Namespace) -> None:
    """``match()`` end to end over the synthetic lake of ``bench_detect.py`` (every table); with
    ``--before REV`` the ``match()`` of that commit runs alternately on the same input."""
    from mamori.detect.engine import lake_frames
    from mamori.intel.match import clear_cache, match

    tables = ("conn", "dns", "http", "ssl")
    raw = lake_frames(a.lake, tables)
    frames = {t: raw[t].collect() for t in tables}
    n_rec = sum(f.height for f in frames.values())
    t = time.perf_counter()
    ind = lake_indicators(frames, a.indicators, a.seed)
    if a.broad:  # the whole address space listed: every address hits (memory follows the hits)
        extra = ind.head(2).with_columns(
            id=pl.Series(["indicator--all-v4", "indicator--all-v6"]),
            type=pl.lit("cidr"),
            value=pl.Series(["0.0.0.0/0", "::/0"]),
        )
        ind = pl.concat([ind, extra])
    print(
        f"lake {a.lake.name}: {', '.join(f'{t} {f.height:,}' for t, f in frames.items())}; "
        f"{ind.height:,} indicators ({dict(ind.group_by('type').len().iter_rows())}), "
        f"built in {time.perf_counter() - t:.1f} s; load {os.getloadavg()[0]:.1f}"
    )
    lazy = {t: f.lazy() for t, f in frames.items()}
    matchers = [("match()", match)]
    if a.before:
        matchers.append((f"match() at {a.before}", _load_before(a.before).match))  # type: ignore[attr-defined]
    for _, f in matchers:
        f(ind.head(1000), {t: f.head(1000) for t, f in lazy.items()})  # JIT warm-up
    ips = ind.filter(pl.col("type") == "ip").select(a="value")
    polars_semi(lazy["conn"].head(1000), ips)  # warm-up
    semi_runs: list[tuple[float, float, int]] = []
    # The same listed IPs and nothing else, through match() on conn alone: the like-for-like
    # comparison with the semi-join (match() still builds full hit rows).
    only_ips = ind.filter(pl.col("type") == "ip")
    match(only_ips.head(100), {"conn": lazy["conn"].head(1000)})  # warm-up
    exact_runs: list[tuple[float, float, int]] = []
    warm_runs: list[tuple[float, float, int]] = []
    warm_all: list[tuple[float, float, int]] = []
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in matchers}
    results: dict[str, pl.DataFrame] = {}
    for r in range(a.repeat):
        c, t = time.process_time(), time.perf_counter()
        semi_hits = polars_semi(lazy["conn"], ips)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        semi_runs.append((wall, cpu, semi_hits))
        print(
            f"round {r + 1} Polars semi-join, exact IPs on conn: {wall:.2f} s, {cpu:.2f} CPU-s, "
            f"{semi_hits:,} hits; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        # cold: the indexes built in the call (as the semi-join builds its hash table); warm:
        # the same indicators again, their indexes cached by content (patrol, repeated matches)
        for label, runs_of in (("cold", exact_runs), ("warm", warm_runs)):
            if label == "cold":
                clear_cache()
            c, t = time.process_time(), time.perf_counter()
            exact_hits = match(only_ips, {"conn": lazy["conn"]}).height
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            runs_of.append((wall, cpu, exact_hits))
            print(
                f"round {r + 1} match(), exact IPs only, on conn, {label}: {wall:.2f} s, "
                f"{cpu:.2f} CPU-s, {exact_hits:,} hit rows; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        clear_cache()  # every indicator: the cold path, as in earlier rounds of this benchmark
        for name, f in matchers:  # alternately, so both see the same machine
            with PeakRss() as mem:
                c, t = time.process_time(), time.perf_counter()
                results[name] = f(ind, lazy)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
            runs[name].append((wall, cpu, mem.growth_gb))
            print(
                f"round {r + 1} {name}: {wall:.2f} s, {cpu:.2f} CPU-s, +{mem.growth_gb:.2f} GB, "
                f"{results[name].height:,} hits; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        # every indicator again: the indexes the cold call just built are reused (patrol)
        c, t = time.process_time(), time.perf_counter()
        warm_hits = match(ind, lazy).height
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        warm_all.append((wall, cpu, warm_hits))
        print(
            f"round {r + 1} match(), indexes cached: {wall:.2f} s, {cpu:.2f} CPU-s, "
            f"{warm_hits:,} hits; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    if a.before:
        cols = ["uid", "where", "indicator", "seen"]
        new, old = (results[name].select(cols).sort(cols) for name, _ in matchers)
        assert new.equals(old), "match() before and after differ"
        print("same hits before and after")
    m = a.baseline
    py_s, py_hits = python_match(ind, frames["conn"].head(m), frames["dns"].head(m // 10))
    py_rate = (m + m // 10) / py_s
    print(f"\nrepeat {a.repeat}: median (min–max); load after {os.getloadavg()[0]:.1f}\n")
    print(
        "| matcher | records | seconds | records/s (median; best) | records per CPU-second "
        "| memory growth (GB, max) | hits | plain Python records/s | speed-up (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in matchers:
        times = [x[0] for x in runs[name]]
        cpu = [x[1] for x in runs[name]]
        rate = n_rec / statistics.median(times)
        print(
            f"| `{name}` | {n_rec:,} | {_spread(times)} | {rate / 1e6:.1f} M; "
            f"{n_rec / min(times) / 1e6:.1f} M | {n_rec / statistics.median(cpu) / 1e6:.1f} M "
            f"| {max(x[2] for x in runs[name]):.2f} | {results[name].height:,} "
            f"| {py_rate / 1e3:.0f} k | {rate / py_rate:.0f}× |"
        )
    times = [x[0] for x in warm_all]
    rate = n_rec / statistics.median(times)
    print(
        f"| `match()`, indexes cached | {n_rec:,} | {_spread(times)} | {rate / 1e6:.1f} M; "
        f"{n_rec / min(times) / 1e6:.1f} M | {n_rec / statistics.median(x[1] for x in warm_all) / 1e6:.1f} M "
        f"| | {warm_all[-1][2]:,} | {py_rate / 1e3:.0f} k | {rate / py_rate:.0f}× |"
    )
    n_conn = frames["conn"].height
    for name, conn_runs in (
        ("Polars semi-join (exact IPs only, conn)", semi_runs),
        ("`match()`, exact IPs only (conn), indexes built in the call", exact_runs),
        ("`match()`, exact IPs only (conn), indexes cached", warm_runs),
    ):
        times = [x[0] for x in conn_runs]
        cpu = [x[1] for x in conn_runs]
        rate = n_conn / statistics.median(times)
        print(
            f"| {name} | {n_conn:,} | {_spread(times)} "
            f"| {rate / 1e6:.1f} M; {n_conn / min(times) / 1e6:.1f} M "
            f"| {n_conn / statistics.median(cpu) / 1e6:.1f} M | | {conn_runs[-1][2]:,} "
            f"| {py_rate / 1e3:.0f} k | {rate / py_rate:.0f}× |"
        )
    print(
        f"(plain Python: IP + CIDR on {m:,} conn and parents of {m // 10:,} dns queries, {py_hits:,} hits)"
    )
    semi_s = statistics.median(x[0] for x in semi_runs)
    semi_cpu = statistics.median(x[1] for x in semi_runs)
    for label, conn_runs in (("cold", exact_runs), ("warm", warm_runs)):
        wall = statistics.median(x[0] for x in conn_runs)
        cpu = statistics.median(x[1] for x in conn_runs)
        per_round = ", ".join(
            f"{s_[0] / m_[0]:.2f}" for s_, m_ in zip(semi_runs, conn_runs, strict=True)
        )
        print(
            f"exact IPs, match() ({label}) against the Polars semi-join: {semi_s / wall:.2f}x the "
            f"records/s (median; per round {per_round}), {semi_cpu / cpu:.2f}x the records per "
            f"CPU-second (>= 1: match() is at least as fast)"
        )
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def before_after(a: argparse.Namespace) -> None:
    """The kernels of an earlier commit beside the current ones, alternating, same workload."""
    old: Any = _load_before(a.before)
    cidrs, addrs, doms, names = workload(a.indicators, a.records, a.seed)
    oc, nc = old.CidrIndex.build(cidrs), CidrIndex.build(cidrs)
    od, nd = old.DomainIndex.build(doms), DomainIndex.build(doms)
    oc.lookup(addrs[:1000])
    od.lookup(names[:1000])
    print(f"{a.before} against the working tree; load {os.getloadavg()[0]:.1f}")
    for _ in range(a.repeat):
        row = []
        for name, f in (
            ("cidr before", lambda: oc.lookup(addrs)), ("cidr after", lambda: nc.lookup(addrs)),
            ("domains before", lambda: od.lookup(names)), ("domains after", lambda: nd.lookup(names)),
        ):  # fmt: skip
            t = time.perf_counter()
            f()
            row.append(f"{name} {time.perf_counter() - t:.2f} s")
        print(" | ".join(row), flush=True)
    assert np.array_equal(oc.lookup(addrs), nc.lookup(addrs)), "CIDR labels differ"
    (r1, v1), (r2, v2) = od.lookup(names), nd.lookup(names)
    assert np.array_equal(r1, r2) and np.array_equal(v1, v2), "domain hits differ"
    print(f"same labels and hits; load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--indicators", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--lake",
        type=Path,
        help="match() over this lake (bench_detect.py writes work/synth-lake-*)",
    )
    ap.add_argument("--before", help="also time the kernels of this commit (e.g. 00f574a)")
    ap.add_argument("--broad", action="store_true", help="with --lake: also list 0.0.0.0/0, ::/0")
    a = ap.parse_args()
    if a.lake:
        lake_mode(a)
    elif a.before:
        before_after(a)
    else:
        kernels(a)


if __name__ == "__main__":
    main()
