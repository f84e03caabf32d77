"""HTTP password guessing: one client collecting 401/403 answers to login attempts on one server.

A refused login over HTTP is a ``401`` (HTTP authentication) or ``403`` answer. Only requests that
are login attempts count: ones carrying credentials (``username`` is set from a Basic
``Authorization`` header), or ones submitting to a login-looking path (``POST /wp-login.php``,
``/xmlrpc.php``, ``/api/auth``...). A bare ``GET`` answered 401 is the normal challenge that
precedes every Basic login, and a 403 on an ordinary page is access control, not guessing; counting
either would flag every browser. Many distinct user names are password spraying (T1110.003).
Form logins that fail with a ``200`` error page are invisible here: the body is never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.scoring import guessing_or_spraying, volume_confidence, volume_severity
from mamori.detect.windows import threshold

ID = "bruteforce.http"
KEY = ("orig_h", "resp_h")
# Path components of login and token endpoints (matched on the path, not the query string).
LOGIN_PATH = (
    r"(?i)(log[-_]?in|log[-_]?on|sign[-_]?in|auth|wp-login\.php|xmlrpc\.php|j_security_check"
    r"|session|token|passw(or)?d|/admin)"
)


@dataclass(frozen=True)
class HttpBruteforceParams(Params):
    # Refused login attempts from one client to one server in the window before it is guessing.
    # Higher than SSH's 10: web clients retry on their own (expired tokens, stale saved passwords).
    failures_limit: int = 20
    # Window over which refusals are counted.
    window_minutes: float = 10.0
    # Distinct user names in one window that make it spraying (T1110.003), not guessing (T1110.001).
    spray_users: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.failures_limit < 1 or self.window_minutes <= 0:
            raise ValueError("failures_limit must be >= 1 and window_minutes positive")


@detector(
    ID,
    reads="http",
    key=("orig_h",),
    attack=("T1110.001", "T1110.003"),
    params=HttpBruteforceParams,
)
def http_bruteforce(http: pl.LazyFrame, p: HttpBruteforceParams) -> pl.LazyFrame:
    """Client/server pairs with at least ``failures_limit`` refused login attempts in a window."""
    window = timedelta(minutes=p.window_minutes)
    every = f"{int(window.total_seconds() * 1_000_000)}us"
    path = pl.col("uri").fill_null("").str.replace(r"[?#].*$", "")
    attempt = pl.col("username").is_not_null() | (
        path.str.contains(LOGIN_PATH) & pl.col("method").is_in(["POST", "PUT"])
    )
    failed = http.filter(pl.col("status_code").is_in([401, 403]) & attempt).sort(
        "ts", "uid", "trans_depth"
    )  # a total order: evidence must not depend on the input's row order
    hits = threshold(failed, key=KEY, window=window, at_least=p.failures_limit)
    extra = failed.group_by(*KEY, window=pl.col("ts").dt.truncate(every)).agg(
        users=pl.col("username").drop_nulls().n_unique(),
        host=pl.col("host").drop_nulls().sort().first(),
    )
    hits = hits.join(extra, on=[*KEY, "window"], how="left")
    many = pl.col("users") >= p.spray_users
    return alerts(
        hits,
        detector_id=ID,
        techniques=guessing_or_spraying(many),
        severity=volume_severity(pl.col("n"), p.failures_limit),
        confidence=volume_confidence(pl.col("n"), p.failures_limit, 0.55, 0.95),
        summary=pl.format(
            "{} appears to be {} HTTP logins on {} ({}): {} refused attempts, {} user name(s)",
            pl.col("orig_h"),
            pl.when(many).then(pl.lit("spraying")).otherwise(pl.lit("guessing")),
            pl.col("resp_h"),
            pl.col("host").fill_null("no Host header"),
            pl.col("n"),
            pl.col("users"),
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="http",
        evidence=pl.col("uids").list.unique(maintain_order=True),
        key=pl.format("{}|{}", pl.col("orig_h"), pl.col("resp_h")),
    )
