"""Capture -> records: mamori ingest side by side with its peers, in one run.

    benchmarks/build_workload.sh && python benchmarks/bench_ingest.py

Every tool runs in this one invocation on the workload that build_workload.sh made (or on a slice
of it, for the slow peers), as a whole process: wall time, packets/s, MB/s of capture read and
peak RSS (``/usr/bin/time -v``'s maximum resident set size of the largest process, and the peak of
the summed RSS of the whole process tree, sampled every 50 ms, for tools that fork). A tool with
two stages (capture -> binary flows -> text) is timed over both. Figures are only meaningful as
ratios between tools of the same run; they are written to ``benchmarks/results/ingest-<date>.json``
and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from precompile import byte_compile_mamori

try:  # comes with nfstream; without it the tree figure is left at 0
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / "peers"
PY = sys.executable

# input key -> file under work/ (see build_workload.sh)
INPUTS = {
    "full": "workload.pcap",
    "10 rounds": "workload-10r.pcap",
    "1 % slice": "workload-1pct.pcap",
    "200k slice": "workload-200k.pcap",
    "payload-rich": "payload.pcap",
    "big": "big.pcap",
}


@dataclass
class Stage:
    cmd: list[str]
    wall_s: float = 0.0
    max_rss_mb: float = 0.0  # /usr/bin/time -v: largest single process
    tree_rss_mb: float = 0.0  # sampled: whole process tree
    user_s: float = 0.0
    sys_s: float = 0.0
    rc: int = 0
    stdout_file: str = ""
    rss_timeline: list[tuple[float, float]] = field(default_factory=list)  # (s, tree MB) every 5 s


@dataclass
class Result:
    tool: str
    input: str
    file: str
    packets: int
    bytes: int
    status: str = "ok"  # ok | failed | skipped
    note: str = ""
    wall_s: float = 0.0
    packets_per_s: float = 0.0
    mb_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    tree_peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    records: dict[str, int] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    error: str = ""


def _tree_rss(proc: psutil.Process) -> int:  # type: ignore[name-defined]
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_stage(cmd: list[str], out: Path, err: Path, timeout: float) -> Stage:
    """One process under /usr/bin/time -v, its tree's RSS sampled until it ends."""
    tv = out.with_suffix(".time")
    stage = Stage(cmd=cmd, stdout_file=str(out))
    peak = 0
    stop = threading.Event()
    with out.open("wb") as fo, err.open("wb") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(tv), *cmd], stdout=fo, stderr=fe)
        ps = psutil.Process(proc.pid) if psutil else None

        def sample() -> None:
            nonlocal peak
            last = -5.0
            while ps is not None and not stop.is_set():
                rss = _tree_rss(ps)
                peak = max(peak, rss)
                now = time.perf_counter() - t0
                if now - last >= 5.0:
                    stage.rss_timeline.append((round(now, 1), round(rss / 2**20)))
                    last = now
                stop.wait(0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            stage.rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            stage.rc = -9
        stage.wall_s = time.perf_counter() - t0
        stop.set()
        th.join()
    # /usr/bin/time's own RSS (~2 MB) is in the tree figure; take it out.
    stage.tree_rss_mb = max(0, peak - 2 * 2**20) / 2**20
    text = tv.read_text(errors="replace") if tv.exists() else ""
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    stage.max_rss_mb = int(m.group(1)) / 1024 if m else 0.0
    for key, attr in (("User time (seconds)", "user_s"), ("System time (seconds)", "sys_s")):
        m = re.search(re.escape(key) + r": ([\d.]+)", text)
        setattr(stage, attr, float(m.group(1)) if m else 0.0)
    return stage


@dataclass
class Tool:
    name: str
    input: str
    # (scratch dir, capture) -> commands run one after the other
    stages: Callable[[Path, Path], list[list[str]]]
    # (scratch dir, stages) -> records per table
    count: Callable[[Path, list[Stage]], dict[str, int]]
    needs: list[str] = field(default_factory=list)  # executables or python modules
    note: str = ""
    warmup: bool = False  # run once untimed on the 1 % slice first (JIT caches)
    timeout: float = 3600.0


def _lines(path: str, skip_prefix: tuple[str, ...] = ()) -> int:
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip() and not line.startswith(tuple(p.encode() for p in skip_prefix)):
                n += 1
    return n


def _last_int(path: str) -> dict[str, int]:
    text = Path(path).read_text(errors="replace").split()
    return {"flows": int(text[-1])} if text and text[-1].isdigit() else {}


def _lake_rows(lake: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    rows: dict[str, int] = {}
    for f in sorted(lake.rglob("*.parquet")):
        table = f.relative_to(lake).parts[0]
        rows[table] = rows.get(table, 0) + pq.ParquetFile(f).metadata.num_rows
    rows["parquet files"] = len(list(lake.rglob("*.parquet")))
    return rows


def mamori_exe() -> str | None:
    """The ``mamori`` console script of this interpreter's installation, as a venv runs it; a
    version manager's shim on PATH (pyenv's is a shell script) would add its own start-up."""
    beside = Path(PY).parent / "mamori"
    return str(beside) if beside.is_file() else shutil.which("mamori")


def mamori_cli_ready() -> bool:
    exe = mamori_exe()
    if not exe:
        return False
    try:
        r = subprocess.run([exe, "ingest", "--help"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def mamori_tool(input_key: str, cli: bool, one_process: bool = False) -> Tool:
    """mamori on every core (its default), or held to one process (``MAMORI_WORKERS=1``)."""

    def stages(tmp: Path, cap: Path) -> list[list[str]]:
        env = ["env", "MAMORI_WORKERS=1"] if one_process else []
        if cli:
            exe = mamori_exe() or "mamori"
            return [[*env, exe, "ingest", str(cap), "--lake", str(tmp / "lake")]]
        return [
            [*env, PY, str(PEERS / "mamori_fallback.py"), str(cap), "--lake", str(tmp / "lake")]
        ]

    return Tool(
        name="mamori ingest, 1 process" if one_process else "mamori ingest",
        input=input_key,
        stages=stages,
        count=lambda tmp, _s: _lake_rows(tmp / "lake"),
        note="CLI `mamori ingest`"
        if cli
        else "pipeline.Ingest + pyarrow Parquet sink (no CLI yet)",
        warmup=True,
    )


def nfdump_tool(input_key: str) -> Tool:
    def stages(tmp: Path, cap: Path) -> list[list[str]]:
        (tmp / "nf").mkdir()
        return [
            ["nfpcapd", "-r", str(cap), "-w", str(tmp / "nf")],
            ["nfdump", "-R", str(tmp / "nf"), "-o", "csv", "-q"],
        ]

    return Tool(
        "nfpcapd + nfdump -o csv",
        input_key,
        stages,
        lambda _t, s: {"flows (unidirectional)": _lines(s[1].stdout_file)},
        needs=["nfpcapd", "nfdump"],
    )


def argus_tool(input_key: str) -> Tool:
    def stages(tmp: Path, cap: Path) -> list[list[str]]:
        return [
            ["argus", "-r", str(cap), "-w", str(tmp / "flows.argus")],
            [
                "ra",
                "-r",
                str(tmp / "flows.argus"),
                "-n",
                "-c",
                ",",
                "-s",
                *["stime", "saddr", "sport", "daddr", "dport", "proto", "pkts", "bytes", "state"],
            ],
        ]

    return Tool(
        "argus + ra",
        input_key,
        stages,
        # header line and argus's own management records (proto "man") are not flows
        lambda _t, s: {"flows": _lines(s[1].stdout_file) - 1 - _grep(s[1].stdout_file, ",man,")},
        needs=["argus", "ra"],
    )


def _grep(path: str, needle: str) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if needle.encode() in line)


def tshark_tool(input_key: str) -> Tool:
    return Tool(
        "tshark -q -z conv,tcp",
        input_key,
        lambda _t, cap: [["tshark", "-n", "-q", "-z", "conv,tcp", "-r", str(cap)]],
        lambda _t, s: {"tcp conversations": _grep(s[0].stdout_file, "<->")},
        needs=["tshark"],
    )


def python_peer(name: str, script: str, input_key: str, needs: list[str], **kw) -> Tool:
    return Tool(
        name,
        input_key,
        lambda _t, cap: [[PY, str(PEERS / script), str(cap)]],
        lambda _t, s: _last_int(s[0].stdout_file),
        needs=needs,
        **kw,
    )


def available(need: str) -> bool:
    if shutil.which(need):
        return True
    if need.startswith("py:"):
        r = subprocess.run([PY, "-c", f"import {need[3:]}"], capture_output=True)
        return r.returncode == 0
    return False


def manifest(work: Path) -> dict[str, tuple[int, int]]:
    out = {}
    lines = (work / "manifest.tsv").read_text().splitlines()[1:]
    for line in lines:
        name, packets, size = line.split("\t")
        out[name] = (int(packets), int(size))
    return out


def warm(path: Path) -> None:
    """Read ``path`` once, untimed, so the run that follows finds it in the page cache.

    PERFORMANCE.md measured every peer with a warm page cache, and this machine gives cached
    pages back between runs (idle, its page cache shrank by ~30 MB/s): without this the first
    tool of a round paid the capture's read from disk (in four of five runs of ``--repeat 5``,
    round 1 gave mamori's lowest ratio, 4.38-4.49x nfpcapd, the other rounds 4.81-5.52x). Every
    tool is warmed alike, before each of its runs."""
    buf = bytearray(16 << 20)
    with path.open("rb") as fh:
        while fh.readinto(buf):
            pass


def measure(tool: Tool, work: Path, sizes: dict[str, tuple[int, int]], scratch: Path) -> Result:
    fname = INPUTS[tool.input]
    cap = work / fname
    packets, size = sizes.get(fname, (0, 0))
    res = Result(tool.name, tool.input, fname, packets, size, note=tool.note)
    if not cap.exists():
        res.status, res.error = "skipped", f"{cap} not built (see build_workload.sh)"
        return res
    missing = [n for n in tool.needs if not available(n)]
    if missing:
        res.status, res.error = "skipped", f"not installed: {', '.join(missing)}"
        return res
    if tool.warmup and (work / INPUTS["1 % slice"]).exists():
        with tempfile.TemporaryDirectory(dir=scratch) as t:
            for cmd in tool.stages(Path(t), work / INPUTS["1 % slice"]):
                subprocess.run(cmd, capture_output=True)
    warm(cap)
    tmp = Path(tempfile.mkdtemp(prefix=re.sub(r"\W+", "-", tool.name) + "-", dir=scratch))
    print(f"--> {tool.name} on {tool.input} ({packets:,} packets)", flush=True)
    try:
        for i, cmd in enumerate(tool.stages(tmp, cap)):
            st = run_stage(cmd, tmp / f"stage{i}.out", tmp / f"stage{i}.err", tool.timeout)
            res.stages.append(st)
            if st.rc != 0:
                res.status = "failed"
                tail = (tmp / f"stage{i}.err").read_text(errors="replace")[-2000:]
                res.error = f"`{' '.join(cmd)}` exited {st.rc}: {tail}"
                break
        res.wall_s = sum(s.wall_s for s in res.stages)
        res.cpu_s = sum(s.user_s + s.sys_s for s in res.stages)
        res.peak_rss_mb = max((s.max_rss_mb for s in res.stages), default=0.0)
        res.tree_peak_rss_mb = max((s.tree_rss_mb for s in res.stages), default=0.0)
        if res.status == "ok":
            res.packets_per_s = packets / res.wall_s
            res.mb_per_s = size / res.wall_s / 1e6
            try:
                res.records = tool.count(tmp, res.stages)
            except Exception as exc:  # a count that fails must not lose the timing
                res.note += f" (records not counted: {exc})"
        print(
            f"    {res.status}: {res.wall_s:.1f} s, {res.packets_per_s:,.0f} packets/s, "
            f"{res.peak_rss_mb:.0f} MB peak RSS, records {res.records} {res.error[:300]}",
            flush=True,
        )
    finally:
        # flow dumps and lakes can be GBs: nothing of a run is kept but its figures
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def machine() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_avg_at_start": os.getloadavg(),
    }
    with contextlib.suppress(StopIteration):
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    versions = {}
    for cmd in (
        ["nfdump", "-V"],
        ["argus", "-h"],
        ["tshark", "--version"],
        ["tcprewrite", "--version"],
    ):
        if shutil.which(cmd[0]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            first = (r.stdout + r.stderr).strip().splitlines()
            versions[cmd[0]] = first[0] if first else ""
    for mod in ("mamori", "nfstream", "dpkt", "numba", "polars", "pyarrow"):
        r = subprocess.run(
            [PY, "-c", f"import importlib.metadata as m; print(m.version('{mod}'))"],
            capture_output=True,
            text=True,
        )
        versions[mod] = r.stdout.strip() or "not installed"
    try:
        versions["mamori commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True
        ).stdout
        versions["mamori src dirty"] = bool(dirty.strip())
    except OSError:
        pass
    info["versions"] = versions
    return info


def ratios(results: list[Result]) -> dict[str, float]:
    ok = {(r.tool, r.input): r for r in results if r.status == "ok"}
    out: dict[str, float] = {}
    m = ok.get(("mamori ingest", "full"))
    if m is None:
        return out
    for r in ok.values():
        if r.tool.startswith("mamori ingest"):
            continue
        # peers on a slice compare by packets/s; the payload-rich runs only with each other
        if r.input == "payload-rich":
            continue
        out[f"mamori / {r.tool} ({r.input})"] = m.packets_per_s / r.packets_per_s
    nf = ok.get(("nfpcapd + nfdump -o csv", "full"))
    if nf:
        out["mamori / goal (5 x nfpcapd, full)"] = m.packets_per_s / (5 * nf.packets_per_s)
    mp = ok.get(("minimal Numba+Polars pass", "full"))
    if mp:
        out["minimal pass / mamori (goal <= 3)"] = mp.packets_per_s / m.packets_per_s
    one = ok.get(("mamori ingest, 1 process", "full"))
    if one:
        out["mamori, every core / 1 process"] = m.packets_per_s / one.packets_per_s
        if nf:
            out["mamori 1 process / nfpcapd (full)"] = one.packets_per_s / nf.packets_per_s
    mp_pl = ok.get(("mamori ingest", "payload-rich"))
    nf_pl = ok.get(("nfpcapd + nfdump -o csv", "payload-rich"))
    if mp_pl and nf_pl:
        out["payload-rich: mamori / nfpcapd"] = mp_pl.packets_per_s / nf_pl.packets_per_s
        out["payload-rich: mamori / goal (5 x nfpcapd)"] = mp_pl.packets_per_s / (
            5 * nf_pl.packets_per_s
        )
    ar_pl = ok.get(("argus + ra", "payload-rich"))
    if mp_pl and ar_pl:
        out["payload-rich: mamori / argus"] = mp_pl.packets_per_s / ar_pl.packets_per_s
    return out


def median_result(runs: list[Result]) -> Result:
    """The round whose wall time is the median of a tool's successful rounds (the lower middle
    of an even count), so its packets/s, memory and records stay one real run's, not a blend."""
    ok = sorted((r for r in runs if r.status == "ok"), key=lambda r: r.wall_s)
    return ok[(len(ok) - 1) // 2] if ok else runs[0]


def ratio_spread(per_round: list[dict[str, float]]) -> dict[str, list[float]]:
    """Each ratio's value in every round that had it, in round order."""
    out: dict[str, list[float]] = {}
    for rat in per_round:
        for k, v in rat.items():
            out.setdefault(k, []).append(v)
    return out


def markdown(
    results: list[Result],
    rat: dict[str, float],
    info: dict[str, object],
    spread: dict[str, list[float]] | None = None,
) -> str:
    rounds = int(info.get("rounds", 1))  # type: ignore[call-overload]
    lines = [
        f"Run {info['date']} on {info.get('cpu', '?')}, {info['cpus']} CPUs, "
        f"{info['memory_gib']} GiB (load at start {info['load_avg_at_start']}).",
        *(
            [f"{rounds} rounds, tools interleaved; each tool's median round (by wall time)."]
            if rounds > 1
            else []
        ),
        "",
        "| tool | input | packets | wall s | packets/s | MB/s | peak RSS MB (largest process / tree) "
        "| records |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(
                f"| {r.tool} | {r.input} | {r.packets:,} | – | – | – | – | "
                f"**{r.status}**: {r.error[:200].replace('|', '/').replace(chr(10), ' ')} |"
            )
            continue
        recs = ", ".join(f"{k} {v:,}" for k, v in r.records.items())
        lines.append(
            f"| {r.tool} | {r.input} | {r.packets:,} | {r.wall_s:.1f} | {r.packets_per_s:,.0f} "
            f"| {r.mb_per_s:.1f} | {r.peak_rss_mb:,.0f} / {r.tree_peak_rss_mb:,.0f} | {recs} |"
        )
    if rat and spread:
        lines += [
            "",
            "| ratio (packets/s, same round) | median tools | median of rounds | rounds |",
            "|---|---:|---:|---|",
        ]
        for k, v in rat.items():
            vals = spread.get(k, [])
            med = sorted(vals)[(len(vals) - 1) // 2] if vals else float("nan")
            each = ", ".join(f"{x:.2f}" for x in vals)
            lines.append(f"| {k} | {v:.2f}× | {med:.2f}× | {each} |")
    elif rat:
        lines += ["", "| ratio (packets/s, same run) | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f}× |" for k, v in rat.items()]
    return "\n".join(lines) + "\n"


def plan(args: argparse.Namespace, cli: bool) -> list[Tool]:
    tools = [
        mamori_tool("full", cli),
        mamori_tool("full", cli, one_process=True),
        nfdump_tool("full"),
        argus_tool("full"),
        tshark_tool("1 % slice"),
        python_peer(
            "NFStream",
            "nfstream_flows.py",
            "10 rounds",
            ["py:nfstream"],
            note="NFStreamer(statistical_analysis=False), nDPI on, flows counted",
        ),
        python_peer("dpkt loop, dict of 5-tuples", "dpkt_flows.py", "10 rounds", ["py:dpkt"]),
        python_peer(
            "minimal Numba+Polars pass",
            "minimal_pass.py",
            "full",
            ["py:numba", "py:polars"],
            warmup=True,
            note="PERFORMANCE.md's floor: header walk + group_by, no timeouts/state/payload",
        ),
        mamori_tool("payload-rich", cli),
        nfdump_tool("payload-rich"),
        argus_tool("payload-rich"),
    ]
    if args.big:
        tools.append(mamori_tool("big", cli))
    if args.only:
        tools = [t for t in tools if any(o.lower() in t.name.lower() for o in args.only)]
    if args.inputs:
        tools = [t for t in tools if t.input in args.inputs]
    if args.smoke:  # every tool once, on the 1 % slice: checks the commands, not the speed
        seen: set[str] = set()
        tools = [t for t in tools if not (t.name in seen or seen.add(t.name))]
        for t in tools:
            t.input = "1 % slice"
    return tools


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--big", action="store_true", help="also mamori on work/big.pcap (BIG=1)")
    ap.add_argument("--only", nargs="*", help="tools whose name contains one of these")
    ap.add_argument("--inputs", nargs="*", choices=list(INPUTS), help="only these inputs")
    ap.add_argument("--smoke", action="store_true", help="each tool once on the 1 %% slice")
    ap.add_argument("--suffix", default="", help="results file name suffix, e.g. -big")
    ap.add_argument("--fallback", action="store_true", help="use the pipeline, not the CLI")
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of every tool, interleaved (median reported)"
    )
    args = ap.parse_args()

    sizes = manifest(args.work)
    byte_compile_mamori()  # as an installed package has it (precompile.py)
    cli = not args.fallback and mamori_cli_ready()
    info = machine()
    info["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    params = args.work / "params.tsv"
    if params.exists():
        info["workload"] = dict(line.split("\t") for line in params.read_text().splitlines())
    info["mamori_command"] = "mamori ingest" if cli else "benchmarks/peers/mamori_fallback.py"
    args.results.mkdir(parents=True, exist_ok=True)
    scratch = args.work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)

    tools = plan(args, cli)
    rounds: list[list[Result]] = []
    for r in range(args.repeat):
        if args.repeat > 1:
            print(f"== round {r + 1} of {args.repeat} (load {os.getloadavg()[0]:.1f})", flush=True)
        rounds.append([measure(t, args.work, sizes, scratch) for t in tools])
    # One round: its results. Several: each tool's median round (by wall time), and every
    # ratio's spread over the rounds, since one round of a noisy machine can land either side.
    results = (
        [median_result(list(col)) for col in zip(*rounds, strict=True)]
        if len(rounds) > 1
        else rounds[0]
    )
    rat = ratios(results)
    spread = ratio_spread([ratios(rr) for rr in rounds]) if len(rounds) > 1 else {}
    info["rounds"] = args.repeat
    stem = args.results / f"ingest-{info['date'][:10]}{'-smoke' if args.smoke else ''}{args.suffix}"
    doc = {
        "machine": info,
        "results": [asdict(r) for r in results],
        "ratios": rat,
        "ratio_rounds": spread,
        "rounds": [[asdict(r) for r in rr] for rr in rounds] if len(rounds) > 1 else [],
    }
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    md = markdown(results, rat, info, spread)
    stem.with_suffix(".md").write_text(md)
    print()
    print(md)
    print(f"written {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
