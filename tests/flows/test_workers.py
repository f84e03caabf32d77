"""Splitting a capture's connections over workers changes nothing in what is written."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from mamori.config import Settings
from mamori.flows.memory import ARROW_POOL_ENV
from mamori.flows.pipeline import Ingest, tables_of
from mamori.flows.workers import LakeIngest
from mamori.lake.query import connect

# Tunnels (the inner connection must follow its outer one), fragments, every analyser, ICMP,
# a scan, and connection reuse.
CAPTURES = [
    "zeek-btest/Traces/tunnels/gre-within-gre.pcap",
    "zeek-btest/Traces/tunnels/teredo-udp-in-udp.pcap",
    "zeek-btest/Traces/tunnels/vxlan-encapsulated-igmp-v2.pcap",
    "zeek-btest/Traces/socks-with-ssl.pcap",
    "zeek-btest/Traces/smtp.pcap",
    "zeek-btest/Traces/wikipedia.pcap",
    "zeek-btest/Traces/tcp/handshake-reorder.pcap",
    "zeek-btest/Traces/pppoe-over-qinq.pcap",
    "zeek-btest/Traces/dns53.pcap",
    "zeek-btest/Traces/tunnels/gtp/gtp1_gn_normal_incl_fragmentation.pcap",
    "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap",
]


def _sharded(path: Path, n: int, settings: Settings) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}

    def sink(table: str, data: pa.Table) -> None:
        parts.setdefault(table, []).append(data)

    for k in range(n):
        Ingest(settings, sink).capture(path, (k, n))
    return {t: pa.concat_tables(v) for t, v in parts.items()}


def _canonical(table: pa.Table) -> list[dict[str, object]]:
    keys = [c for c in ("uid", "ts", "trans_id", "uri", "query") if c in table.column_names]
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: (*(str(r[k]) for k in keys), repr(r)))


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("n", [2, 3])
def test_shards_write_what_one_process_writes(data_dir: Path, name: str, n: int) -> None:
    path = data_dir / name
    settings = Settings(batch_bytes=1 << 16)  # many batches: state must cross their edges
    whole, _ = tables_of([path], settings)
    split = _sharded(path, n, settings)
    assert set(split) == set(whole)
    for table in whole:
        assert _canonical(split[table]) == _canonical(whole[table]), table


def test_parallel_lake_ingest_matches_one_process(data_dir: Path, tmp_path: Path) -> None:
    """Real worker processes writing into one lake: the same rows as one process."""
    path = data_dir / "zeek-btest/Traces/wikipedia.pcap"
    lakes = {}
    for workers in (1, 2):
        lake = tmp_path / f"lake{workers}"
        settings = Settings(workers=workers, parallel_min_bytes=0)
        with LakeIngest(settings, lake) as ingester:
            stats = ingester.capture(path)
        assert stats.error is None and stats.packets > 0
        con = connect(lake)
        lakes[workers] = (
            stats.rows,
            {
                t: con.sql(f"SELECT * EXCLUDE (date) FROM {t} ORDER BY ALL").fetchall()
                for t in stats.rows
            },
        )
    assert lakes[1] == lakes[2]


def test_worker_processes_are_prepared_and_the_caller_is_not(
    data_dir: Path, tmp_path: Path
) -> None:
    """Workers load Arrow on the system pool without pandas (flows/memory.py); the process that
    called LakeIngest keeps its environment and can still import pandas."""
    before = os.environ.get(ARROW_POOL_ENV)
    path = data_dir / "zeek-btest/Traces/wikipedia.pcap"
    with LakeIngest(Settings(workers=2, parallel_min_bytes=0), tmp_path) as ingester:
        assert ingester.capture(path).error is None
        pool = ingester._pool
        assert pool is not None
        assert pool.submit(os.getenv, ARROW_POOL_ENV).result() == (before or "system")
        with pytest.raises(ModuleNotFoundError):
            pool.submit(importlib.util.find_spec, "pandas").result()
    assert os.environ.get(ARROW_POOL_ENV) == before
    assert not any(type(f).__name__ == "_WithoutPandas" for f in sys.meta_path)


_FORKED = """
import json, sys
from mamori.flows.memory import prepare_ingest_process
prepare_ingest_process()
from pathlib import Path
from mamori.config import Settings
from mamori.flows.workers import LakeIngest
from mamori.lake.query import connect
with LakeIngest(Settings(workers=2, parallel_min_bytes=0), Path(sys.argv[2])) as ingester:
    method = ingester._pool._mp_context.get_start_method()
    stats = ingester.capture(Path(sys.argv[1]))
    child_has_pandas = ingester._pool.submit(
        __import__("importlib.util").util.find_spec, "pandas"
    ).exception() is None
con = connect(Path(sys.argv[2]))
rows = {t: con.sql(f"SELECT * EXCLUDE (date) FROM {t} ORDER BY ALL").fetchall() for t in stats.rows}
print(json.dumps({"method": method, "pandas": child_has_pandas, "error": stats.error,
                  "rows": stats.rows, "tables": {t: [repr(r) for r in v] for t, v in rows.items()}}))
"""


def test_a_prepared_process_forks_its_workers_and_writes_the_same_lake(
    data_dir: Path, tmp_path: Path
) -> None:
    """The ``ingest`` command's process (prepared before pyarrow loads) forks its workers when the
    ingest starts instead of spawning them; the lake is the one process's lake."""
    path = data_dir / "zeek-btest/Traces/wikipedia.pcap"
    one = tmp_path / "one"
    with LakeIngest(Settings(workers=1), one) as ingester:
        stats = ingester.capture(path)
    con = connect(one)
    want = {
        t: [repr(r) for r in con.sql(f"SELECT * EXCLUDE (date) FROM {t} ORDER BY ALL").fetchall()]
        for t in stats.rows
    }
    out = subprocess.run(
        [sys.executable, "-c", _FORKED, str(path), str(tmp_path / "two")],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    got = json.loads(out.stdout)
    assert got["method"] == "fork"
    assert got["pandas"] is False  # the fork inherits the prepared process's import blocker
    assert got["error"] is None
    assert got["rows"] == stats.rows
    assert got["tables"] == want


_THREADED = """
import threading
from mamori.flows.memory import prepare_ingest_process
prepare_ingest_process()
from pathlib import Path
from mamori.config import Settings
from mamori.flows.workers import LakeIngest
stop = threading.Event()
t = threading.Thread(target=stop.wait)
t.start()
try:
    with LakeIngest(Settings(workers=2), Path(__import__("sys").argv[1])) as ingester:
        print(ingester._pool is None)
finally:
    stop.set()
"""


def test_a_prepared_process_with_another_thread_does_not_fork(tmp_path: Path) -> None:
    """A thread of the caller's (a progress bar's) could hold a lock a fork copies: spawn then."""
    out = subprocess.run(
        [sys.executable, "-c", _THREADED, str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == "True"
