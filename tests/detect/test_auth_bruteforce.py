"""Password guessing from the hosts' logs: a golden case over every auth source, loghub's real
OpenSSH log against an oracle built from its labels, the partition contract, and the counting
property (a guess written as several lines is one guess)."""

from __future__ import annotations

import csv
import dataclasses
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.detect.detectors.auth_bruteforce import AuthBruteforceParams
from mamori.detect.engine import run_detectors
from support.auth_logs import OPENSSH, syslog_auth
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected, typed

ID = "auth.bruteforce"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def labelled_guessers(path: Path, limit: int, minutes: int) -> set[str]:
    """Sources with ``limit`` failed passwords in a tumbling window, from loghub's labels alone:
    templates E9/E10 (Failed password) and E14 (message repeated N times: [Failed password])."""
    per: dict[str, Counter[int]] = defaultdict(Counter)
    with path.with_name(path.name + "_structured.csv").open() as f:
        for r in csv.DictReader(f):
            if r["EventId"] not in ("E9", "E10", "E14"):
                continue
            t = datetime.strptime(f"{r['Date']} {r['Day']} {r['Time']}", "%b %d %H:%M:%S")
            n = re.search(r"repeated (\d+) times", r["Content"])
            ip = re.search(r"from (\d+\.\d+\.\d+\.\d+)", r["Content"])
            assert ip is not None
            per[ip.group(1)][(t.hour * 60 + t.minute) // minutes] += int(n.group(1)) if n else 1
    return {ip for ip, windows in per.items() if max(windows.values()) >= limit}


def test_golden_case() -> None:
    """sshd's PAM twin lines count once, Windows packages and a honeypot alike; a typo, a slow
    guesser, guesses split over two machines and local sudo failures stay quiet."""
    got = run_detectors(case_frames("auth_bruteforce", "auth"), only=[ID]).alerts
    assert got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts() == expected(
        "auth_bruteforce"
    )


def test_openssh_guessing_sources_are_found(data_dir: Path) -> None:
    path = data_dir / OPENSSH
    auth = syslog_auth(path)
    p = AuthBruteforceParams()
    alerts = detect(ID, {"auth": auth.lazy()})
    want = labelled_guessers(path, p.password_guesses_limit, int(p.window_minutes))
    assert len(want) == 6  # the oracle itself found the log's guessers
    assert set(alerts["src"]) == want
    assert set(alerts["dst"]) == {"LabSZ"} and set(alerts["evidence_table"]) == {"auth"}
    uids = set(auth["uid"])
    assert all(set(e) <= uids for e in alerts["evidence"])
    top = alerts.filter(pl.col("src") == "183.62.140.253").sort("count").row(-1, named=True)
    assert top["severity"] == "high" and top["count"] >= 100


def test_each_source_alone_gives_its_own_alerts(data_dir: Path) -> None:
    rows = pl.concat(
        [case_frames("auth_bruteforce", "auth")["auth"].collect(), syslog_auth(data_dir / OPENSSH)]
    )
    assert_key_sufficient(lambda g: detect(ID, {"auth": g.lazy()}), rows, "src_ip")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(AuthBruteforceParams(), password_guesses_limit=0)
    with pytest.raises(ValueError):
        dataclasses.replace(AuthBruteforceParams(), window_minutes=0.0)


@settings(max_examples=25)
@given(
    guesses=st.integers(1, 30),
    twins=st.sets(st.sampled_from(["pam authentication failure", "invalid user"])),
    dropped=st.integers(0, 5),
)
def test_a_guess_is_counted_once_whatever_lines_report_it(
    guesses: int, twins: set[str], dropped: int
) -> None:
    """Each guess as a Failed password line plus any twin kinds (some twins lost): the count is
    the number of guesses, and an alert exactly when it reaches the limit."""
    rows = []
    for i in range(guesses):
        t = (T0 + timedelta(seconds=5 * i)).isoformat()
        kinds = ["failed password", *(k for k in sorted(twins) if i >= dropped)]
        for k, reason in enumerate(kinds):
            rows.append({"ts": t, "uid": f"G{i:03d}{k}", "file": "auth.log", "record": i,
                         "host": "h", "source": "syslog", "source_uid": f"S{i}", "service": "ssh",
                         "outcome": "failure", "user": "root", "src_ip": "203.0.113.1",
                         "reason": reason})  # fmt: skip
    alerts = detect(ID, {"auth": typed("auth", rows).lazy()})
    limit = AuthBruteforceParams().password_guesses_limit
    assert alerts["count"].to_list() == ([guesses] if guesses >= limit else [])
