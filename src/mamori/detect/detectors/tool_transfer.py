"""Executables brought in by scripts and command-line downloaders (ATT&CK T1105 Ingress Tool
Transfer): a Windows PE, ELF or Mach-O program fetched over cleartext HTTP by ``curl``,
``wget``, PowerShell, ``certutil``, a Python or Go HTTP library or no User-Agent at all, or from a
server named by its bare address; and programs fetched over FTP.

Why the client matters: people download programs with browsers, and operating systems update
with their own agents (BITS, Delivery Optimization) from named servers; a second stage, a C2
agent or an attacker's toolkit arrives by whatever the foothold can run, which is a shell's
downloader (Caldera's agents are fetched with ``curl``; the shared PE trace is ``wget`` over
anonymous FTP). The body's type is read from its first bytes (``resp_mime_types``, the ingest's
``mime.sniff``), not from the file name, which says nothing over HTTP; FTP names the file but
mamori does not read FTP's data channel, so there a completed ``RETR`` of a program's name (or a
program type, where a Zeek ftp.log gives one) counts.

One alert per client, server and window, naming the files: medium, as a download is a step
before execution, not the execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "transfer.executable"
TECHNIQUES = ("T1105",)
EXECUTABLE_TYPES = (
    "application/x-dosexec", "application/x-executable", "application/x-sharedlib",
    "application/x-mach-o-executable",
)  # fmt: skip
# File names of programs and script hosts' input (what FTP's RETR names).
PROGRAM_NAME = (
    r"(?i)\.(exe|dll|scr|com|pif|cpl|msi|sys|ps1|bat|cmd|vbs|vbe|js|jse|wsf|hta|elf|sh|so)$"
)
# Default User-Agents of command-line downloaders and scripting HTTP libraries (lower case).
DOWNLOADERS = (
    r"^$|^-$|^curl/|^wget/|powershell|certutil|^python-requests/"
    r"|^python-urllib/|^python/|^go-http-client/|^libwww-perl/|^lwp::|^java/|^okhttp/|^winhttp"
    r"|^aria2/|^httpie/"
)
IP_HOST = r"^(\d{1,3}\.){3}\d{1,3}(:\d+)?$|^\[[0-9a-f:]+\](:\d+)?$"


@dataclass(frozen=True)
class ToolTransferParams(Params):
    # One alert per client and server per window; repeats inside it are merged.
    window_hours: float = 24.0


def _report(found: pl.LazyFrame, p: ToolTransferParams, table: str, how: str) -> pl.LazyFrame:
    hits = threshold(
        found.sort("ts", "uid"),
        key=("orig_h", "resp_h"),
        window=timedelta(hours=p.window_hours),
        at_least=1,
        extra=(
            pl.col("file").unique(maintain_order=True).alias("files"),
            pl.col("client").first().alias("agent"),
        ),
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=TECHNIQUES,
        severity="medium",
        confidence=0.7,
        summary=pl.format(
            "{} fetched {} program(s) from {} over {} ({}): {}",
            "orig_h",
            pl.col("files").list.len(),
            "resp_h",
            pl.lit(how),
            pl.col("agent").fill_null("no User-Agent"),
            pl.col("files").list.head(3).list.join(", "),
        ),
        src=pl.col("orig_h"),
        dst=pl.col("resp_h"),
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table=table,
        evidence=pl.col("uids"),
        key=pl.format("{}|{}|{}", pl.lit(table), "orig_h", "resp_h"),
    )


@detector(ID, reads=("http", "ftp"), key=("orig_h",), attack=TECHNIQUES, params=ToolTransferParams)
def tool_transfer(http: pl.LazyFrame, ftp: pl.LazyFrame, p: ToolTransferParams) -> pl.LazyFrame:
    """Programs downloaded by command-line tools or from bare addresses, over HTTP or FTP."""
    agent = pl.col("user_agent").fill_null("").str.strip_chars().str.to_lowercase()
    program = pl.col("resp_mime_types").list.eval(pl.element().is_in(EXECUTABLE_TYPES)).list.any()
    over_http = http.filter(
        program.fill_null(False)
        & (agent.str.contains(DOWNLOADERS) | pl.col("host").fill_null("").str.contains(IP_HOST))
    ).with_columns(
        # concat_str, not pl.format: format over a list element panicked in Polars 2.1's
        # streaming engine on some partitions of the shared captures (tests/detect/test_partition).
        file=pl.concat_str(
            [
                pl.col("uri").str.slice(0, 120),
                pl.lit(" ("),
                pl.col("resp_mime_types").list.first(),
                pl.lit(")"),
            ]
        ),
        client=pl.col("user_agent"),
    )
    done = pl.col("reply_code").is_in([226, 250])
    name = pl.col("arg").fill_null("").str.replace(r"^.*/", "")
    over_ftp = ftp.filter(
        (pl.col("command").str.to_uppercase() == "RETR")
        & done
        & (
            name.str.contains(PROGRAM_NAME)
            | pl.col("mime_type").fill_null("").is_in(EXECUTABLE_TYPES)
        )
    ).with_columns(file=name, client=pl.format("FTP user {}", pl.col("user")))
    return pl.concat([_report(over_http, p, "http", "HTTP"), _report(over_ftp, p, "ftp", "FTP")])
