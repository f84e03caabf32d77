"""Credentials crossing the network in clear: FTP logins, HTTP Basic auth, Telnet sessions.

Not an attack in itself but an exposure (T1552 Unsecured Credentials): anyone on the path can
sniff them (T1040), and malware such as AgentTesla exfiltrates over plain FTP with credentials
compiled in. So severity stays low or medium, one alert per source, server and account per window.
The password itself is never copied into an alert, only the fact that one was seen. Anonymous FTP
(Zeek's ``FTP::guest_ids``) is not a credential and is ignored; Telnet is reported at ``low`` since
only the session, not the login, is visible (mamori does not parse Telnet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "cleartext.credentials"
TECHNIQUES = ("T1552", "T1040")
GUEST_IDS = ("anonymous", "ftp", "ftpuser", "guest")  # Zeek's FTP::guest_ids
KEY = ("orig_h", "resp_h", "account")
FTP_TEXT = "{} sent an FTP login to {} in clear for user {} (password seen; {} record(s))"
HTTP_TEXT = (
    "{} sent HTTP Basic credentials to {} in clear for user {} (password seen; {} request(s))"
)
TELNET_TEXT = (
    "{} held a Telnet session with {} in clear{} (any login typed is exposed; {} connection(s))"
)


@dataclass(frozen=True)
class CleartextCredentialsParams(Params):
    # One alert per source, server and account per window; repeats inside it are merged.
    window_hours: float = 24.0
    # TCP ports whose two-way sessions are Telnet (login prompts and replies in clear).
    telnet_ports: tuple[int, ...] = (23,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_hours <= 0:
            raise ValueError("window_hours must be positive")


def _report(
    found: pl.LazyFrame, p: CleartextCredentialsParams, table: str, severity: str, text: str
) -> pl.LazyFrame:
    """One alert per source, server and account per window; ``text`` is a format of those three
    and the record count (never the password)."""
    window = timedelta(hours=p.window_hours)
    hits = threshold(found.sort("ts", "uid"), key=KEY, window=window, at_least=1)
    return alerts(
        hits,
        detector_id=ID,
        techniques=TECHNIQUES,
        severity=severity,
        confidence=0.9,
        summary=pl.format(text, "orig_h", "resp_h", "account", "n"),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table=table,
        evidence=pl.col("uids").list.unique(maintain_order=True),
        key=pl.format("{}|{}|{}|{}", pl.lit(table), "orig_h", "resp_h", "account"),
    )


@detector(
    ID,
    reads=("ftp", "http", "conn"),
    key=("orig_h",),
    attack=TECHNIQUES,
    params=CleartextCredentialsParams,
)
def cleartext_credentials(
    ftp: pl.LazyFrame, http: pl.LazyFrame, conn: pl.LazyFrame, p: CleartextCredentialsParams
) -> pl.LazyFrame:
    """FTP logins with a real account, HTTP Basic auth and two-way Telnet sessions, seen in clear."""
    user = pl.col("user").str.strip_chars()
    # A real account: a user name that is neither a guest id nor Zeek's "<unknown>" placeholder
    # (FTP over TLS stops at AUTH, the user never seen), with a password sent: a PASS row where
    # Zeek logs it, else any row after login, which carries the (hidden) password.
    ftp_logins = ftp.filter(
        user.is_not_null()
        & (user != "")
        & (user != "<unknown>")
        & ~user.str.to_lowercase().is_in(GUEST_IDS)
        & (pl.col("password").is_not_null() | (pl.col("command").str.to_uppercase() == "PASS"))
    ).with_columns(account=user)
    basic = http.filter(pl.col("username").is_not_null() & (pl.col("username") != "")).with_columns(
        account=pl.col("username")
    )
    telnet = conn.filter(
        (pl.col("proto") == "tcp")
        & (
            pl.col("resp_p").is_in(list(p.telnet_ports))
            | (pl.col("service").fill_null("").str.contains("telnet"))
        )
        & (pl.col("orig_bytes") > 0)
        & (pl.col("resp_bytes") > 0)
    ).with_columns(account=pl.lit("", pl.String))
    return pl.concat(
        [
            _report(ftp_logins, p, "ftp", "medium", FTP_TEXT),
            _report(basic, p, "http", "medium", HTTP_TEXT),
            _report(telnet, p, "conn", "low", TELNET_TEXT),
        ]
    )
