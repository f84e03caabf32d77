"""The syslog sensor: RFC 3164 and 5424 headers, the year of BSD times, login events into ``auth``.

The sshd part is checked line by line against loghub's labelled OpenSSH log (every line carries
the template it was generated from); the header parser is a property: generated lines give back
their fields, and garbage between them is named by line number without losing a good line.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.logingest import LogStats, ingest_log
from mamori.sensors.logs import syslog
from mamori.sensors.registry import MAX_WARNINGS, registered_sensors, sensor_for

OPENSSH = "logs/loghub/OpenSSH/OpenSSH_2k.log"


def _read(
    path: Path, year: int | None = None, timezone: str = "UTC"
) -> tuple[dict[str, pl.DataFrame], LogStats]:
    got: dict[str, list[pl.DataFrame]] = {}
    stats = ingest_log(
        path,
        registered_sensors()["syslog"],
        lambda t, b: got.setdefault(t, []).append(pl.from_arrow(b)),  # type: ignore[arg-type]
        year=year,
        timezone=timezone,
    )
    return {t: pl.concat(fs) for t, fs in got.items()}, stats


def _write(tmp_path: Path, lines: list[str], name: str = "messages") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- headers ------------------------------------------------------------------------------


def test_rfc5424_examples_of_the_rfc(tmp_path: Path) -> None:
    """RFC 5424 section 6.5's examples: NILVALUEs, a BOM, structured data with escapes."""
    lines = [
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed",
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473"
        ' iut="3" eventSource="Application" eventID="1011"] \ufeffAn application event',
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473"
        ' iut="3" eventSource="App\\"q\\]" eventID="1011"][examplePriority@32473 class="high"]',
        "<13>1 - - - - - -",
    ]
    tables, stats = _read(_write(tmp_path, lines))
    rows = tables["syslog"].to_dicts()
    assert [r["record"] for r in rows] == [1, 2, 3, 4]
    assert stats.warnings == [f"{tmp_path / 'messages'}: record 5: no timestamp it could read"]
    a, b, c, d = rows
    assert (a["facility"], a["severity"], a["format"]) == (4, 2, "rfc5424")
    assert a["ts"] == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)
    assert (a["host"], a["app"], a["pid"], a["msgid"]) == (
        "mymachine.example.com",
        "su",
        None,
        "ID47",
    )
    assert a["structured_data"] is None and a["message"] == "'su root' failed"
    assert b["ts"] == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert (b["pid"], b["msgid"], b["message"]) == (8710, None, "%% It's time")
    assert json.loads(c["structured_data"]) == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert c["message"] == "An application event"
    assert json.loads(d["structured_data"]) == {
        "exampleSDID@32473": {"iut": "3", "eventSource": 'App"q]', "eventID": "1011"},
        "examplePriority@32473": {"class": "high"},
    }
    assert d["message"] is None


def test_rfc3164_with_and_without_pri_and_rsyslog_file_format(tmp_path: Path) -> None:
    lines = [
        "<38>Feb  5 17:32:18 10.0.0.99 sshd[4242]: Accepted publickey for ops from 10.0.0.7 "
        "port 50000 ssh2: ED25519 SHA256:abc",
        "Feb  5 17:32:19 gw kernel: [ 12.5] eth0: link up",
        "Feb 15 07:00:01 gw last message repeated 3 times",
        "2024-02-05T17:32:20.123456+01:00 gw CRON[77]: (root) CMD (true)",
        "Feb  5 17:32:21 dropbear[12]: Bad password attempt for 'root' from 10.0.0.8:5000",
    ]
    tables, stats = _read(_write(tmp_path, lines), year=2024)
    assert stats.skipped == 0
    rows = tables["syslog"].to_dicts()
    assert [(r["facility"], r["severity"]) for r in rows] == [(4, 6), *[(None, None)] * 4]
    assert [r["host"] for r in rows] == ["10.0.0.99", "gw", "gw", "gw", None]  # no HOSTNAME
    assert [r["app"] for r in rows] == ["sshd", "kernel", None, "CRON", "dropbear"]
    assert [r["pid"] for r in rows] == [4242, None, None, 77, 12]
    assert rows[4]["message"] == "Bad password attempt for 'root' from 10.0.0.8:5000"
    assert rows[2]["message"] == "last message repeated 3 times"
    assert [r["ts"] for r in rows] == [
        datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC),
        datetime(2024, 2, 5, 17, 32, 19, tzinfo=UTC),
        datetime(2024, 2, 15, 7, 0, 1, tzinfo=UTC),
        datetime(2024, 2, 5, 16, 32, 20, 123456, tzinfo=UTC),
        datetime(2024, 2, 5, 17, 32, 21, tzinfo=UTC),
    ]
    assert tables["auth"].select("outcome", "user", "src_ip", "method").row(0) == (
        "success", "ops", "10.0.0.7", "publickey",
    )  # fmt: skip


def test_bsd_times_are_read_in_the_configured_zone(tmp_path: Path) -> None:
    """A host logging in local time: its BSD times move to UTC by that zone's offset on that day
    (CET in winter, CEST in summer); RFC 3339 and RFC 5424 times keep the offset they name."""
    lines = [
        "Jan 10 12:00:00 h app: winter",
        "Jul 10 12:00:00 h app: summer",
        "Mar 31 02:30:00 h app: in the hour the spring change skips",
        "Oct 27 02:30:00 h app: in the hour the autumn change repeats",
        "2024-07-10T12:00:00+02:00 h app: names its own offset",
        "<13>1 2024-07-10T12:00:00Z h app - - - names UTC",
    ]
    path = _write(tmp_path, lines)
    tables, stats = _read(path, year=2024, timezone="Europe/Berlin")
    assert tables["syslog"]["ts"].to_list() == [
        datetime(2024, 1, 10, 11, 0, tzinfo=UTC),
        datetime(2024, 7, 10, 10, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 30, tzinfo=UTC),  # the first 02:30, still CEST
        datetime(2024, 7, 10, 10, 0, tzinfo=UTC),
        datetime(2024, 7, 10, 12, 0, tzinfo=UTC),
    ]
    assert stats.warnings == [
        f"{path}: record 3: a local time that Europe/Berlin skips (daylight saving)"
    ]
    # The default is UTC: the same BSD line is read as written.
    tables, stats = _read(path, year=2024)
    assert tables["syslog"]["ts"][0] == datetime(2024, 1, 10, 12, 0, tzinfo=UTC)
    assert stats.skipped == 0


def test_unknown_zone_is_one_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, ["Jan 10 12:00:00 h app: a"])
    tables, stats = _read(path, timezone="Mars/Olympus_Mons")
    assert not tables
    assert stats.error == (
        f"{path}: unknown time zone 'Mars/Olympus_Mons' (log_timezone: an IANA name)"
    )


def test_year_turns_in_december(tmp_path: Path) -> None:
    lines = [
        "Dec 30 23:59:58 h app: a",
        "Dec 31 23:59:59 h app: b",
        "garbage between",
        "Jan  1 00:00:01 h app: c",
        "Jan  1 00:00:00 h app: d (a second out of order: not a new year)",
        "Dec 31 23:00:00 h app: e (a late line from the old year, in a new-year file)",
    ]
    path = _write(tmp_path, lines[:5])
    tables, _ = _read(path, year=2023)
    assert [t.year for t in tables["syslog"]["ts"]] == [2023, 2023, 2024, 2024]
    # Without a year: the modification time's (the last line's), one turn back for the first.
    stamp = datetime(2024, 1, 2, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    tables, _ = _read(path)
    assert [t.year for t in tables["syslog"]["ts"]] == [2023, 2023, 2024, 2024]
    # A December file touched in January belongs to the year before.
    path = _write(tmp_path, lines[:2], "dec")
    os.utime(path, (stamp, stamp))
    tables, _ = _read(path)
    assert [t.year for t in tables["syslog"]["ts"]] == [2023, 2023]


def test_year_turns_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-pass counts turns over every batch, and each batch continues the last one's."""
    from mamori.sensors.logs import _lines

    lines = [f"Nov 1{i % 10} 10:00:00 h app: {i}" for i in range(300)]
    lines += [f"Jan  2 10:00:{i % 60:02d} h app: {i}" for i in range(300)]
    lines += [f"Mar  3 10:00:{i % 60:02d} h app: {i}" for i in range(300)]
    lines += ["Dec 31 10:00:00 h app: z", "Jan  1 10:00:00 h app: z"]
    path = _write(tmp_path, lines)
    stamp = datetime(2025, 1, 5, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    real = _lines.line_batches
    monkeypatch.setattr(syslog, "line_batches", lambda p: real(p, chunk_bytes=4096))
    tables, _ = _read(path)
    years = tables["syslog"]["ts"].dt.year().to_list()
    assert years == [2023] * 300 + [2024] * 601 + [2025]


def test_garbage_is_named_by_line_and_good_lines_kept(tmp_path: Path) -> None:
    lines = [
        "Mar  1 10:00:00 h app: one",
        '{"not": "syslog"}',
        "",
        "<999>Mar  1 10:00:01 h app: bad pri",
        "Feb 30 10:00:02 h app: no such day",
        "Mar  1 10:00:03 h app: two",
    ]
    path = _write(tmp_path, lines)
    tables, stats = _read(path, year=2024)
    assert tables["syslog"]["record"].to_list() == [1, 6]
    assert stats.skipped == 3
    assert stats.warnings == [
        f"{path}: record 2: not a syslog line (RFC 3164 or RFC 5424)",
        f"{path}: record 4: PRI 999 out of range (0-191)",
        f"{path}: record 5: no timestamp it could read",
    ]


def test_repeats_multiply_the_event(tmp_path: Path) -> None:
    """rsyslog's "message repeated N times: [...]" and BSD's "last message repeated N times"
    after a login line both stand for N more of it; a repeat of something else adds nothing."""
    lines = [
        "Mar  1 10:00:00 h sshd[1]: Failed password for root from 203.0.113.1 port 1 ssh2",
        "Mar  1 10:00:05 h last message repeated 4 times",
        "Mar  1 10:00:06 h sshd[1]: message repeated 2 times: [ Failed password for root from "
        "203.0.113.1 port 1 ssh2]",
        "Mar  1 10:00:07 h CRON[5]: (root) CMD (true)",
        "Mar  1 10:00:08 h last message repeated 9 times",
    ]
    tables, stats = _read(_write(tmp_path, lines), year=2024)
    assert stats.skipped == 0
    auth = tables["auth"]
    assert auth["record"].to_list() == [1] * 5 + [3] * 2
    assert auth["uid"].n_unique() == 7 and auth["uid"][0].endswith(".1.1")


def test_rotated_gzip_log(tmp_path: Path) -> None:
    body = "".join(f"Mar  1 10:00:{i % 60:02d} h sshd[1]: Invalid user u{i} from 10.1.1.1\n"
                   for i in range(500))  # fmt: skip
    path = tmp_path / "auth.log.2.gz"
    path.write_bytes(gzip.compress(body.encode()))
    assert sensor_for(path) is registered_sensors()["syslog"]
    tables, stats = _read(path, year=2024)
    assert stats.problem is None and tables["syslog"].height == 500
    assert tables["auth"]["user"].to_list() == [f"u{i}" for i in range(500)]


# --- sniffing -------------------------------------------------------------------------------


def test_sniff_takes_syslog_and_leaves_other_formats(tmp_path: Path, data_dir: Path) -> None:
    assert sensor_for(data_dir / OPENSSH) is registered_sensors()["syslog"]
    others = {
        "app.jsonl": '{"ts": 1700000000, "msg": "Mar  1 10:00:00 h app: x"}\n',
        "conn.log": "#separator \\x09\n#fields\tts\tuid\n1.0\tC1\n",
        "notes.txt": "Dear diary,\nMar  1 10:00:00 h app: x\nnothing else\n",
        "mixed": "Mar  1 10:00:00 h app: x\n" + "plain text\n" * 5,
    }
    for name, text in others.items():
        path = tmp_path / name
        path.write_text(text)
        found = sensor_for(path)
        assert found is None or found.name != "syslog", name
    evtx = next((data_dir / "evtx-attack-samples").rglob("*.evtx"))
    assert sensor_for(evtx) is registered_sensors()["evtx"]


# --- sshd on real data ------------------------------------------------------------------------


def test_openssh_lines_become_the_auth_rows_their_labels_say(data_dir: Path) -> None:
    """loghub labels each line with its template (EventId); the auth rows must agree."""
    path = data_dir / OPENSSH
    with (path.parent / "OpenSSH_2k.log_structured.csv").open() as f:
        labels = {int(r["LineId"]): r for r in csv.DictReader(f)}
    tables, stats = _read(path)
    assert stats.skipped == 0 and tables["syslog"].height == len(labels) == 2000
    assert (tables["syslog"]["app"] == "sshd").all()
    assert tables["syslog"]["pid"].to_list() == [int(labels[n]["Pid"]) for n in range(1, 2001)]
    auth = tables["auth"]
    by_line = {rec: g for (rec,), g in auth.group_by("record")}
    # What each template means: (outcome, reason, invalid_user, rows per line).
    meaning: dict[str, tuple[str, str | None, bool | None]] = {
        "E1": ("success", None, None),
        "E8": ("failure", "failed none", True),
        "E9": ("failure", "failed password", False),
        "E10": ("failure", "failed password", True),
        "E13": ("failure", "invalid user", True),
        "E14": ("failure", "failed password", False),
        "E19": ("failure", "pam authentication failure", None),
        "E20": ("failure", "pam authentication failure", None),
    }
    rows_by_event: Counter[str] = Counter()
    for line, label in labels.items():
        event, content = label["EventId"], label["Content"]
        got = by_line.get(line)
        if event not in meaning:
            assert got is None, (line, content)
            continue
        assert got is not None, (line, content)
        rows_by_event[event] += got.height
        outcome, reason, invalid = meaning[event]
        assert set(got["outcome"]) == {outcome} and set(got["reason"]) == {reason}, content
        assert got["invalid_user"].to_list() == [invalid] * got.height, content
        ip = re.search(r"(\d+\.\d+\.\d+\.\d+)", content)
        if event in ("E1", "E8", "E9", "E10", "E13", "E14") or "rhost=1" in content:
            assert ip is not None and set(got["src_ip"]) == {ip.group(1)}, content
        user = re.search(r"for (?:invalid user )?(\S+) from|user (\S+) from|user=(\S+)", content)
        if user is not None:
            assert set(got["user"]) == {next(u for u in user.groups() if u)}, content
        port = re.search(r"port (\d+)", content)
        if port is not None:
            assert set(got["src_port"]) == {int(port.group(1))}, content
    template = Counter(r["EventId"] for r in labels.values())
    repeats = sum(
        int(re.search(r"repeated (\d+) times", r["Content"]).group(1))  # type: ignore[union-attr]
        for r in labels.values()
        if r["EventId"] == "E14"
    )
    assert rows_by_event == {e: template[e] for e in meaning if e != "E14"} | {"E14": repeats}
    assert (auth["service"] == "ssh").all() and (auth["source"] == "syslog").all()
    assert auth["uid"].n_unique() == auth.height
    assert set(auth["source_uid"]) <= set(tables["syslog"]["uid"])


# --- other services ---------------------------------------------------------------------------

SERVICE_LINES = [
    # (app[pid]: message, service, outcome, user, src_ip, invalid_user, rows)
    ("sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 "
     "tty=/dev/pts/0 ruser=bob rhost=  user=bob", "sudo", "failure", "bob", None, None, 1),
    ("sudo:      bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/bob ; USER=root ;"
     " COMMAND=/bin/sh", "sudo", "failure", "bob", None, None, 3),
    ("sudo:    alice : TTY=pts/1 ; PWD=/root ; USER=root ; COMMAND=/usr/bin/id", "sudo",
     "success", "alice", None, None, 1),
    ("su[99]: pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/0 "
     "ruser=bob rhost=  user=root", "su", "failure", "root", None, None, 1),
    ("su[99]: FAILED SU (to root) bob on pts/0", "su", "failure", "root", None, None, 1),
    ("su[99]: (to root) alice on pts/1", "su", "success", "root", None, None, 1),
    ('vsftpd[5]: [carol] FAIL LOGIN: Client "::ffff:198.51.100.4"', "ftp", "failure", "carol",
     "198.51.100.4", None, 1),
    ('vsftpd[5]: [carol] OK LOGIN: Client "198.51.100.4"', "ftp", "success", "carol",
     "198.51.100.4", None, 1),
    ("proftpd[7]: ftp.example.org (evil.example[203.0.113.9]) - USER admin (Login failed): "
     "Incorrect password", "ftp", "failure", "admin", "203.0.113.9", False, 1),
    ("proftpd[7]: ftp.example.org (evil.example[203.0.113.9]) - USER nobody2: no such user "
     "found from evil.example [203.0.113.9] to 10.0.0.1:21", "ftp", "failure", "nobody2",
     "203.0.113.9", True, 1),
    ("proftpd[7]: ftp.example.org (ok.example[192.0.2.8]) - USER dave: Login successful.",
     "ftp", "success", "dave", "192.0.2.8", None, 1),
    ("pure-ftpd: (?@203.0.113.10) [WARNING] Authentication failed for user [root]", "ftp",
     "failure", "root", "203.0.113.10", None, 1),
    ("pure-ftpd: (?@192.0.2.9) [INFO] erin is now logged in", "ftp", "success", "erin",
     "192.0.2.9", None, 1),
    ("login[300]: FAILED LOGIN 1 FROM 203.0.113.11 FOR root, Authentication failure", "telnet",
     "failure", "root", "203.0.113.11", False, 1),
    ("login[301]: FAILED LOGIN (1) on '/dev/tty1' FOR 'UNKNOWN', User not known to the "
     "underlying authentication module", "login", "failure", "UNKNOWN", None, True, 1),
    ("login[302]: ROOT LOGIN  on '/dev/tty1'", "login", "success", "root", None, None, 1),
    ("login[303]: LOGIN ON pts/3 BY frank FROM 192.0.2.20", "telnet", "success", "frank",
     "192.0.2.20", None, 1),
    ("sshd[8]: Disconnected from authenticating user root 203.0.113.12 port 4000 [preauth]",
     "ssh", "failure", "root", "203.0.113.12", False, 1),
    ("sshd-session[9]: Connection closed by invalid user oracle 2001:db8::7 port 4001 [preauth]",
     "ssh", "failure", "oracle", "2001:db8::7", True, 1),
    ("sshd[10]: Accepted publickey for git from 192.0.2.30 port 5000 ssh2: RSA SHA256:x", "ssh",
     "success", "git", "192.0.2.30", None, 1),
    ("sshd[11]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
     "ruser= rhost=scanner.example.net  user=root", "ssh", "failure", "root", None, None, 1),
    ("dropbear[13]: Bad password attempt for 'root' from 203.0.113.40:40000", "ssh", "failure",
     "root", "203.0.113.40", False, 1),
    ("dropbear[13]: Login attempt for nonexistent user 'zyxel' from 203.0.113.40:40001", "ssh",
     "failure", "zyxel", "203.0.113.40", True, 1),
    ("dropbear[14]: Pubkey auth succeeded for 'root' with ssh-ed25519 key SHA256:x from "
     "192.0.2.41:40002", "ssh", "success", "root", "192.0.2.41", None, 1),
    ("sshd[12]: Received disconnect from 192.0.2.31 port 5001:11: Bye Bye [preauth]", None,
     None, None, None, None, 0),
    ("sudo: pam_unix(sudo:session): session opened for user root", None, None, None, None, None,
     0),
]  # fmt: skip


@pytest.mark.parametrize("case", SERVICE_LINES, ids=lambda c: c[0][:40])
def test_service_login_lines(tmp_path: Path, case: tuple) -> None:  # type: ignore[type-arg]
    text, service, outcome, user, ip, invalid, rows = case
    tables, stats = _read(_write(tmp_path, [f"Jun  1 12:00:00 host1 {text}"]), year=2024)
    assert stats.skipped == 0 and tables["syslog"].height == 1
    auth = tables.get("auth", pl.DataFrame())
    assert auth.height == rows
    for row in auth.to_dicts():
        assert (row["service"], row["outcome"], row["user"], row["src_ip"]) == (
            service, outcome, user, ip,
        )  # fmt: skip
        assert row["invalid_user"] == invalid and row["host"] == "host1"
        assert (row["reason"] is None) == (outcome == "success")


# --- properties -------------------------------------------------------------------------------

_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=12).filter(
    lambda s: s != "-"
)
_app = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-/", min_size=1, max_size=10).filter(
    lambda s: s != "-"
)
_msg = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\ufeff"),
    max_size=40,
).map(str.strip)
_sd_value = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=10)
_sd = st.dictionaries(
    st.from_regex(r"[a-z]{1,6}(@[0-9]{1,5})?", fullmatch=True),
    st.dictionaries(st.from_regex(r"[a-zA-Z]{1,6}", fullmatch=True), _sd_value, max_size=3),
    max_size=2,
)
_when = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@st.composite
def _record(draw: st.DrawFn) -> tuple[str, dict]:  # type: ignore[type-arg]
    pri = draw(st.none() | st.integers(0, 191))
    host, app, msg = draw(_word), draw(_app), draw(_msg)
    pid = draw(st.none() | st.integers(1, 4_000_000))
    when = draw(_when)
    if draw(st.booleans()):
        pri = 13 if pri is None else pri
        sd = draw(_sd)
        esc = {k: {n: v.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
                   for n, v in p.items()} for k, p in sd.items()}  # fmt: skip
        sd_text = (
            "".join(
                "[" + k + "".join(f' {n}="{v}"' for n, v in p.items()) + "]" for k, p in esc.items()
            )
            or "-"
        )
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        tail = f" \ufeff{msg}" if msg else ""
        line = f"<{pri}>1 {stamp} {host} {app} {pid or '-'} - {sd_text}{tail}"
        fields = {"format": "rfc5424", "sd": sd or None, "message": msg or None}
    else:
        stamp = when.strftime("%b ") + f"{when.day:>2}" + when.strftime(" %H:%M:%S")
        tag = f"{app}[{pid}]" if pid else app
        line = ("" if pri is None else f"<{pri}>") + f"{stamp} {host} {tag}: {msg}"
        fields = {"format": "rfc3164", "sd": None, "message": msg}
        when = when.replace(microsecond=0, year=2020)
    fields |= {"ts": when.replace(tzinfo=UTC), "host": host, "app": app, "pid": pid, "pri": pri}
    return line, fields


_garbage = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1
).filter(lambda s: s.strip() and not any(p.match(s.rstrip("\r")) for p in syslog._SNIFF))


@settings(max_examples=60)
@given(st.lists(st.one_of(_record(), _garbage), min_size=1, max_size=25))
def test_lines_round_trip_and_garbage_is_named(items: list) -> None:  # type: ignore[type-arg]
    """BSD times are generated in one year and read with year=2020 (a leap year: Feb 29 exists);
    their order is random, so the turn of the year is kept out by sorting BSD lines by date."""
    bsd = sorted((i for i in items if isinstance(i, tuple) and i[1]["format"] == "rfc3164"),
                 key=lambda i: i[1]["ts"])  # fmt: skip
    it = iter(bsd)
    items = [next(it) if isinstance(i, tuple) and i[1]["format"] == "rfc3164" else i
             for i in items]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.log"
        path.write_text("\n".join(i[0] if isinstance(i, tuple) else i for i in items) + "\n")
        tables, stats = _read(path, year=2020)
    good = [(n, i[1]) for n, i in enumerate(items, 1) if isinstance(i, tuple)]
    bad = [n for n, i in enumerate(items, 1) if not isinstance(i, tuple)]
    rows = tables["syslog"].to_dicts() if "syslog" in tables else []
    assert [r["record"] for r in rows] == [n for n, _ in good]
    assert stats.skipped == len(bad)
    kept = [w.split(": record ")[1].split(":")[0] for w in stats.warnings]
    assert kept == [str(n) for n in bad][:MAX_WARNINGS]
    for row, (_, want) in zip(rows, good, strict=True):
        assert row["format"] == want["format"] and row["ts"] == want["ts"]
        assert (row["host"], row["app"], row["pid"]) == (want["host"], want["app"], want["pid"])
        assert row["message"] == want["message"]
        pri = want["pri"]
        assert (row["facility"], row["severity"]) == ((pri // 8, pri % 8) if pri is not None
                                                      else (None, None))  # fmt: skip
        sd = json.loads(row["structured_data"]) if row["structured_data"] else None
        assert sd == want["sd"]
