"""A scheduled task created: persistence, privilege escalation or remote execution (T1053.005).

``schtasks /create``, ``at`` over ATSVC and the Task Scheduler API are how intruders run code
again at boot, as SYSTEM, or on another machine. Windows logs each new task: 4698 in Security
(with the task's XML, so its command is known) and 106 in the TaskScheduler Operational log (the
name and the account that registered it); where only Sysmon watches, ``schtasks.exe /create``
(process creation, 1) and the task's file appearing under ``System32\\Tasks`` (file creation, 11)
say the same. The sightings of one task on one machine are one alert. Windows and software
register tasks too, so an ordinary one is a low-severity notice; a shell, script host or LOLBin as
the action, a user-writable path, a download, an encoded command or a task hidden from the Task
Scheduler's view make it high.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "windows.scheduled_task"
OPERATIONAL = "Microsoft-Windows-TaskScheduler/Operational"


@dataclass(frozen=True)
class WinScheduledTaskParams(Params):
    # The task's command and arguments (case-insensitive regex) that make it suspicious.
    suspicious_action: str = (
        r"(?i)\bcmd(\.exe)?\b|powershell|pwsh|mshta|rundll32|regsvr32|wscript|cscript|certutil|"
        r"bitsadmin|msbuild|installutil|\\temp\\|%temp%|\\appdata\\|\\users\\public\\|"
        r"https?://|\s-e(nc(odedcommand)?)?\s"
    )
    # A task hidden from the Task Scheduler's user interface is suspicious whatever it runs.
    hidden_is_suspicious: bool = True
    # Registrations of the same task on one machine within this window are one alert.
    window_minutes: float = 1440.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0:
            raise ValueError("window_minutes must be positive")


SYSMON = "Microsoft-Windows-Sysmon/Operational"
_FIELDS = ("TaskName", "TaskContent", "SubjectUserName", "SubjectDomainName", "UserContext",
           "Image", "CommandLine", "TargetFilename", "User")  # fmt: skip


def _switch(cmdline: pl.Expr, name: str) -> pl.Expr:
    """A ``schtasks`` switch's value (``/tn "My task"`` or ``-TN name``), unquoted."""
    value = cmdline.str.extract(rf'(?i)[/-]{name}\s+("[^"]*"|\S+)', 1)
    return value.str.strip_chars('" ')


def _xml_text(text: pl.Expr) -> pl.Expr:
    """XML character entities back to characters (the task's XML is escaped text)."""
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.str.replace_all(entity, char, literal=True)
    return text.str.replace_all("&amp;", "&", literal=True)


@detector(ID, reads="winevt", key=("host",), attack=("T1053.005",), params=WinScheduledTaskParams)
def win_scheduled_task(winevt: pl.LazyFrame, p: WinScheduledTaskParams) -> pl.LazyFrame:
    """Tasks registered (Security 4698, TaskScheduler 106; Sysmon's ``schtasks /create`` and task
    files), high when the action is suspicious."""
    d = pl.col("d").struct.field
    content = d("TaskContent").fill_null("")
    command = _xml_text(content.str.extract(r"(?s)<Command>(.*?)</Command>", 1))
    arguments = _xml_text(content.str.extract(r"(?s)<Arguments>(.*?)</Arguments>", 1))
    user = (
        pl.when(d("SubjectDomainName").is_in(["", "-"]).not_())
        .then(pl.format("{}\\{}", d("SubjectDomainName"), d("SubjectUserName")))
        .otherwise(d("SubjectUserName"))
    )
    events = winevt.with_columns(
        d=pl.col("data").str.json_decode(pl.Struct({f: pl.String for f in _FIELDS}))
    )
    registered = events.filter(
        ((pl.col("event_id") == 4698) & (pl.col("channel") == "Security"))
        | ((pl.col("event_id") == 106) & (pl.col("channel") == OPERATIONAL))
    ).select(
        "ts",
        "uid",
        "host",
        task=d("TaskName").fill_null(""),
        action=pl.concat_str(command, arguments, separator=" ", ignore_nulls=True),
        hidden=content.str.contains(r"<Hidden>\s*true\s*</Hidden>"),
        account=pl.coalesce(user, d("UserContext")),
    )
    # Sysmon on hosts without task auditing: schtasks.exe run with /create (process creation,
    # event 1), and the task's file written under System32\Tasks (file creation, event 11).
    cmdline = d("CommandLine").fill_null("")
    xml = _switch(cmdline, "xml")
    schtasks = events.filter(
        (pl.col("channel") == SYSMON)
        & (pl.col("event_id") == 1)
        & d("Image").str.to_lowercase().str.ends_with("\\schtasks.exe")
        & cmdline.str.contains(r"(?i)(^|\s)[/-]create(\s|$)")
    ).select(
        "ts",
        "uid",
        "host",
        task=_switch(cmdline, "tn").fill_null(""),
        action=pl.coalesce(_switch(cmdline, "tr"), pl.format("(task XML {})", xml)),
        hidden=pl.lit(False),
        account=d("User"),
    )
    task_file = r"(?i)\\Windows\\System32\\Tasks(\\.+)$"
    files = events.filter(
        (pl.col("channel") == SYSMON)
        & (pl.col("event_id") == 11)
        & d("TargetFilename").str.contains(task_file)
    ).select(
        "ts",
        "uid",
        "host",
        task=d("TargetFilename").str.extract(task_file, 1),
        action=pl.lit(None, pl.String),
        hidden=pl.lit(False),
        account=pl.lit(None, pl.String),
    )
    created = (
        pl.concat([registered, schtasks, files])
        # One task however it was seen: "\\Updater", "Updater" and Tasks\\updater alike.
        .with_columns(task_key=pl.col("task").str.strip_chars_start("\\").str.to_lowercase())
        .sort("ts", "uid")
    )
    hits = threshold(
        created,
        key=("host", "task_key"),
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(
            pl.col("task").first().alias("task"),
            pl.col("action").drop_nulls().first().alias("action"),
            pl.col("hidden").any().alias("hidden"),
            pl.col("account").drop_nulls().first().alias("account"),
        ),
    )
    action = pl.col("action").fill_null("")
    bad = action.str.contains(p.suspicious_action) | (
        pl.col("hidden") & pl.lit(p.hidden_is_suspicious)
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=("T1053.005",),
        severity=pl.when(bad).then(pl.lit("high")).otherwise(pl.lit("low")),
        confidence=pl.when(bad).then(pl.lit(0.85)).otherwise(pl.lit(0.4)),
        summary=pl.format(
            "{}scheduled task {} created on {}{}{}{}",
            pl.when(bad).then(pl.lit("suspicious ")).otherwise(pl.lit("")),
            pl.col("task"),
            pl.col("host").fill_null("an unnamed host"),
            pl.when(pl.col("account").is_not_null())
            .then(pl.format(" by {}", pl.col("account")))
            .otherwise(pl.lit("")),
            pl.when(action != "").then(pl.format(" running {}", action)).otherwise(pl.lit("")),
            pl.when(pl.col("hidden")).then(pl.lit(" (hidden)")).otherwise(pl.lit("")),
        ),
        src=None,
        dst=pl.col("host"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="winevt",
        evidence=pl.col("uids"),
        key=pl.format("{}|{}", pl.col("host").fill_null(""), "task_key"),
    )
