"""smtp analyser: crafted transactions, fuzzing, and conformance with Zeek's smtp.log."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers.base import Analysis
from mamori.flows.analyzers.smtp import SMTPAnalyzer
from mamori.flows.conversation import Conversation, Segment
from support.dpkt_conversations import conversations

SMTP = SMTPAnalyzer()


def _conv(lines: list[tuple[bool, str]]) -> Conversation:
    conv = Conversation("Csmtp", 7.0, "10.0.0.9", 50025, "10.0.0.25", 25, "tcp")
    conv.segments = [Segment(7.0 + i, o, (t + "\r\n").encode()) for i, (o, t) in enumerate(lines)]
    return conv


MESSAGE = [
    (False, "220 mx.example.org ESMTP"),
    (True, "EHLO client.example.com"),
    (False, "250-mx.example.org"),
    (False, "250 STARTTLS"),
    (True, "MAIL FROM:<alice@example.com> SIZE=100"),
    (False, "250 OK"),
    (True, "RCPT TO:<bob@example.org>"),
    (False, "250 OK"),
    (True, "RCPT TO:<carol@example.org>"),
    (False, "250 OK"),
    (True, "DATA"),
    (False, "354 go ahead"),
    (True, "Received: from relay.example.com (relay [10.9.9.9])"),
    (True, "\tby mx.example.org; Mon, 1 Jan 2024 00:00:00 +0000"),
    (True, "From: Alice <alice@example.com>"),
    (True, 'To: "Bob, B." <bob@example.org>, carol@example.org'),
    (True, "Subject: quarterly report"),
    (True, "Message-ID: <1@example.com>"),
    (True, "X-Mailer: TestMailer 1.0"),
    (True, ""),
    (True, "Body line"),
    (True, "."),
    (False, "250 2.0.0 queued as ABC"),
    (True, "QUIT"),
    (False, "221 bye"),
]


def test_matches_greeting_and_ehlo() -> None:
    assert SMTP.matches("tcp", 50025, 2525, b"EHLO x\r\n", b"220 mx ESMTP ready\r\n")
    assert not SMTP.matches("tcp", 50025, 21, b"USER bob\r\n", b"220 FTP ready\r\n")


def test_one_row_per_transaction() -> None:
    result = SMTP.analyze(_conv(MESSAGE))
    assert result.confirmed
    (row,) = result.records
    assert row["helo"] == "client.example.com"
    assert row["mailfrom"] == "alice@example.com"
    assert row["rcptto"] == ["bob@example.org", "carol@example.org"]
    assert row["subject"] == "quarterly report"
    assert row["to"] == ['"Bob, B." <bob@example.org>', "carol@example.org"]
    assert (
        row["first_received"]
        == "from relay.example.com (relay [10.9.9.9])\tby mx.example.org; Mon, 1 Jan 2024 00:00:00 +0000"
    )
    assert row["path"] == ["10.0.0.25", "10.0.0.9", "10.9.9.9"]
    assert row["last_reply"] == "250 2.0.0 queued as ABC"
    assert row["user_agent"] == "TestMailer 1.0"
    assert row["msg_id"] == "<1@example.com>"
    assert row["trans_depth"] == 1 and row["tls"] is False


def test_starttls_sets_tls_and_stops() -> None:
    lines = [
        *MESSAGE[:4],
        (True, "STARTTLS"),
        (False, "220 Ready to start TLS"),
        (True, "\x16\x03\x01garbage"),
    ]
    (row,) = SMTP.analyze(_conv(lines)).records
    assert row["tls"] is True
    assert row["mailfrom"] is None
    assert row["last_reply"] == "220 Ready to start TLS"


def test_starttls_hands_the_rest_to_ssl() -> None:
    from flows.analyzers.test_ssl import _client_hello, _rec

    conv = _conv([*MESSAGE[:4], (True, "STARTTLS"), (False, "220 Ready to start TLS")])
    hello = _rec(22, _client_hello("mx.example.org"), 0x0301)
    conv.segments.append(Segment(50.0, True, hello))
    res = SMTP.analyze(conv)
    assert res.services(SMTP) == ["smtp", "ssl"]
    (row,) = res.tables(SMTP)["ssl"]
    assert row["server_name"] == "mx.example.org" and row["ts"] == 50.0
    assert res.tables(SMTP)["smtp"][0]["tls"] is True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=10))
def test_random_bytes_never_raise(segments: list[tuple[bool, bytes]]) -> None:
    conv = _conv([])
    conv.segments = [Segment(1.0, o, d) for o, d in segments]
    assert isinstance(SMTP.analyze(conv), Analysis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_sessions_never_raise(data: st.DataObject) -> None:
    conv = _conv(MESSAGE)
    for seg in conv.segments:
        raw = bytearray(seg.data)
        for _ in range(data.draw(st.integers(0, 3))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        seg.data = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    assert isinstance(SMTP.analyze(conv), Analysis)


def _zeek_rows(path: Path) -> list[dict[str, str]]:
    fields: list[str] = []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            rows.append(dict(zip(fields, line.split("\t"), strict=False)))
    return rows


def _tsv(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(sorted(value)) if value else "(empty)"
    return str(value)


def test_conformance_with_zeek(data_dir: Path) -> None:
    reference = data_dir / "zeek-reference"
    compared = ("helo", "mailfrom", "rcptto", "subject", "trans_depth", "last_reply", "path")
    total = matched = 0
    differences = []
    for log in sorted(reference.rglob("smtp.log")):
        rel = str(log.parent.relative_to(reference))[: -len(".zeek")]
        ours: dict[tuple[str, int, str, int], list[dict[str, object]]] = {}
        for c in conversations(data_dir / rel):
            if c.proto == "tcp":
                ours.setdefault((c.orig_h, c.orig_p, c.resp_h, c.resp_p), []).extend(
                    SMTP.analyze(c).records
                )
        for z in _zeek_rows(log):
            total += 1
            key = (z["id.orig_h"], int(z["id.orig_p"]), z["id.resp_h"], int(z["id.resp_p"]))
            rows = ours.get(key, [])
            mine = rows.pop(0) if rows else {}
            want = {
                f: ",".join(sorted(z[f].split(","))) if f in ("rcptto", "path") else z[f]
                for f in compared
            }
            diff = [
                (f, want[f], _tsv(mine.get(f))) for f in compared if want[f] != _tsv(mine.get(f))
            ]
            if diff:
                differences.append(f"{rel} {key}: {diff}")
            else:
                matched += 1
    print(f"\nsmtp conformance: {matched}/{total} on {', '.join(compared)}")
    print("\n".join(differences))
    assert matched / total >= 0.95, "\n".join(differences)
