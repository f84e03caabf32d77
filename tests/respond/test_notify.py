"""Abuse notices: ARF/X-ARF messages from real incidents, received by a real SMTP server on
loopback, and abuse contacts found only in data the user gives."""

from __future__ import annotations

import email
import ipaddress
import json
import socket
from collections.abc import Iterator
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from hypothesis import given
from hypothesis import strategies as st

from mamori.respond.decision import Action, Decision, enforcement_points
from mamori.respond.notify import (
    AbuseContacts,
    AbuseNotifier,
    NotifyError,
    Reporter,
    SmtpRelay,
    build_notice,
    deliver,
    load_incidents,
)

REPORTER = Reporter("soc@defender.example", "Defender Ltd", reply_to="abuse-desk@defender.example")

RDAP = {
    "objectClassName": "ip network",
    "handle": "NET-192-168-56-0-1",
    "startAddress": "192.168.56.0",
    "endAddress": "192.168.56.255",
    "ipVersion": "v4",
    "cidr0_cidrs": [{"v4prefix": "192.168.56.0", "length": 24}],
    "entities": [
        {"objectClassName": "entity", "roles": ["registrant"],
         "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["email", {}, "text", "noc@isp.example"]]],
         "entities": [{"objectClassName": "entity", "roles": ["abuse"],
                       "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Abuse"],
                                                ["email", {}, "text", "abuse@isp.example"]]]}]},
    ],
}  # fmt: skip

WHOIS_RIPE = """% Abuse contact for '192.168.0.0 - 192.168.255.255' is 'abuse@wide.example'
inetnum:        192.168.0.0 - 192.168.255.255
netname:        WIDE-NET
"""

WHOIS_ARIN = """NetRange:       198.51.100.0 - 198.51.100.255
CIDR:           198.51.100.0/24
OrgAbuseEmail:  abuse@arin-style.example
"""


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpRelay]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpRelay("127.0.0.1", port, timeout=10)
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def incident(sshguess_report: Path) -> dict[str, Any]:
    incidents = list(load_incidents([sshguess_report]).values())
    assert incidents, "the SSH guessing capture gave no incident"
    return incidents[0]


def _parts(raw: bytes | str) -> tuple[EmailMessage, list[EmailMessage]]:
    msg = (email.message_from_bytes if isinstance(raw, bytes) else email.message_from_string)(
        raw, policy=email_policy.default
    )
    return msg, list(msg.iter_parts())  # type: ignore[union-attr, return-value]


def _check_arf(msg: EmailMessage, parts: list[EmailMessage], incident: dict[str, Any]) -> dict:
    attacker = incident["entities"]["attackers"][0]
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "feedback-report"
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/feedback-report", "text/plain"
    ]  # fmt: skip
    human = parts[0].get_content()
    assert attacker in human and incident["id"] in human
    # RFC 5965 section 3.1: Feedback-Type, User-Agent and Version, each exactly once
    fields = parts[1].get_payload()[0]
    for name in ("Feedback-Type", "User-Agent", "Version"):
        assert len(fields.get_all(name)) == 1, name
    assert fields["Feedback-Type"] == "abuse" and fields["Version"] == "1"
    assert fields["Source-IP"] == attacker
    xarf = yaml.safe_load(parts[2].get_content())
    for key in ("Reported-From", "Category", "Report-Type", "Service", "Version", "User-Agent",
                "Date", "Source", "Source-Type"):  # fmt: skip
        assert key in xarf, key
    assert xarf["Version"] == "0.2" and xarf["Source"] == attacker
    assert xarf["Report-Type"] == "login-attack"
    ev = xarf["Incident"]
    mine = [a for a in incident["alerts"] if attacker in (a["src"], a["dst"])]
    assert ev["records"] == sum(a["count"] for a in mine)
    assert ev["first_seen"] == min(a["first_seen"] for a in mine)
    assert ev["last_seen"] == max(a["last_seen"] for a in mine)
    assert ev["victims"] == sorted(incident["entities"]["victims"])
    assert "uids" not in json.dumps(ev)  # a summary, not the evidence itself
    return xarf


def test_notice_reaches_a_real_smtp_server_and_parses_as_arf(
    smtp: tuple[Inbox, SmtpRelay], incident: dict[str, Any]
) -> None:
    inbox, relay = smtp
    attacker = incident["entities"]["attackers"][0]
    msg = build_notice(incident, attacker, "abuse@isp.example", REPORTER)
    assert deliver(msg, relay=relay) is None
    assert len(inbox.envelopes) == 1
    env = inbox.envelopes[0]
    assert env.rcpt_tos == ["abuse@isp.example"] and env.mail_from == REPORTER.address
    received, parts = _parts(env.content)
    assert received["X-ARF"] == "Yes" and received["Auto-Submitted"] == "auto-generated"
    _check_arf(received, parts, incident)


def test_notice_written_to_an_outbox_file(tmp_path: Path, incident: dict[str, Any]) -> None:
    attacker = incident["entities"]["attackers"][0]
    path = deliver(build_notice(incident, attacker, "abuse@isp.example", REPORTER), outbox=tmp_path)
    assert path is not None and path.suffix == ".eml" and path.parent == tmp_path
    msg, parts = _parts(path.read_text())
    _check_arf(msg, parts, incident)


def test_hidden_victims_never_appear(incident: dict[str, Any]) -> None:
    attacker = incident["entities"]["attackers"][0]
    hidden = Reporter("soc@defender.example", "Defender Ltd", hide_victims=True)
    text = build_notice(incident, attacker, "abuse@isp.example", hidden).as_string()
    for victim in incident["entities"]["victims"]:
        assert victim not in text


def test_contacts_from_rdap_whois_and_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "net.rdap.json").write_text(json.dumps(RDAP))
    (tmp_path / "ripe.txt").write_text(WHOIS_RIPE)
    (tmp_path / "arin.txt").write_text(WHOIS_ARIN)
    (tmp_path / "map.yaml").write_text(
        "203.0.113.0/24: abuse@doc.example\nexample.com: a@example.net\n"
    )
    contacts = AbuseContacts.load([tmp_path])  # a folder: every file in it
    assert contacts.lookup("192.168.56.1") == ("abuse@isp.example", str(tmp_path / "net.rdap.json"))
    assert contacts.lookup("192.168.99.1")[0] == "abuse@wide.example"  # the wider RIPE range
    assert contacts.lookup("198.51.100.20")[0] == "abuse@arin-style.example"
    assert contacts.lookup("203.0.113.9")[0] == "abuse@doc.example"
    assert contacts.lookup("www.example.com")[0] == "a@example.net"
    assert contacts.lookup("10.1.1.1") is None


def test_bad_contact_data_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("203.0.113.0/24: not-an-address\n")
    with pytest.raises(NotifyError, match=r"bad\.yaml: 203\.0\.113\.0/24.*not an e-mail"):
        AbuseContacts.load([bad])
    rdap = tmp_path / "x.json"
    rdap.write_text(json.dumps({**RDAP, "entities": []}))
    with pytest.raises(NotifyError, match=r"x\.json: RDAP object has no entity"):
        AbuseContacts.load([rdap])
    with pytest.raises(NotifyError, match="relay or an outbox"):
        deliver(EmailMessage())


def test_smtp_failure_is_a_clear_error(incident: dict[str, Any]) -> None:
    attacker = incident["entities"]["attackers"][0]
    msg = build_notice(incident, attacker, "abuse@isp.example", REPORTER)
    with pytest.raises(NotifyError, match=r"SMTP relay 127\.0\.0\.1:"):
        deliver(msg, relay=SmtpRelay("127.0.0.1", _free_port(), timeout=2))


def test_notifier_point_sends_only_where_the_data_has_a_contact(
    smtp: tuple[Inbox, SmtpRelay], incident: dict[str, Any], tmp_path: Path
) -> None:
    inbox, relay = smtp
    assert enforcement_points()["abuse-notify"] is AbuseNotifier
    contacts = AbuseContacts()
    contacts.add_network("192.168.56.0/24", "abuse@isp.example", "test")
    point = AbuseNotifier(REPORTER, contacts, {incident["id"]: incident}, relay=relay)
    attacker = incident["entities"]["attackers"][0]
    known = Decision(Action.notify, attacker, "r", incident["id"], 0.9, 3600)
    unknown = Decision(Action.notify, "10.9.9.9", "r", incident["id"], 0.9, 3600)
    block = Decision(Action.block_ip, attacker, "r", incident["id"], 0.9, 3600)
    assert "abuse@isp.example" in point.render([known, unknown, block], known.created)
    point.apply([known, unknown, block], [])
    assert [e.rcpt_tos for e in inbox.envelopes] == [["abuse@isp.example"]]
    assert [d.target for d, _ in point.unreachable] == ["10.9.9.9"]
    with pytest.raises(NotifyError, match="not in the given reports"):
        point.apply([Decision(Action.notify, attacker, "r", "INC-missing", 0.9, 60)], [])


nets = st.tuples(st.integers(0, 2**16 - 1), st.integers(8, 32)).map(
    lambda t: ipaddress.ip_network(
        f"{ipaddress.IPv4Address(0x0A000000 + (t[0] << 8))}/{t[1]}", strict=False
    )
)


@given(st.lists(nets, min_size=1, max_size=10), st.integers(0, 2**24 - 1))
def test_the_most_specific_network_wins(networks, offset) -> None:
    contacts = AbuseContacts()
    for k, n in enumerate(networks):
        contacts.add_network(str(n), f"abuse{n.prefixlen}@n{k}.example", "p")
    probe = ipaddress.IPv4Address(0x0A000000 + offset)
    covering = [n for n in networks if probe in n]
    hit = contacts.lookup(str(probe))
    if not covering:
        assert hit is None
    else:
        assert hit is not None
        assert hit[0].startswith(f"abuse{max(n.prefixlen for n in covering)}@")
