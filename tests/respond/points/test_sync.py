"""enforce(): each point gets exactly what it has not carried yet, read from the audit log, so a
second run (another process) applies nothing twice and an abuse notice is sent once."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.ledger import Ledger
from mamori.respond.notify import AbuseNotifier
from mamori.respond.points.blocklist import DomainBlocklist, IpBlocklist
from mamori.respond.points.sync import carried, enforce, load_points
from mamori.respond.points.targets import PointError
from mamori.respond.policy import Policy
from mamori.store import Store


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def ledger(tmp_path: Path, policy: Policy) -> Iterator[Ledger]:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    yield Ledger(store, policy)
    store.close()


def _config(tmp_path: Path, port: int, report: Path, contacts: str) -> Path:
    (tmp_path / "contacts.yaml").write_text(contacts)
    config = tmp_path / "points.yaml"
    config.write_text(
        f"blocklist-ip: {{path: {tmp_path / 'ip.txt'}}}\n"
        f"blocklist-domain: {{path: {tmp_path / 'domains.txt'}}}\n"
        "abuse-notify:\n"
        "  from: soc@defender.example\n"
        "  organisation: Defender Ltd\n"
        f"  contacts: [{tmp_path / 'contacts.yaml'}]\n"
        f"  reports: [{report}]\n"
        f"  relay: {{host: 127.0.0.1, port: {port}}}\n"
    )
    return config


def test_enforce_applies_once_and_withdraws_at_expiry(
    ledger: Ledger, sshguess_report: Path, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    incident = json.loads(sshguess_report.read_text())["incidents"][0]
    attacker = incident["entities"]["attackers"][0]
    points = load_points(
        _config(tmp_path, port, sshguess_report, "192.168.56.0/24: abuse@isp.example\n")
    )
    assert [p.name for p in points] == ["blocklist-ip", "blocklist-domain", "abuse-notify"]
    ledger.plan(sshguess_report)  # the bruteforce profile: block_ip the guesser for 4h
    ledger.submit([Decision(Action.notify, attacker, "tell their abuse desk",
                                       incident["id"], incident["confidence"], 3600)])  # fmt: skip

    first = enforce(ledger, points)
    assert {c.point: len(c.added) for c in first} == {
        "blocklist-ip": 1, "blocklist-domain": 0, "abuse-notify": 1
    }  # fmt: skip
    assert (tmp_path / "ip.txt").read_text() == f"{attacker}\n"
    assert [e.rcpt_tos for e in inbox.envelopes] == [["abuse@isp.example"]]

    again = enforce(ledger, load_points(tmp_path / "points.yaml"))  # a fresh process
    assert all(not c.added and not c.removed for c in again)
    assert len(inbox.envelopes) == 1  # the notice went once

    later = datetime.now(UTC) + timedelta(hours=5)
    gone = enforce(ledger, points, now=later)
    assert [d.target for d in next(c for c in gone if c.point == "blocklist-ip").removed] == [
        attacker
    ]
    assert (tmp_path / "ip.txt").read_text() == ""
    assert carried(ledger, "blocklist-ip") == set()
    assert carried(ledger, "abuse-notify") == set()  # expired; a notice is not unsent
    assert len(inbox.envelopes) == 1
    assert ledger.verify_audit().ok


def test_a_notice_without_contact_waits_for_the_data(
    ledger: Ledger, sshguess_report: Path, tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    incident = json.loads(sshguess_report.read_text())["incidents"][0]
    attacker = incident["entities"]["attackers"][0]
    ledger.submit([Decision(Action.notify, attacker, "r", incident["id"], 0.9, 3600)])
    config = _config(tmp_path, port, sshguess_report, "203.0.113.0/24: abuse@other.example\n")
    enforce(ledger, load_points(config))
    assert inbox.envelopes == [] and carried(ledger, "abuse-notify") == set()
    config = _config(tmp_path, port, sshguess_report, "192.168.56.0/24: abuse@isp.example\n")
    enforce(ledger, load_points(config))
    assert [e.rcpt_tos for e in inbox.envelopes] == [["abuse@isp.example"]]


def test_a_scope_naming_a_point_keeps_the_decision_there(ledger: Ledger, tmp_path: Path) -> None:
    ip_a, ip_b = IpBlocklist(tmp_path / "a.txt"), IpBlocklist(tmp_path / "b.txt")
    ip_b.name = "blocklist-ip-b"  # type: ignore[misc]  (a second list, as a site might run)
    ledger.submit([Decision(Action.block_ip, "198.51.100.7", "r", "i", 0.9, 600, "blocklist-ip"),
                   Decision(Action.block_ip, "198.51.100.8", "r", "i", 0.9, 600)])  # fmt: skip
    enforce(ledger, [ip_a, ip_b, DomainBlocklist(tmp_path / "d.txt")])
    assert (tmp_path / "a.txt").read_text() == "198.51.100.7\n198.51.100.8\n"
    assert (tmp_path / "b.txt").read_text() == "198.51.100.8\n"


def test_bad_points_files_are_named(tmp_path: Path) -> None:
    cases = {
        "nope: {}\n": "unknown enforcement point",
        "nftables: {tabel: x}\n": "unknown setting 'tabel'",
        "nftables: {table: 'bad name'}\n": "table name",
        "rpz: [1, 2]\n": "settings must be a mapping",
        "abuse-notify: {from: a@b.example}\n": "'organisation' is required",
        "[]\n": "expected a mapping",
    }
    for text, reason in cases.items():
        path = tmp_path / "points.yaml"
        path.write_text(text)
        with pytest.raises(PointError, match=reason) as err:
            load_points(path)
        assert str(path) in str(err.value)
    assert isinstance(load_points(_write(tmp_path, "crowdsec:\n"))[0].name, str)


def _write(tmp_path: Path, text: str, name: str = "ok.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_abuse_notifier_is_configured_from_the_file(tmp_path: Path, sshguess_report: Path) -> None:
    [point] = load_points(_write(tmp_path, (
        "abuse-notify:\n  from: soc@d.example\n  organisation: D\n"
        f"  contacts: [{_write(tmp_path, '192.0.2.0/24: abuse@x.example', 'c.yaml')}]\n"
        f"  reports: [{sshguess_report}]\n  outbox: {tmp_path / 'out'}\n"
    )))  # fmt: skip
    assert isinstance(point, AbuseNotifier) and point.outbox == tmp_path / "out"


def test_the_documented_points_file_loads_and_every_point_is_documented(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "respond-points.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = yaml.safe_load(block)
    settings.pop("abuse-notify")  # its files are a deployment's; its loading is tested above
    (tmp_path / "points.yaml").write_text(yaml.safe_dump(settings))
    assert {p.name for p in load_points(tmp_path / "points.yaml")} == set(settings)
    for name in enforcement_points():
        assert f"`{name}`" in doc, f"{name} is not documented in docs/respond-points.md"
