"""Syslog files (RFC 3164 and RFC 5424) into ``syslog``, and their login events into ``auth``.

Every line is cut into header fields by three regular expressions run by Polars over a whole batch
(no Python per line): RFC 5424 (``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``), RFC 3164 as
syslog daemons forward it or as ``/var/log/auth.log`` stores it (``<PRI>`` optional, ``Mmm dd
hh:mm:ss host tag[pid]: msg``) and rsyslog's file format (an RFC 3339 time in place of the BSD one,
labelled ``rfc3164``: the rest of the line is laid out the same way; a line whose HOSTNAME is
missing, as BusyBox and macOS write them locally, is recognised by its tag in that place). RFC
5424 structured data becomes one JSON object ``{SD-ID: {PARAM: value}}`` (a repeated PARAM-NAME
keeps its first value); NILVALUE (``-``) fields are null and a UTF-8 BOM before MSG is dropped.

BSD timestamps have no year and no zone. They are read in ``ReadContext.timezone`` (the
``log_timezone`` setting, UTC unless told: a host that logs in local time needs its zone, or its
events sit hours away from the network records of the same moment; a time that falls in the hour a
DST change skips is warned about and skipped, one that occurs twice takes its first occurrence)
and in ``ReadContext.year`` (the year of the file's first line) or else the year of the file's modification time (the year of its last
line, moved back one when that date would lie after the modification). Logs are written in time
order, so a month that falls back by more than half a year (December, then January) is a new
year; a pre-pass over the months counts these turns so the first line's year is known before the
first batch is yielded.

Authentication messages of sshd (``sshd`` and OpenSSH 9.8's ``sshd-session``), dropbear, PAM,
sudo, su, vsftpd, proftpd, pure-ftpd and login become ``auth`` rows, one per attempt the line
reports (an rsyslog ``message repeated N times: [ ... ]`` line, BSD syslogd's ``last message
repeated N times`` after one, and sudo's ``N incorrect password attempts`` give N rows). sshd
reports one guess in several lines (``Invalid user``, PAM's ``authentication failure``, ``Failed
password``, ``Disconnected from authenticating user``); each is kept with its
own ``reason`` so a detector can count one kind of line, not all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa

from mamori.schema import schema_of
from mamori.sensors.logs._lines import line_batches, parse_times
from mamori.sensors.registry import ReadContext, log_sensor

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MON = "|".join(MONTHS)
_PRI = r"<(?P<pri>\d{1,3})>"
RFC5424 = (
    _PRI + r"(?P<version>[1-9]\d{0,2}) (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    r"(?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: (?P<msg>.*))?$"
)
RFC3164 = (
    rf"(?:{_PRI})?(?P<mon>{_MON}) {{1,2}}(?P<day>\d{{1,2}}) "
    r"(?P<clock>\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?) (?P<host>\S+) (?P<rest>.*)$"
)
RFC3339_FILE = (
    rf"(?:{_PRI})?(?P<time>\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?) (?P<host>\S+) (?P<rest>.*)$"
)
TAG = r"^(?P<app>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$"
_SD_ELEMENT = r"\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\]"
_SD_PARAM = r"[^\s=\]\"]+=\"(?:[^\"\\]|\\.)*\""
_REPEATED = r"^message repeated (?P<n>\d+) times: \[ ?(?P<inner>.*?) ?\]$"
_LAST_REPEATED = r"^last message repeated (\d+) times?$"

_SNIFF = [re.compile("^" + p) for p in (RFC5424, RFC3164, RFC3339_FILE)]


def sniff(head: bytes) -> bool:
    """Most of the first lines are syslog headers; text only (JSON and binary are not syslog)."""
    if b"\x00" in head:
        return False
    lines = [ln for ln in head.decode("utf-8", errors="replace").split("\n")[:-1] if ln.strip()]
    if not lines:  # one unterminated line: judge it alone
        lines = [ln for ln in head.decode("utf-8", errors="replace").split("\n") if ln.strip()]
    lines = [ln.rstrip("\r") for ln in lines[:20]]
    if not lines or not any(p.match(lines[0]) for p in _SNIFF):
        return False
    hits = sum(1 for ln in lines if any(p.match(ln) for p in _SNIFF))
    return hits * 5 >= len(lines) * 4


# ---------------------------------------------------------------------------------------------
# The year of BSD timestamps


def _month_number(mon: pl.Expr) -> pl.Expr:
    return mon.replace_strict(list(MONTHS), list(range(1, 13)), default=None, return_dtype=pl.Int8)


def _turns(months: pl.Series, carry: int | None) -> tuple[pl.Series, int | None]:
    """Per line, how many year turns happened up to it in this batch (given the month before the
    batch), and the batch's last month."""
    prev = months.shift(1).fill_null(carry) if carry is not None else months.shift(1)
    frame = pl.DataFrame({"m": months, "p": prev}).with_columns(pl.col("p").forward_fill())
    turns = frame.select(
        ((pl.col("m").cast(pl.Int16) - pl.col("p").cast(pl.Int16)) < -6)
        .fill_null(False)
        .cast(pl.Int32)
        .cum_sum()
    ).to_series()
    known = months.drop_nulls()
    return turns, (int(known[-1]) if len(known) else carry)


_MONTH_ONLY = rf"^(?:<\d{{1,3}}>)?({_MON}) {{1,2}}(\d{{1,2}}) \d{{2}}:\d{{2}}:\d{{2}}"


def _first_year(path: Path, ctx: ReadContext) -> int:
    """The year of the file's first BSD timestamp (see the module's docstring)."""
    if ctx.year is not None:
        return ctx.year
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    total = 0
    carry: int | None = None
    last_day: int | None = None
    for _, lines in line_batches(path):
        parts = pl.DataFrame({"l": pl.Series(lines)}).select(
            m=_month_number(pl.col("l").str.extract(_MONTH_ONLY, 1)),
            d=pl.col("l").str.extract(_MONTH_ONLY, 2).cast(pl.Int8, strict=False),
        )
        turns, carry = _turns(parts["m"], carry)
        if len(turns):
            total += int(turns[-1])
        days = parts.filter(pl.col("m").is_not_null())["d"]
        if len(days):
            last_day = int(days[-1])
    year = mtime.year - total
    if carry is not None and last_day is not None:
        try:
            last = datetime(mtime.year, carry, last_day, tzinfo=UTC)
        except ValueError:  # Feb 29 in a common year: not a date, the guess stands
            last = mtime
        if last > mtime + timedelta(days=1):  # written in December, file touched in January
            year -= 1
    return year


# ---------------------------------------------------------------------------------------------
# Header fields


def _nil(col: str) -> pl.Expr:
    return pl.when(pl.col(col) == "-").then(None).otherwise(pl.col(col)).alias(col)


def _head(pattern: str) -> str:
    """A header regex for Polars: the header alone, as group ``h`` (what follows it is cut off by
    its length: capturing a whole line's ``.*`` costs four times the header's match)."""
    return "^(?P<h>" + pattern + ")"


_H5424 = _head(RFC5424.split("(?: (?P<msg>")[0])
_H3164 = _head(RFC3164.removesuffix("(?P<rest>.*)$"))
_H3339 = _head(RFC3339_FILE.removesuffix("(?P<rest>.*)$"))
_HTAG = _head(TAG.removeprefix("^").removesuffix("(?P<msg>.*)$"))


def _after(line: pl.Expr, head: pl.Expr) -> pl.Expr:
    return line.str.slice(head.str.len_chars())


def _headers(
    frame: pl.DataFrame, year: int, carry: int | None, zone: str = "UTC"
) -> tuple[pl.DataFrame, int | None]:
    """Header fields of each line; ``fmt`` is null where no syslog layout fits."""
    line = pl.col("line")
    f = frame.with_columns(
        a=pl.when(line.str.starts_with("<")).then(line).str.extract_groups(_H5424),
        b=line.str.extract_groups(_H3164),
    )
    a, b = (pl.col(x).struct.field for x in "ab")
    f = f.with_columns(
        c=pl.when(b("h").is_null() & a("h").is_null() & line.str.contains(r"^(?:<\d{1,3}>)?\d{4}-"))
        .then(line)
        .str.extract_groups(_H3339),
        rest5=_after(line, a("h")),
    )
    c = pl.col("c").struct.field
    # RFC 5424: the header ends the line, or a space and MSG follow.
    ok5 = a("h").is_not_null() & ((pl.col("rest5") == "") | pl.col("rest5").str.starts_with(" "))
    f = f.with_columns(
        fmt=pl.when(ok5)
        .then(pl.lit("rfc5424"))
        .when(b("h").is_not_null() | c("h").is_not_null())
        .then(pl.lit("rfc3164")),
        pri=pl.coalesce(pl.when(ok5).then(a("pri")), b("pri"), c("pri")).cast(pl.Int16),
        host=pl.coalesce(pl.when(ok5).then(a("host")), b("host"), c("host")),
        rest=pl.coalesce(_after(line, b("h")), _after(line, c("h"))),
        mon=_month_number(b("mon")),
        clock=b("clock"),
        day=b("day"),
        iso=pl.coalesce(pl.when(ok5).then(a("time")), c("time")),
        app=pl.when(ok5).then(a("app")),
        procid=pl.when(ok5).then(a("procid")),
        msgid=pl.when(ok5).then(a("msgid")),
        sd=pl.when(ok5).then(a("sd")),
        msg5424=pl.when(ok5 & (pl.col("rest5") != "")).then(pl.col("rest5").str.slice(1)),
    ).drop("a", "b", "c", "rest5")
    # Some local loggers (BusyBox, macOS) write no HOSTNAME: the word read as one is the tag.
    tagged = (pl.col("fmt") == "rfc3164") & pl.col("host").str.contains(
        r"^[^\s\[\]:]+(?:\[\d+\])?:$"
    )
    f = f.with_columns(
        rest=pl.when(tagged).then(pl.format("{} {}", "host", "rest")).otherwise("rest"),
        host=pl.when(tagged).then(None).otherwise("host"),
    )
    turns, carry = _turns(f["mon"], carry)
    bsd = pl.format(
        "{} {} {} {}",
        pl.lit(year) + pl.col("turns"),
        pl.col("mon").cast(pl.String).str.zfill(2),
        pl.col("day").str.zfill(2),
        pl.col("clock"),
    )
    tag = pl.col("rest").str.extract_groups(_HTAG)
    local = pl.coalesce(
        bsd.str.to_datetime("%Y %m %d %H:%M:%S", strict=False, time_unit="us"),
        bsd.str.to_datetime("%Y %m %d %H:%M:%S%.f", strict=False, time_unit="us"),
    )
    f = (
        f.with_columns(turns=turns, tag=tag)
        .with_columns(bsd_local=local)
        .with_columns(
            ts=pl.when(pl.col("fmt") == "rfc5424")
            .then(parse_times(pl.col("iso")))
            .when(pl.col("mon").is_not_null())
            .then(
                pl.col("bsd_local")
                .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
                .dt.convert_time_zone("UTC")
            )
            .otherwise(parse_times(pl.col("iso"))),
            app=pl.coalesce(pl.col("app"), pl.col("tag").struct.field("app")),
            pid=pl.coalesce(pl.col("procid"), pl.col("tag").struct.field("pid")).cast(
                pl.Int64, strict=False
            ),
            message=pl.when(pl.col("fmt") == "rfc5424")
            .then(pl.col("msg5424").str.strip_prefix("\ufeff"))
            .otherwise(
                pl.coalesce(_after(pl.col("rest"), pl.col("tag").struct.field("h")), pl.col("rest"))
            ),
        )
    )
    f = f.with_columns(_nil("host"), _nil("app"), _nil("msgid"), _nil("sd"))
    return f, carry


def _json_string(text: pl.Expr) -> pl.Expr:
    """A string as a JSON string literal, escaped by Polars' own JSON encoder."""
    return (
        pl.struct(text.alias("x"))
        .struct.json_encode()
        .str.strip_prefix('{"x":')
        .str.strip_suffix("}")
    )


def _structured_data(frame: pl.DataFrame) -> pl.DataFrame:
    """``record`` -> ``structured_data`` (JSON text) for the lines with SD-ELEMENTs."""
    sd = frame.filter(pl.col("sd").is_not_null()).select("record", "sd")
    if sd.height == 0:
        return pl.DataFrame(schema={"record": pl.Int64, "structured_data": pl.String})
    elements = (
        sd.select("record", e=pl.col("sd").str.extract_all(_SD_ELEMENT))
        .explode("e")
        .with_columns(n=pl.int_range(pl.len()).over("record"))
        .with_columns(
            sd_id=pl.col("e").str.extract(r"^\[([^\s\]]+)", 1),
            p=pl.col("e").str.extract_all(_SD_PARAM),
        )
        .unique(subset=["record", "sd_id"], keep="first", maintain_order=True)
    )
    params = (
        elements.select("record", "n", "p")
        .explode("p")
        .filter(pl.col("p").is_not_null())
        .with_columns(
            name=pl.col("p").str.extract(r"^([^=]+)=", 1),
            value=pl.col("p")
            .str.extract(r"^[^=]+=\"(.*)\"$", 1)
            .str.replace_all(r"\\([\"\\\]])", "$1"),
        )
        .unique(subset=["record", "n", "name"], keep="first", maintain_order=True)
        .group_by("record", "n", maintain_order=True)
        .agg(
            body=pl.format(
                "{}:{}", _json_string(pl.col("name")), _json_string(pl.col("value"))
            ).str.join(",")
        )
    )
    objects = (
        elements.select("record", "n", "sd_id")
        .join(params, on=["record", "n"], how="left", maintain_order="left")
        .group_by("record", maintain_order=True)
        .agg(
            parts=pl.concat_str(
                _json_string(pl.col("sd_id")),
                pl.lit(":{"),
                pl.col("body").fill_null(""),
                pl.lit("}"),
            ).str.join(",")
        )
    )
    return objects.select(
        "record", structured_data=pl.concat_str(pl.lit("{"), pl.col("parts"), pl.lit("}"))
    )


# ---------------------------------------------------------------------------------------------
# Authentication events


@dataclass(frozen=True)
class Rule:
    """One kind of authentication line: which programs write it and what it means."""

    apps: tuple[str, ...] | None  # the programs (tags) that write it; None: any
    pattern: str  # regex over the message, named groups user/ip/port/method/n/...
    outcome: str
    reason: str | None  # the kind of line (detectors count one kind); None: the group's
    needle: str | None = None  # text every such message holds: a cheap first cut
    service: str | None = None  # None: from the app (or PAM's service)
    invalid_user: bool | None = None  # None: from the ``inv`` group when present
    method: str | None = None  # when the message names none (sshd's does)


_SSHD = ("sshd", "sshd-session")
_FTP_CLIENT = r"\(\S*\[(?P<ip>[^\]]+)\]\)"
RULES: tuple[Rule, ...] = (
    Rule(
        _SSHD,
        r"^Failed (?P<method>\S+) for (?P<inv>invalid user )?(?P<user>.*?) from (?P<ip>\S+) "
        r"port (?P<port>\d+)",
        "failure",
        None,  # "failed <method>"
        needle="Failed ",
    ),
    Rule(
        _SSHD,
        r"^Accepted (?P<method>\S+) for (?P<user>.*?) from (?P<ip>\S+) port (?P<port>\d+)",
        "success",
        None,
        needle="Accepted ",
    ),
    Rule(
        _SSHD,
        r"^[Ii]nvalid user (?P<user>.*?) from (?P<ip>\S+?)(?: port (?P<port>\d+))?\s*$",
        "failure",
        "invalid user",
        invalid_user=True,
        needle="nvalid user ",
    ),
    Rule(
        _SSHD,
        r"^(?:Disconnected from|Connection closed by) (?P<inv>invalid|authenticating) user "
        r"(?P<user>.*?) ?(?P<ip>[0-9A-Fa-f.:]+) port (?P<port>\d+)",
        "failure",
        "closed while authenticating",
        needle="user ",
    ),
    Rule(
        ("dropbear",),
        r"^(?:Bad password attempt for '(?P<user>[^']*)'|"
        r"Login attempt for (?P<inv>nonexistent) user"
        r"(?: '(?P<user2>[^']*)')?) from \[?(?P<ip>\S+?)\]?:(?P<port>\d+)$",
        "failure",
        "bad password",
        method="password",
        needle=" attempt for ",
    ),
    Rule(
        ("dropbear",),
        r"^(?P<method>Password|Pubkey) auth succeeded for '(?P<user>[^']*)'.* from "
        r"\[?(?P<ip>\S+?)\]?:(?P<port>\d+)$",
        "success",
        None,
        needle=" auth succeeded for ",
    ),
    Rule(
        None,
        r"^pam_\w+\((?P<pamsvc>[^:)]+):auth\): authentication failure;.*? "
        r"rhost=(?P<ip>\S*)(?:\s+user=(?P<user>\S+))?",
        "failure",
        "pam authentication failure",
        method="password",
        needle="authentication failure;",
    ),
    Rule(
        ("sudo",),
        r"^\s*(?P<user>\S+) : (?P<n>\d+) incorrect password attempts? ;",
        "failure",
        "incorrect password",
        method="password",
        needle="incorrect password attempt",
    ),
    Rule(
        ("sudo",),
        r"^\s*(?P<user>\S+) : (?P<why>user NOT in sudoers|command not allowed) ;",
        "failure",
        None,
        method="password",
        needle=" ; ",
    ),
    Rule(
        ("sudo",),
        r"^\s*(?P<user>\S+) : TTY=\S+ ; PWD=.*? ; USER=\S+ ;(?: [A-Z]+=\S* ;)* COMMAND=",
        "success",
        None,
        method="password",
        needle="COMMAND=",
    ),
    Rule(
        ("su",),
        r"^FAILED (?:SU|su) (?:\(to (?P<user>\S+)\) \S+ on \S+|for (?P<user2>\S+) by \S+)",
        "failure",
        "failed su",
        method="password",
        needle="FAILED ",
    ),
    Rule(
        ("su",),
        r"^(?:\(to (?P<user>\S+)\) \S+ on \S+|Successful su for (?P<user2>\S+) by \S+)",
        "success",
        None,
        method="password",
    ),
    Rule(
        ("vsftpd",),
        r"^\[(?P<user>[^\]]*)\] FAIL LOGIN: Client \"(?:::ffff:)?(?P<ip>[^\"]+)\"",
        "failure",
        "fail login",
        method="password",
        needle="FAIL LOGIN",
    ),
    Rule(
        ("vsftpd",),
        r"^\[(?P<user>[^\]]*)\] OK LOGIN: Client \"(?:::ffff:)?(?P<ip>[^\"]+)\"",
        "success",
        None,
        method="password",
        needle="OK LOGIN",
    ),
    Rule(
        ("proftpd",),
        _FTP_CLIENT + r" - USER (?P<user>\S+?)(?: \(Login failed\))?: "
        r"(?P<why>Incorrect password|no such user found|.*[Ll]ogin failed.*)",
        "failure",
        None,
        method="password",
        needle=" - USER ",
    ),
    Rule(
        ("proftpd",),
        _FTP_CLIENT + r" - (?:ANON |USER )?(?P<user>\S+?): Login successful",
        "success",
        None,
        method="password",
        needle="Login successful",
    ),
    Rule(
        ("pure-ftpd",),
        r"^\((?:[^@]*)@(?P<ip>[^)]+)\) \[WARNING\] Authentication failed for user "
        r"\[(?P<user>[^\]]*)\]",
        "failure",
        "authentication failed",
        method="password",
        needle="Authentication failed",
    ),
    Rule(
        ("pure-ftpd",),
        r"^\((?:[^@]*)@(?P<ip>[^)]+)\) \[INFO\] (?P<user>\S+) is now logged in",
        "success",
        None,
        method="password",
        needle="is now logged in",
    ),
    Rule(
        ("login",),
        r"^FAILED LOGIN \(?\d+\)? (?:on '?\S+?'? )?(?:FROM '?(?P<ip>[^' ]+)'? )?"
        r"FOR '?(?P<user>[^',]+)'?, (?P<why>.*)$",
        "failure",
        None,
        method="password",
        needle="FAILED LOGIN",
    ),
    Rule(
        ("login",),
        r"^(?:LOGIN ON \S+ BY (?P<user>\S+)|(?P<root>ROOT) LOGIN\s+(?:ON|on) '?\S+?'?)"
        r"(?: FROM '?(?P<ip>[^' ]+)'?)?\s*$",
        "success",
        None,
        method="password",
        needle="LOGIN",
    ),
)

SERVICES = {
    "sshd": "ssh", "sshd-session": "ssh", "vsftpd": "ftp", "proftpd": "ftp", "pure-ftpd": "ftp",
    "ftp": "ftp", "sudo": "sudo", "su": "su", "login": "login", "remote": "telnet",
    "su-l": "su", "sudo-i": "sudo", "dropbear": "ssh",
}  # fmt: skip
_GROUPS = ("user", "user2", "ip", "port", "method", "n", "inv", "why", "pamsvc", "root")


def _service(app: pl.Expr, ip: pl.Expr) -> pl.Expr:
    mapped = app.replace_strict(SERVICES, default=app)
    # login over the network is telnet (or rlogin): the terminal's remote end is named.
    return pl.when((mapped == "login") & ip.is_not_null()).then(pl.lit("telnet")).otherwise(mapped)


def _rule_rows(lines: pl.DataFrame, rule: Rule, order: int) -> pl.DataFrame:
    hit = lines if rule.apps is None else lines.filter(pl.col("app").is_in(rule.apps))
    if rule.needle is not None:
        hit = hit.filter(pl.col("msg").str.contains(rule.needle, literal=True))
    hit = hit.filter(pl.col("msg").str.contains(rule.pattern)).with_columns(
        g=pl.col("msg").str.extract_groups(rule.pattern)
    )
    names = [n for n in re.compile(rule.pattern).groupindex if n in _GROUPS]
    g = {
        n: (pl.col("g").struct.field(n) if n in names else pl.lit(None, pl.String)) for n in _GROUPS
    }
    user = pl.coalesce(g["user"], g["user2"], pl.when(g["root"].is_not_null()).then(pl.lit("root")))
    ip = g["ip"].str.replace(r"^::ffff:", "")
    # PAM's rhost may be a host name: src_ip holds addresses only (local ones say nothing).
    address = ip.str.contains(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)$")
    ip = pl.when(address & ~ip.is_in(["127.0.0.1", "::1"])).then(ip)
    if rule.reason is not None:
        reason: pl.Expr = pl.lit(rule.reason)
    elif "method" in names:
        reason = pl.format("failed {}", g["method"])
    else:
        reason = g["why"]
    if rule.invalid_user is not None:
        invalid: pl.Expr = pl.lit(rule.invalid_user)
    elif "inv" in names:
        invalid = g["inv"].str.contains("invalid|nonexistent").fill_null(False)
    elif "why" in names:
        invalid = g["why"].str.contains(r"(?i)no such user|not known").fill_null(False)
    else:
        invalid = pl.lit(None, pl.Boolean)
    app = pl.when(g["pamsvc"].is_not_null()).then(g["pamsvc"]).otherwise(pl.col("app"))
    return hit.select(
        "record",
        "repeat",
        order=pl.lit(order),
        service=_service(app, ip) if rule.service is None else pl.lit(rule.service),
        outcome=pl.lit(rule.outcome),
        user=pl.when(user.str.strip_chars() == "").then(None).otherwise(user),
        invalid_user=invalid,
        src_ip=ip,
        src_port=g["port"].cast(pl.UInt16, strict=False),
        method=g["method"].str.to_lowercase().replace("pubkey", "publickey")
        if "method" in names
        else pl.lit(rule.method, pl.String),
        reason=pl.when(pl.lit(rule.outcome) == "failure").then(reason),
        n=g["n"].cast(pl.Int64, strict=False),
    )


def auth_rows(syslog: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
    """The authentication events among ``syslog`` rows, as ``auth`` rows."""
    msg = pl.col("message")
    rep = pl.when(msg.str.starts_with("message repeated ")).then(msg).str.extract_groups(_REPEATED)
    known = sorted({a for r in RULES for a in r.apps or ()})
    lines = syslog.select(
        "record",
        "ts",
        "uid",
        "file",
        "host",
        app=pl.col("app").fill_null(""),
        msg=pl.coalesce(rep.struct.field("inner"), pl.col("message")),
        # rsyslog's "message repeated N times: [ msg ]" and BSD syslogd's "last message repeated
        # N times" on the next line: the event happened N more times.
        repeat=rep.struct.field("n").cast(pl.Int64, strict=False).fill_null(1)
        + pl.when(pl.col("app").shift(-1).is_null() & (pl.col("host").shift(-1) == pl.col("host")))
        .then(msg.shift(-1).str.extract(_LAST_REPEATED, 1).cast(pl.Int64, strict=False))
        .fill_null(0),
    ).filter(pl.col("app").is_in(known) | pl.col("msg").str.starts_with("pam_"))
    found = [_rule_rows(lines, rule, i) for i, rule in enumerate(RULES)]
    found = [f for f in found if f.height]
    if not found:
        return pl.from_arrow(schema_of("auth").empty_table())  # type: ignore[return-value]
    events = (
        pl.concat(found)
        .sort("record", "order")
        .unique(subset="record", keep="first", maintain_order=True)
        .with_columns(times=pl.max_horizontal(pl.col("repeat"), pl.col("n").fill_null(1)))
        .with_columns(k=pl.int_ranges(1, pl.col("times") + 1))
        .explode("k")
        .join(lines.select("record", "ts", "uid", "file", "host"), on="record", how="left")
    )
    seed = f"A{ctx.seed}."
    return events.select(
        "ts",
        uid=pl.when(pl.col("times") > 1)
        .then(pl.format("{}{}.{}", pl.lit(seed), pl.col("record"), pl.col("k")))
        .otherwise(pl.format("{}{}", pl.lit(seed), pl.col("record"))),
        file="file",
        record="record",
        host="host",
        source=pl.lit("syslog"),
        source_uid="uid",
        service="service",
        outcome="outcome",
        user="user",
        invalid_user="invalid_user",
        src_ip="src_ip",
        src_port="src_port",
        dst_ip=pl.lit(None, pl.String),
        dst_port=pl.lit(None, pl.UInt16),
        method="method",
        logon_type=pl.lit(None, pl.Int16),
        reason="reason",
    )


# ---------------------------------------------------------------------------------------------
# The sensor


@log_sensor("syslog", tables=("syslog", "auth"), sniff=sniff, priority=500)
def read(path: Path, ctx: ReadContext) -> Iterator[tuple[str, pa.Table]]:
    """Syslog files, RFC 3164 (with or without PRI, as /var/log/auth.log) and RFC 5424."""
    year = _first_year(path, ctx)
    carry: int | None = None
    turned = 0
    for numbers, lines in line_batches(path):
        frame = pl.DataFrame({"record": pl.Series(numbers), "line": pl.Series(lines)}).filter(
            pl.col("line").str.strip_chars().str.len_bytes() > 0
        )
        if frame.height == 0:
            continue
        f, carry_next = _headers(frame, year + turned, carry, ctx.timezone)
        if f.height:
            turned += int(f["turns"][-1])
        carry = carry_next
        bad_pri = pl.col("pri") > 191
        bad = f.filter(pl.col("fmt").is_null() | pl.col("ts").is_null() | bad_pri.fill_null(False))
        ctx.warn_rows(
            bad.select(
                "record",
                reason=pl.when(pl.col("fmt").is_null())
                .then(pl.lit("not a syslog line (RFC 3164 or RFC 5424)"))
                .when(bad_pri.fill_null(False))
                .then(pl.format("PRI {} out of range (0-191)", pl.col("pri")))
                .when(pl.col("mon").is_not_null() & pl.col("bsd_local").is_not_null())
                .then(pl.lit(f"a local time that {ctx.timezone} skips (daylight saving)"))
                .otherwise(pl.lit("no timestamp it could read")),
            )
        )
        good = f.filter(
            pl.col("fmt").is_not_null() & pl.col("ts").is_not_null() & ~bad_pri.fill_null(False)
        )
        if good.height == 0:
            continue
        sd = _structured_data(good)
        good = good.join(sd, on="record", how="left", maintain_order="left")
        table = good.select(
            "ts",
            uid=pl.Series(ctx.uids("S", good["record"].to_arrow())),
            file=pl.lit(str(path)),
            record="record",
            host="host",
            format="fmt",
            facility=(pl.col("pri") // 8).cast(pl.Int16),
            severity=(pl.col("pri") % 8).cast(pl.Int16),
            app="app",
            pid="pid",
            msgid="msgid",
            structured_data="structured_data",
            message="message",
        )
        yield "syslog", table.to_arrow()
        auth = auth_rows(table, ctx)
        if auth.height:
            yield "auth", auth.to_arrow()
