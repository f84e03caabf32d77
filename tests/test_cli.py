"""The ``mamori`` command end to end on real captures: ingest, flows, sql, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mamori.cli import app

runner = CliRunner()


@pytest.fixture()
def ssh_capture(data_dir: Path) -> Path:
    return data_dir / "zeek-btest" / "Traces" / "ssh" / "sshguess.pcap"


def test_ingest_then_sql(tmp_path: Path, ssh_capture: Path) -> None:
    lake = tmp_path / "lake"
    res = runner.invoke(app, ["ingest", str(ssh_capture), "--lake", str(lake)])
    assert res.exit_code == 0, res.output
    assert "packets/s" in res.output
    assert list((lake / "conn").glob("date=2015-03-30/*.parquet"))
    res = runner.invoke(
        app,
        [
            "sql",
            "SELECT count(*) AS n, min(service) AS s FROM conn WHERE resp_p = 22",
            "--lake",
            str(lake),
            "--format",
            "csv",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "n,s"
    n, service = lines[1].split(",")
    assert int(n) == 11 and service == "ssh"  # Zeek logs 11 SSH connections for this trace
    res = runner.invoke(
        app, ["sql", "SELECT count(*) FROM ssh", "--lake", str(lake), "--format", "csv"]
    )
    assert res.output.strip().splitlines()[1] == "11"


def test_flows_zeek_format_has_zeek_headers(ssh_capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "conn.log"
    res = runner.invoke(app, ["flows", str(ssh_capture), "--format", "zeek", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text().splitlines()
    fields = next(line for line in text if line.startswith("#fields")).split("\t")
    assert fields[1:7] == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    first = next(line for line in text if not line.startswith("#")).split("\t")
    row = dict(zip(fields[1:], first, strict=True))
    assert row["history"] == "ShADadFf" and row["conn_state"] == "SF"
    assert row["orig_bytes"] == "2885" and row["resp_pkts"] == "19"


def test_flows_jsonl_dns(data_dir: Path) -> None:
    capture = data_dir / "zeek-btest" / "Traces" / "dns-txt-multiple.pcap"
    res = runner.invoke(app, ["flows", str(capture), "--table", "dns"])
    assert res.exit_code == 0, res.output
    assert '"id.orig_h"' in res.output and '"query"' in res.output


def test_empty_file_is_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    res = runner.invoke(app, ["flows", str(empty)])
    assert res.exit_code == 1
    assert "empty.pcap: empty file, not a capture" in res.output
    assert "Traceback" not in res.output


def test_truncated_capture_keeps_packets_and_warns(tmp_path: Path, ssh_capture: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = ssh_capture.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])
    res = runner.invoke(app, ["flows", str(cut), "--format", "jsonl"])
    assert res.exit_code == 0
    assert "warning" in res.output and "record" in res.output and "truncated" in res.output
    assert res.output.count('"uid"') >= 5


def _noticed_capture(tmp_path: Path) -> Path:
    """A pcapng whose Ethernet interface cuts packets at a snaplen of 96, with a Wi-Fi one."""
    from support.pcap_writer import PcapngWriter, ether, ip4, ipv4, tcp

    w = PcapngWriter().section().interface(1, snaplen=96).interface(105)
    for k in range(6):
        frame = ether(
            0x0800, ipv4(ip4("10.0.0.1"), ip4("10.0.0.2"), 6, tcp(4000 + k, 80, b"x" * 200))
        )
        w.epb(1 if k == 2 else 0, k * 1000, frame[:96], wirelen=len(frame))
    path = tmp_path / "noticed.pcapng"
    path.write_bytes(w.bytes())
    return path


def test_packets_read_but_not_analysed_are_one_warning_each(tmp_path: Path) -> None:
    """An undecoded link type and snaplen cuts are told once each, naming the file and the first
    record, by ingest (two workers: still once) and flows, and kept in patrol's report."""
    cap = _noticed_capture(tmp_path)
    two = {"MAMORI_PARALLEL_MIN_BYTES": "0", "MAMORI_WORKERS": "2"}
    done = _run(PROGRAM, "ingest", str(cap), "--lake", str(tmp_path / "lake"), env=two)
    assert done.returncode == 0, done.stderr
    link = f"warning: {cap}: record 3: link type 105 (IEEE802_11 (Wi-Fi)) is not one mamori decodes"
    snap = f"warning: {cap}: record 1: 6 packet(s) cut short by the capture's snaplen"
    err = " ".join(done.stderr.split())  # (Rich may wrap a long line for a narrow terminal)
    assert err.count(link) == 1 and err.count(snap) == 1, done.stderr
    res = runner.invoke(app, ["flows", str(cap), "--format", "jsonl"])
    assert res.exit_code == 0 and "link type 105" in res.output and "snaplen" in res.output
    res = runner.invoke(app, ["patrol", str(cap), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    [entry] = json.loads((tmp_path / "out" / "report.json").read_text())["inputs"]
    assert [n.split(": ")[1] for n in entry["notices"]] == ["record 1", "record 3"]
    assert entry["problem"] is None
    html = (tmp_path / "out" / "report.html").read_text()
    assert "link type 105 (IEEE802_11 (Wi-Fi)) is not one mamori decodes" in html


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["ingest", str(tmp_path / "nope.pcap"), "--lake", str(tmp_path / "l")])
    assert res.exit_code == 2
    assert "no such file" in res.output


def test_sql_on_missing_lake(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sql", "SELECT 1", "--lake", str(tmp_path / "none")])
    assert res.exit_code == 1 and "no such lake folder" in res.output


def test_ingest_folder(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    for name in ("dns-txt-multiple.pcap", "dns53.pcap"):
        shutil.copy(data_dir / "zeek-btest" / "Traces" / name, folder / name)
    res = runner.invoke(app, ["ingest", str(folder), "--lake", str(tmp_path / "lake")])
    assert res.exit_code == 0, res.output
    assert "2 capture(s)" in res.output


def test_every_stage_door_is_mounted() -> None:
    """Each stage's command group answers through the one ``mamori`` command."""
    groups = [
        ["intel"], ["respond"], ["respond", "points"], ["respond", "audit"], ["case"],
        ["evidence"], ["keys"], ["report"], ["share"], ["share", "partner"], ["serve"], ["user"],
    ]  # fmt: skip
    for words in groups:
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (words, result.output)
        assert "Usage" in result.output


def test_the_main_job_does_not_load_other_stages_doors() -> None:
    """`mamori ingest` and `mamori patrol` start without importing the web, state-database and
    sharing stacks (several seconds on a loaded machine); a stage's group loads when named."""
    import subprocess
    import sys

    code = (
        "import sys; from mamori.cli import app, STAGES; "
        "from typer.main import get_command; get_command(app).get_command(None, 'ingest'); "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'stix2', 'weasyprint', "
        "'mamori.respond.cli', 'mamori.share.cli') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _run(command: list[str], *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )


PROGRAM = ["-m", "mamori.cli"]  # the ``mamori`` command as its own process, as users run it
LIBRARY = ["-c", "from mamori.cli import app; app()"]  # the same command called by other code


def test_ingest_as_its_own_process_ends_early_with_everything_written(
    tmp_path: Path, ssh_capture: Path
) -> None:
    """Run as its own program, the command ends its process without the interpreter's teardown
    once the lake is written and reported (and never loads SciPy); with two workers it writes
    what the command called as a library (ordinary exit) writes, prints the same report and
    keeps its exit codes."""
    two = {"MAMORI_PARALLEL_MIN_BYTES": "0", "MAMORI_WORKERS": "2"}
    runs = {
        name: _run(command, "ingest", str(ssh_capture), "--lake", str(tmp_path / name), env=two)
        for name, command in (("program", PROGRAM), ("library", LIBRARY))
    }
    for name, done in runs.items():
        assert done.returncode == 0, (name, done.stderr)
        assert "11 │" in done.stderr and "packets/s" in done.stderr, (name, done.stderr)
    for table in ("conn", "ssh"):
        got, want = (
            pq.read_table(sorted((tmp_path / name / table).rglob("*.parquet"))).sort_by("uid")
            for name in runs
        )
        assert got.num_rows == 11 and got.equals(want), table
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    bad = _run(PROGRAM, "ingest", str(empty), "--lake", str(tmp_path / "bad"), env={})
    assert bad.returncode == 1 and "empty file, not a capture" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr


def test_patrol_as_its_own_process_reports_what_the_library_call_reports(
    tmp_path: Path, ssh_capture: Path
) -> None:
    """Run as its own program, patrol prepares the process before pyarrow loads (its two ingest
    workers are forked), skips SciPy and ends without the interpreter's teardown: its report is
    the one the command called as a library writes."""
    two = {"MAMORI_PARALLEL_MIN_BYTES": "0", "MAMORI_WORKERS": "2"}
    reports = {}
    for name, command in (("program", PROGRAM), ("library", LIBRARY)):
        done = _run(command, "patrol", str(ssh_capture), "--out", str(tmp_path / name), env=two)
        assert done.returncode == 0, (name, done.stderr)
        assert "incidents →" in done.stderr, (name, done.stderr)
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
    got, want = reports["program"]["incidents"], reports["library"]["incidents"]
    assert got and got == want
    assert reports["program"]["summary"] == reports["library"]["summary"]


def test_ingest_kernels_run_without_scipy(ssh_capture: Path, tmp_path: Path) -> None:
    """What the command does to skip SciPy (Numba asks for its BLAS when a kernel loads) leaves
    every ingest kernel working."""
    code = (
        "import sys; from pathlib import Path\n"
        "from mamori.cli import _as_kernel_program; _as_kernel_program()\n"
        "from mamori.config import Settings; from mamori.flows.pipeline import Ingest\n"
        "from mamori.lake.writer import LakeWriter\n"
        f"with LakeWriter(Path({str(tmp_path)!r})) as w:\n"
        f"    s = Ingest(Settings(), w).capture(Path({str(ssh_capture)!r}))\n"
        "print(s.rows.get('conn', 0), 'scipy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows, scipy_loaded = done.stdout.split()
    assert int(rows) > 0 and scipy_loaded == "False"


def test_flows_as_its_own_process_writes_what_the_library_call_writes(
    tmp_path: Path, ssh_capture: Path
) -> None:
    """``flows`` ends its process early too, after its output is written whole: to a file and to
    stdout, the same log as the command called as a library (the open/close times aside)."""

    def log(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith(("#open", "#close"))]

    for name, command in (("program", PROGRAM), ("library", LIBRARY)):
        out = tmp_path / f"{name}.log"
        done = _run(command, "flows", str(ssh_capture), "--format", "zeek", "-o", str(out), env={})
        assert done.returncode == 0, done.stderr
    assert log((tmp_path / "program.log").read_text()) == log(
        (tmp_path / "library.log").read_text()
    )
    piped = _run(PROGRAM, "flows", str(ssh_capture), "--format", "zeek", env={})
    assert piped.returncode == 0 and log(piped.stdout) == log(
        (tmp_path / "library.log").read_text()
    )
    assert len(log(piped.stdout)) > 11


def test_ingest_reads_bsd_syslog_times_in_the_configured_zone(tmp_path: Path) -> None:
    """``log_timezone`` from the settings file reaches the syslog sensor through the command."""
    log = tmp_path / "auth.log"
    log.write_text("Jul 10 12:00:00 host sshd[1]: Connection closed by 10.0.0.7 port 5000\n")
    os.utime(log, (1720612800, 1720612800))  # 2024-07-10: the lines' year
    config = tmp_path / "mamori.toml"
    config.write_text('log_timezone = "Asia/Tokyo"\n')
    lake = tmp_path / "lake"
    res = runner.invoke(app, ["ingest", str(log), "--lake", str(lake), "--config", str(config)])
    assert res.exit_code == 0, res.output
    [ts] = pq.read_table(lake / "syslog").column("ts").to_pylist()
    assert (ts.year, ts.month, ts.day, ts.hour) == (2024, 7, 10, 3)  # 12:00 JST is 03:00 UTC
