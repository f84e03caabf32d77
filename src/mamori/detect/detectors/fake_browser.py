"""Programs posing as a web browser: a request whose User-Agent names Firefox, Chrome, Safari,
Edge or Internet Explorer but which asked for ``Expect: 100-continue`` before sending its body
(ATT&CK T1071.001 Web Protocols; T1041 Exfiltration Over C2 Channel when it sent data).

Browsers never send ``Expect: 100-continue``; .NET's ``HttpWebRequest``/``WebClient`` does on
every POST by default, and so do curl and many HTTP libraries. Malware written against those
libraries copies a browser's User-Agent to blend in (AgentTesla's HTTP exfiltration in the shared
capture claims Firefox 99 and posts its stolen credentials this way), but keeps the library's
handshake. The lake sees the handshake through the reply: a server answers ``100 Continue``
(``info_code`` 100) only to a client that asked for it. A program that names itself (curl,
a .NET agent with its own User-Agent) is not flagged: only the mismatch is.

One alert per client, server and window: medium.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "c2.fake_browser"
# A browser's User-Agent: "Mozilla/5.0 (...)" and a browser engine token, and none of the tokens
# libraries and tools add when they keep the "Mozilla" prefix.
BROWSER = r"^mozilla/[45]\.0 \(.*(firefox/|chrome/|safari/|edg/|msie |trident/)"
NOT_BROWSER = r"bot\b|crawler|spider|curl|wget|python|java/|go-http|libwww|okhttp|nmap|scan"


@dataclass(frozen=True)
class FakeBrowserParams(Params):
    # One alert per client and server per window; repeats inside it are merged.
    window_hours: float = 24.0


@detector(
    ID, reads="http", key=("orig_h",), attack=("T1071.001", "T1041"), params=FakeBrowserParams
)
def fake_browser(http: pl.LazyFrame, p: FakeBrowserParams) -> pl.LazyFrame:
    """Requests with a browser's User-Agent and a library's ``Expect: 100-continue``."""
    agent = pl.col("user_agent").fill_null("").str.to_lowercase()
    found = http.filter(
        (pl.col("info_code") == 100)
        & agent.str.contains(BROWSER)
        & ~agent.str.contains(NOT_BROWSER)
    ).sort("ts", "uid")
    hits = threshold(
        found,
        key=("orig_h", "resp_h"),
        window=timedelta(hours=p.window_hours),
        at_least=1,
        extra=(
            pl.col("request_body_len").fill_null(0).sum().alias("sent"),
            pl.format("{} {}{}", "method", pl.col("host").fill_null(""), "uri")
            .first()
            .alias("request"),
            pl.col("user_agent").first().alias("agent"),
        ),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=pl.when(pl.col("sent") > 0)
        .then(pl.lit(["T1071.001", "T1041"], dtype=pl.List(pl.String)))
        .otherwise(pl.lit(["T1071.001"], dtype=pl.List(pl.String))),
        severity="medium",
        confidence=0.8,
        summary=pl.format(
            "{} posed as a browser ({}) but spoke like an HTTP library (Expect: 100-continue) to "
            "{}: {} request(s), {} bytes sent (first: {})",
            "orig_h",
            pl.col("agent").str.slice(0, 100),
            "resp_h",
            "n",
            "sent",
            pl.col("request").str.slice(0, 160),
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="http",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", "orig_h", "resp_h"),
    )
