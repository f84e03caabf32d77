"""ExaBGP for real: the exabgp from PyPI parses our configuration and accepts our API commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.points.exabgp import ExabgpPoint
from mamori.respond.points.targets import PointError
from support.unbound import free_udp_port

EXABGP = shutil.which("exabgp") or str(Path(sys.executable).parent / "exabgp")

BLOCK = Decision(Action.block_ip, "203.0.113.7", "test", "i1", 0.9, 600)
BLOCK6 = Decision(Action.block_ip, "2001:db8::/64", "test", "i1", 0.9, 600)
POLICE = Decision(Action.rate_limit, "198.51.100.0/24", "test", "i2", 0.9, 600)
OTHER = Decision(Action.sinkhole, "evil.example", "test", "i3", 0.9, 600)  # not a BGP action

FEED = """
import sys
out = open(sys.argv[2], "w")
for command in open(sys.argv[1]).read().splitlines():
    sys.stdout.write(command + "\\n")
    sys.stdout.flush()
    out.write(sys.stdin.readline().strip() + "\\t" + command + "\\n")
    out.flush()
out.write("END\\n")
out.flush()
sys.stdin.readline()
"""


def _env() -> dict[str, str]:
    # exabgp drops to user "nobody" by default, which cannot read pytest's private tmp folders;
    # the port keeps it from ever reaching a real BGP speaker.
    return {**os.environ, "exabgp_daemon_user": "root", "exabgp_tcp_port": str(free_udp_port())}


def _validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXABGP, "validate", "-r", "-v", str(config)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )


def _local(**kw: object) -> ExabgpPoint:
    return ExabgpPoint(neighbor="127.0.0.2", local_address="127.0.0.1", **kw)  # type: ignore[arg-type]


def test_registered() -> None:
    assert enforcement_points()["exabgp"] is ExabgpPoint


def test_exabgp_parses_the_rendered_configuration(tmp_path: Path) -> None:
    config = tmp_path / "exabgp.conf"
    config.write_text(ExabgpPoint().render([BLOCK, BLOCK6, POLICE, OTHER], datetime.now(UTC)))
    proc = _validate(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parsed = set(re.findall(r"parsed route (\S.*)$", proc.stdout + proc.stderr, re.M))
    parsed.discard("requires 1 updates")
    assert parsed == {
        "203.0.113.7/32 next-hop 192.0.2.1 community [ blackhole no-export ]",
        "2001:db8::/64 next-hop 100::1 community [ blackhole no-export ]",
        "flow source-ipv4 203.0.113.7/32 extended-community rate-limit:0",  # rate 0 = discard
        "flow source-ipv6 2001:db8::/64/0 extended-community rate-limit:0",
        "flow source-ipv4 198.51.100.0/24 extended-community rate-limit:12500",
    }


def test_exabgp_validate_can_fail(tmp_path: Path) -> None:
    config = tmp_path / "broken.conf"
    text = ExabgpPoint().render([BLOCK], datetime.now(UTC))
    config.write_text(text.replace("no-export]", "no-export] not-a-keyword"))
    assert _validate(config).returncode != 0


def test_blackhole_only_and_expired_decisions(tmp_path: Path) -> None:
    point = ExabgpPoint(flowspec=False)
    later = datetime.now(UTC).replace(year=2100)
    assert "route " not in point.render([BLOCK], later)  # expired: nothing announced
    text = point.render([BLOCK, POLICE], datetime.now(UTC))
    assert "flow" not in text and "203.0.113.7/32" in text and "198.51.100.0" not in text


def test_a_running_exabgp_accepts_every_api_command(tmp_path: Path) -> None:
    point = _local()
    commands = point.commands([BLOCK, BLOCK6, POLICE], []) + point.commands([], [BLOCK, POLICE])
    commands.append("announce route not-an-address next-hop self")  # the check can fail
    (tmp_path / "commands.txt").write_text("\n".join(commands) + "\n")
    (tmp_path / "feed.py").write_text(FEED)
    acks = tmp_path / "acks.txt"
    feed = f"{sys.executable} {tmp_path / 'feed.py'} {tmp_path / 'commands.txt'} {acks}"
    config = tmp_path / "exabgp.conf"
    config.write_text(
        f"process feed {{\n    run {feed};\n    encoder text;\n}}\n"
        + point.render([], datetime.now(UTC)).replace(
            "    family {", "    api { processes [ feed ]; }\n    family {"
        )
    )
    proc = subprocess.Popen([EXABGP, "server", str(config)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (acks.exists() and acks.read_text().endswith("END\n")):
            assert proc.poll() is None and time.monotonic() < deadline, "exabgp stopped early"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    answers = [line.split("\t") for line in acks.read_text().splitlines()[:-1]]
    assert [c for _, c in answers] == commands
    assert [a for a, _ in answers] == ["done"] * (len(commands) - 1) + ["error"]


def test_apply_feeds_a_running_exabgp_through_its_api_file(tmp_path: Path) -> None:
    api = tmp_path / "api.txt"
    api.touch()
    point = _local(api=api)
    config = tmp_path / "exabgp.conf"
    config.write_text(point.render([], datetime.now(UTC)))
    log = tmp_path / "exabgp.log"
    with log.open("w") as out:
        proc = subprocess.Popen([EXABGP, "server", str(config)], env=_env(), stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip

    def wait_for(pattern: str) -> None:
        deadline = time.monotonic() + 30
        while not re.search(pattern, log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    try:
        wait_for("loaded new configuration")
        time.sleep(0.5)  # tail -F starts reading at the end of the file
        point.apply([BLOCK], [])
        wait_for(r"route added .*203\.0\.113\.7/32 next-hop 192\.0\.2\.1 community \[ blackhole")
        wait_for(r"flow added .*source-ipv4 203\.0\.113\.7/32 extended-community rate-limit:0")
        point.apply([], [BLOCK])
        wait_for(r"route removed .*203\.0\.113\.7/32")
        wait_for(r"flow removed .*source-ipv4 203\.0\.113\.7/32")
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_settings_are_named() -> None:
    with pytest.raises(PointError, match="neighbor"):
        ExabgpPoint(neighbor="router.example")
    with pytest.raises(PointError, match="AS number"):
        ExabgpPoint(local_as=0)
    with pytest.raises(PointError, match="API file"):
        ExabgpPoint().apply([BLOCK], [])
