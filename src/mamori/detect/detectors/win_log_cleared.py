"""Windows event logs cleared: an intruder wiping the trail (T1070.001).

Windows records the clearing itself, in the log that survives it: 1102 in Security ("The audit
log was cleared") and 104 in System for any other log (its ``Channel`` field names which). Both
come from the Eventlog provider; other providers reuse the numbers (RDP's RdpCoreTS 104 is a time
zone notice), so the provider is checked. Clearings on one machine in a window make one alert
naming the logs and the accounts that cleared them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "windows.log_cleared"
PROVIDER = "Microsoft-Windows-Eventlog"


@dataclass(frozen=True)
class WinLogClearedParams(Params):
    # Clearings on one machine within this window are one alert (a wipe clears several logs).
    window_minutes: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0:
            raise ValueError("window_minutes must be positive")


@detector(ID, reads="winevt", key=("host",), attack=("T1070.001",), params=WinLogClearedParams)
def win_log_cleared(winevt: pl.LazyFrame, p: WinLogClearedParams) -> pl.LazyFrame:
    """Security log cleared (1102) or another log cleared (System 104), per machine and window."""
    cleared = (
        winevt.filter(
            (pl.col("provider") == PROVIDER)
            & (
                ((pl.col("event_id") == 1102) & (pl.col("channel") == "Security"))
                | ((pl.col("event_id") == 104) & (pl.col("channel") == "System"))
            )
        )
        .with_columns(
            d=pl.col("data").str.json_decode(
                pl.Struct(
                    {
                        "SubjectUserName": pl.String,
                        "SubjectDomainName": pl.String,
                        "Channel": pl.String,
                    }
                )
            )
        )
        .with_columns(
            log=pl.when(pl.col("event_id") == 1102)
            .then(pl.lit("Security"))
            .otherwise(pl.coalesce(pl.col("d").struct.field("Channel"), pl.lit("a"))),
            account=pl.when(pl.col("d").struct.field("SubjectDomainName").is_in(["", "-"]).not_())
            .then(
                pl.format(
                    "{}\\{}",
                    pl.col("d").struct.field("SubjectDomainName"),
                    pl.col("d").struct.field("SubjectUserName"),
                )
            )
            .otherwise(pl.col("d").struct.field("SubjectUserName")),
        )
        .sort("ts", "uid")
    )
    hits = threshold(
        cleared,
        key=("host",),
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(
            pl.col("log").unique().sort().alias("logs"),
            pl.col("account").drop_nulls().unique().sort().alias("accounts"),
        ),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1070.001",),
        severity="high",
        # Administrators clear logs too, rarely; an intruder's is the common reason.
        confidence=0.8,
        summary=pl.format(
            "the {} log(s) on {} were cleared{}",
            pl.col("logs").list.join(", "),
            pl.col("host").fill_null("an unnamed host"),
            pl.when(pl.col("accounts").list.len() > 0)
            .then(pl.format(" by {}", pl.col("accounts").list.join(", ")))
            .otherwise(pl.lit("")),
        ),
        src=None,
        dst=pl.col("host"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="winevt",
        evidence=pl.col("uids"),
        key=pl.col("host").fill_null(""),
    )
