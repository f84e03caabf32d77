"""A new Windows service installed: persistence or remote execution (T1543.003).

PsExec, Impacket's smbexec, Cobalt Strike's ``jump psexec`` and many droppers run their code as
a freshly created service. Windows logs every installation: 7045 in System (Service Control
Manager) and, with auditing, 4697 in Security; where only Sysmon watches, the Service Control
Manager writing the service's ``ImagePath`` (registry event 13) says the same. Software updates install services too, so an
ordinary one is a low-severity notice for the record, and the image paths attackers use (a shell,
a script host, a bare file name, user-writable folders, an admin share, PsExec's service) make it
high.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "windows.new_service"


@dataclass(frozen=True)
class WinNewServiceParams(Params):
    # Image paths (case-insensitive regex) that make a new service suspicious: command shells and
    # script hosts, LOLBins, user-writable or temporary folders, admin shares, PsExec-like tools,
    # and a bare file name with no folder (a real service names where its binary lies).
    suspicious_image: str = (
        r"(?i)cmd(\.exe)?\s*/[ck]|%comspec%|\bcmd\.exe|powershell|pwsh|mshta|rundll32|regsvr32|"
        r"wscript|cscript|certutil|bitsadmin|\\temp\\|\\tmp\\|\\appdata\\|\\users\\|"
        r"\\programdata\\[^\\]+\.exe|\\\\[^\\]+\\(admin|c|ipc)\$|psexesvc|remcom|paexec|"
        r"^\"?[^\\/\"]+\.(exe|bat|cmd|ps1|vbs|dll)\"?(\s|$)"
    )
    # Installations of the same service on one machine within this window are one alert.
    window_minutes: float = 1440.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0:
            raise ValueError("window_minutes must be positive")


SYSMON = "Microsoft-Windows-Sysmon/Operational"
_FIELDS = ("ServiceName", "ImagePath", "ServiceFileName", "AccountName", "ServiceAccount",
           "SubjectUserName", "Image", "TargetObject", "Details")  # fmt: skip
_IMAGE_PATH = r"(?i)\\CurrentControlSet\\Services\\([^\\]+)\\ImagePath$"


@detector(ID, reads="winevt", key=("host",), attack=("T1543.003",), params=WinNewServiceParams)
def win_new_service(winevt: pl.LazyFrame, p: WinNewServiceParams) -> pl.LazyFrame:
    """Services installed (System 7045, Security 4697, Sysmon's SCM ImagePath writes), high when
    the image path is suspicious."""
    d = pl.col("d").struct.field
    events = winevt.with_columns(
        d=pl.col("data").str.json_decode(pl.Struct({f: pl.String for f in _FIELDS}))
    )
    logged = events.filter(
        ((pl.col("event_id") == 7045) & (pl.col("channel") == "System"))
        | ((pl.col("event_id") == 4697) & (pl.col("channel") == "Security"))
    ).select(
        "ts",
        "uid",
        "host",
        service=d("ServiceName").fill_null(""),
        image=pl.coalesce(d("ImagePath"), d("ServiceFileName")).fill_null(""),
        account=pl.coalesce(d("AccountName"), d("ServiceAccount")),
    )
    # Sysmon on hosts without those logs: the Service Control Manager writing a service's
    # ImagePath (registry value set, event 13), which it does when a service is created.
    registry = events.filter(
        (pl.col("channel") == SYSMON)
        & (pl.col("event_id") == 13)
        & d("Image").str.to_lowercase().str.ends_with("\\services.exe")
        & d("TargetObject").str.contains(_IMAGE_PATH)
    ).select(
        "ts",
        "uid",
        "host",
        service=d("TargetObject").str.extract(_IMAGE_PATH, 1),
        image=d("Details").fill_null(""),
        account=pl.lit(None, pl.String),
    )
    installed = pl.concat([logged, registry]).sort("ts", "uid")
    hits = threshold(
        installed,
        key=("host", "service", "image"),
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(pl.col("account").drop_nulls().first().alias("account"),),
    )
    bad = pl.col("image").str.contains(p.suspicious_image)
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1543.003",),
        severity=pl.when(bad).then(pl.lit("high")).otherwise(pl.lit("low")),
        confidence=pl.when(bad).then(pl.lit(0.85)).otherwise(pl.lit(0.4)),
        summary=pl.format(
            "{}service {} installed on {} running {}{}",
            pl.when(bad).then(pl.lit("suspicious ")).otherwise(pl.lit("")),
            pl.col("service"),
            pl.col("host").fill_null("an unnamed host"),
            pl.col("image"),
            pl.when(pl.col("account").is_not_null())
            .then(pl.format(" as {}", pl.col("account")))
            .otherwise(pl.lit("")),
        ),
        src=None,
        dst=pl.col("host"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="winevt",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}|{}", pl.col("host").fill_null(""), "service", "image"),
    )
