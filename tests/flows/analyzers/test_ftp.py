"""ftp analyser: crafted control sessions, fuzzing, and conformance with Zeek's ftp.log."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers.base import Analysis
from mamori.flows.analyzers.ftp import FTPAnalyzer
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.pipeline import _to_table
from support.dpkt_conversations import conversations

FTP = FTPAnalyzer()


def _conv(lines: list[tuple[bool, str]]) -> Conversation:
    conv = Conversation("Cftp", 5.0, "10.1.1.1", 40001, "10.2.2.2", 21, "tcp")
    conv.segments = [Segment(5.0 + i, o, (t + "\r\n").encode()) for i, (o, t) in enumerate(lines)]
    return conv


SESSION = [
    (False, "220 Welcome to the FTP service"),
    (True, "USER anonymous"),
    (False, "331 Please specify the password."),
    (True, "PASS guest@example.com"),
    (False, "230-Welcome"),
    (False, "230 Login successful."),
    (True, "CWD pub"),
    (False, "250 Directory successfully changed."),
    (True, "PASV"),
    (False, "227 Entering Passive Mode (10,2,2,2,195,80)."),
    (True, "RETR file.txt"),
    (False, "150 Opening BINARY mode data connection for file.txt (1234 bytes)."),
    (False, "226 Transfer complete."),
    (True, "EPSV"),
    (False, "229 Entering Extended Passive Mode (|||50001|)"),
    (True, "PORT 10,1,1,1,4,1"),
    (False, "200 PORT command successful."),
    (True, "QUIT"),
    (False, "221 Goodbye."),
]


def test_matches_greeting_and_user() -> None:
    assert FTP.matches("tcp", 40001, 2121, b"USER bob\r\n", b"220 ProFTPD Server ready\r\n")
    assert not FTP.matches("tcp", 40001, 25, b"EHLO mail\r\n", b"220 mx ESMTP\r\n")


def test_logged_commands_with_replies() -> None:
    result = FTP.analyze(_conv(SESSION))
    assert result.confirmed
    rows = result.records
    assert [r["command"] for r in rows] == ["PASV", "RETR", "EPSV", "PORT"]
    pasv, retr, epsv, port = rows
    assert pasv["reply_code"] == 227
    assert (pasv["data_channel_passive"], pasv["data_channel_orig_h"]) == (True, "10.1.1.1")
    assert (pasv["data_channel_resp_h"], pasv["data_channel_resp_p"]) == (
        "10.2.2.2",
        195 * 256 + 80,
    )
    assert retr["arg"] == "ftp://10.2.2.2/./pub/file.txt"
    assert (retr["reply_code"], retr["reply_msg"]) == (226, "Transfer complete.")
    assert retr["file_size"] == 1234
    assert retr["data_channel_resp_p"] is None  # the channel belongs to the PASV row
    assert epsv["data_channel_resp_p"] == 50001 and epsv["data_channel_resp_h"] == "10.2.2.2"
    assert port["arg"] == "10,1,1,1,4,1" and port["data_channel_resp_p"] == 1025
    assert port["data_channel_passive"] is False and port["data_channel_orig_h"] == "10.2.2.2"
    assert all(r["user"] == "anonymous" and r["password"] == "guest@example.com" for r in rows)


def test_a_channel_out_of_range_is_not_logged() -> None:
    """A PORT or 227 number over 255, or an EPRT/EPSV port over 65535: Zeek's parsers mark the
    channel invalid and log none. (A 227 of 270,70 once made port 69190, which no lake column
    holds: the whole ingest stopped.) The rows must also fit the lake's ftp table."""
    lines = [
        (False, "220 Welcome"),
        (True, "USER anonymous"),
        (False, "331 Password?"),
        (True, "PASS x@y"),
        (False, "230 Ok."),
        (True, "PASV"),
        (False, "227 Entering Passive Mode (10,2,2,2,270,70)."),
        (True, "PORT 10,1,1,300,4,1"),
        (False, "200 PORT command successful."),
        (True, "EPSV"),
        (False, "229 Entering Extended Passive Mode (|||70000|)"),
        (True, "EPRT |1|10.1.1.1|99999|"),
        (False, "200 EPRT command successful."),
    ]
    rows = FTP.analyze(_conv(lines)).records
    assert [r["command"] for r in rows] == ["PASV", "PORT", "EPSV", "EPRT"]
    assert all(r["data_channel_resp_p"] is None for r in rows)
    assert _to_table("ftp", rows).num_rows == 4


def test_password_hidden_for_named_users() -> None:
    lines = [(o, t.replace("USER anonymous", "USER alice")) for o, t in SESSION]
    rows = FTP.analyze(_conv(lines)).records
    assert {r["password"] for r in rows} == {"<hidden>"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=10))
def test_random_bytes_never_raise(segments: list[tuple[bool, bytes]]) -> None:
    conv = _conv([])
    conv.segments = [Segment(1.0, o, d) for o, d in segments]
    assert isinstance(FTP.analyze(conv), Analysis)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_sessions_never_raise(data: st.DataObject) -> None:
    conv = _conv(SESSION)
    for seg in conv.segments:
        raw = bytearray(seg.data)
        for _ in range(data.draw(st.integers(0, 3))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        seg.data = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    result = FTP.analyze(conv)
    assert isinstance(result, Analysis)
    _to_table("ftp", result.records)  # every value fits the lake's column


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
    return "-" if value is None else str(value)


def test_conformance_with_zeek(data_dir: Path) -> None:
    """Rows are matched per connection in order: command, arg and reply code must agree."""
    reference = data_dir / "zeek-reference"
    compared = ("command", "arg", "reply_code", "user", "password", "file_size")
    total = matched = 0
    differences = []
    for log in sorted(reference.rglob("ftp.log")):
        rel = str(log.parent.relative_to(reference))[: -len(".zeek")]
        ours: dict[tuple[str, int, str, int], list[dict[str, object]]] = {}
        for c in conversations(data_dir / rel):
            if c.proto == "tcp":
                ours.setdefault((c.orig_h, c.orig_p, c.resp_h, c.resp_p), []).extend(
                    FTP.analyze(c).records
                )
        for z in _zeek_rows(log):
            total += 1
            key = (z["id.orig_h"], int(z["id.orig_p"]), z["id.resp_h"], int(z["id.resp_p"]))
            rows = ours.get(key, [])
            mine = rows.pop(0) if rows else {}
            diff = [(f, z[f], _tsv(mine.get(f))) for f in compared if z[f] != _tsv(mine.get(f))]
            if diff:
                differences.append(f"{rel} {key}: {diff}")
            else:
                matched += 1
    print(f"\nftp conformance: {matched}/{total} on {', '.join(compared)}")
    print("\n".join(differences))
    assert matched / total >= 0.95, "\n".join(differences)
