"""Information stealers mailing their loot: the report an infected machine sends by SMTP, known
by the subject line the malware family writes (ATT&CK T1048.003 Exfiltration Over Unencrypted
Non-C2 Protocol, T1071.003 Mail Protocols; for password reports also T1555 Credentials from
Password Stores).

AgentTesla, Snake Keylogger, HawkEye and their kin exfiltrate by logging in to a mail account
compiled into the sample and sending themselves a message per report. The body (passwords,
keystrokes) is what Corelight's AgentTesla package matches; the lake keeps the headers, and the
subject is the family's own fixed format, ``PW_<user>/<computer>`` for AgentTesla's password
report (``KL_`` keystrokes, ``SC_`` screenshot, ``CO_`` cookies, ``CL_`` clipboard), which no
person types. The subject is only visible when the session is in clear, which is also what makes
the loot readable to anyone on the path.

One alert per infected host, mail server and family per window: high, as credentials are leaving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "exfiltration.stealer_mail"
TECHNIQUES = ("T1048.003", "T1071.003")

# family -> regular expression on the subject; sources: the AgentTesla reports in the shared
# capture (``PW_admin/DESKTOP-JGLLJLD``) and the formats the families' public analyses document.
FAMILIES: dict[str, str] = {
    "AgentTesla": r"^(PW|KL|SC|CO|CL|HD)_[^/\s]{1,64}/[^/\s]{1,64}$",
    "Snake Keylogger": r"(?i)snake keylogger|^(Passwords|Keystrokes|Screenshot|Clipboard) ::",
    "HawkEye": r"(?i)hawkeye (keylogger|reborn)",
    "404 Keylogger": r"(?i)404 keylogger",
    "Phoenix Keylogger": r"(?i)phoenix keylogger",
}
PASSWORD_REPORT = r"^PW_|(?i:^passwords ::|passwords? logs?)"


@dataclass(frozen=True)
class StealerMailParams(Params):
    # One alert per infected host, server and family per window; repeats are merged.
    window_hours: float = 24.0


def _family(subject: pl.Expr) -> pl.Expr:
    out: pl.Expr = pl.lit(None, pl.String)
    for name in reversed(FAMILIES):
        out = pl.when(subject.str.contains(FAMILIES[name])).then(pl.lit(name)).otherwise(out)
    return out


@detector(
    ID, reads="smtp", key=("orig_h",), attack=(*TECHNIQUES, "T1555"), params=StealerMailParams
)
def stealer_mail(smtp: pl.LazyFrame, p: StealerMailParams) -> pl.LazyFrame:
    """Mail whose subject is an information stealer's report format."""
    subject = pl.col("subject").fill_null("").str.strip_chars()
    found = (
        smtp.with_columns(family=_family(subject), passwords=subject.str.contains(PASSWORD_REPORT))
        .filter(pl.col("family").is_not_null())
        .sort("ts", "uid")
    )
    hits = threshold(
        found,
        key=("orig_h", "resp_h", "family"),
        window=timedelta(hours=p.window_hours),
        at_least=1,
        extra=(
            pl.col("subject").first().alias("example"),
            pl.col("passwords").any().alias("any_passwords"),
            pl.col("mailfrom").drop_nulls().first().alias("account"),
            pl.col("resp_p").first().alias("port"),
        ),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=pl.when(pl.col("any_passwords"))
        .then(pl.lit([*TECHNIQUES, "T1555"], dtype=pl.List(pl.String)))
        .otherwise(pl.lit(list(TECHNIQUES), dtype=pl.List(pl.String))),
        severity="high",
        confidence=0.9,
        summary=pl.format(
            "{} mailed {} {} report(s) to {}:{} from {} (subject {})",
            "orig_h",
            "n",
            "family",
            "resp_h",
            "port",
            pl.col("account").fill_null("an unknown sender"),
            "example",
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="smtp",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}|{}", "orig_h", "resp_h", "family"),
    )
