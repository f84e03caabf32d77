"""Password spraying: a golden case (syslog, Windows Kerberos), the real OpenSSH log against an
oracle from its labels, and the partition contract."""

from __future__ import annotations

import csv
import dataclasses
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from mamori.detect.detectors.auth_spraying import AuthSprayingParams
from mamori.detect.engine import run_detectors
from support.auth_logs import OPENSSH, syslog_auth
from support.golden import COLUMNS, assert_key_sufficient, case_frames, detect, expected

ID = "auth.spraying"


def labelled_sprayers(path: Path, p: AuthSprayingParams) -> set[str]:
    """From loghub's labels: per source and window, user names tried (Invalid user, Failed
    password) and failed passwords; many names, few guesses each."""
    names: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    tries: dict[str, Counter[int]] = defaultdict(Counter)
    minutes = int(p.window_minutes)
    with path.with_name(path.name + "_structured.csv").open() as f:
        for r in csv.DictReader(f):
            c = r["Content"]
            t = datetime.strptime(f"{r['Date']} {r['Day']} {r['Time']}", "%b %d %H:%M:%S")
            w = (t.hour * 60 + t.minute) // minutes
            m = re.search(r"(?:for (?:invalid user )?|^Invalid user )(.*?) from (\S+?)(?: |$)", c)
            if r["EventId"] in ("E9", "E10", "E13", "E14") and m:
                names[m.group(2)][w].add(m.group(1))
            if r["EventId"] in ("E9", "E10", "E14") and m:
                n = re.search(r"repeated (\d+) times", c)
                tries[m.group(2)][w] += int(n.group(1)) if n else 1
    return {
        ip
        for ip, windows in names.items()
        for w, users in windows.items()
        if len(users) >= p.spray_users and tries[ip][w] <= p.max_guesses_per_user * len(users)
    }


def test_golden_case() -> None:
    """Eight names over two machines, a Kerberos spray over twenty accounts (high), sshd's two
    lines per invalid user counted once; ten tries at each of six names and four names are not
    spraying."""
    got = run_detectors(case_frames("auth_spraying", "auth"), only=[ID]).alerts
    assert got.sort("src", "dst", nulls_last=True).select(COLUMNS).to_dicts() == expected(
        "auth_spraying"
    )


def test_openssh_sprayers_are_found(data_dir: Path) -> None:
    path = data_dir / OPENSSH
    alerts = detect(ID, {"auth": syslog_auth(path).lazy()})
    want = labelled_sprayers(path, AuthSprayingParams())
    assert len(want) >= 2 and set(alerts["src"]) == want
    assert (alerts["techniques"].list.first() == "T1110.003").all()


def test_each_source_alone_gives_its_own_alerts(data_dir: Path) -> None:
    rows = pl.concat(
        [case_frames("auth_spraying", "auth")["auth"].collect(), syslog_auth(data_dir / OPENSSH)]
    )
    assert_key_sufficient(lambda g: detect(ID, {"auth": g.lazy()}), rows, "src_ip")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(AuthSprayingParams(), spray_users=1)
    with pytest.raises(ValueError):
        dataclasses.replace(AuthSprayingParams(), max_guesses_per_user=0.5)
