"""Attacks on web applications, read from HTTP requests: SQL injection, cross-site scripting, path
traversal, OS command injection, Log4Shell and Shellshock (ATT&CK T1190, Exploit Public-Facing
Application; command injection also T1059).

Why per request, unlike Zeek's ``detect-sqli`` (which waits for 50 matching requests in five
minutes): a hand-made injection is a handful of requests (the shared DVWA trace has three), and
each one carrying a tautology or a ``UNION SELECT`` is an attack on its own, which is how
Suricata's web-attack rules judge it too. What keeps this quiet on ordinary traffic is what the
patterns demand: SQL syntax that closes a quoted value and goes on, markup with a script in it,
two or more ``../`` in a row or a system file named, a shell command after a separator; never a
word such as "select" or "union" alone. The URI is matched percent-decoded (twice, for double
encoding) and lower-cased, so ``%27%20OR%20%271%27%3D%271`` is ``' or '1'='1``; the User-Agent
and Referer are matched too, for the header-borne Log4Shell and Shellshock.

One alert per attacker, server and window, with the kinds of attack seen and the first request's
URI as an example: medium; high when it tries code execution (command injection, Log4Shell,
Shellshock), three kinds or more, or ``many`` requests (a scanner such as sqlmap at work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mamori.detect.base import Params, alerts, detector
from mamori.detect.windows import threshold

ID = "web.attack"
SAMPLE_CHARS = 160  # of the example URI quoted in the summary

# Percent-escapes of every printable ASCII character and the control characters injections use
# (tab, newline, return, NUL), lower-case hex: matched after the URI is lower-cased.
_ESCAPES = {f"%{c:02x}": chr(c) for c in [0, 9, 10, 13, *range(0x20, 0x7F)]}

# kind -> (label in the summary, regular expressions on the decoded, lower-cased text); a request
# matching several is counted under the first, so the kinds that try to run code come first.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "log4shell": (
        "Log4Shell (JNDI lookup)",
        (
            r"\$\{\s*jndi\s*:",
            r"\$\{\s*\$\{\s*(lower|upper|env|sys|date|::-)",  # ${${lower:j}ndi:...} obfuscation
        ),
    ),
    "shellshock": ("Shellshock", (r"\(\)\s*\{\s*:?\s*;?\s*\}\s*;",)),
    "cmdi": (
        "command injection",
        (
            r"(;|\||`|\$\(|&&|\n)\s*(cat|uname|whoami|wget|curl|nc|ncat|bash|sh|ping|id|ls|"
            r"powershell|cmd|cmd\.exe|echo)(\s|$|;|`|\))",
        ),
    ),
    "sqli": (
        "SQL injection",
        (
            # A quoted value closed and a condition added: ' or '1'='1, ' and 1=1, ') or ('a'='a
            r"'\s*\)?\s*(or|and|\|\||&&)\s+\(?\s*'?\w*'?\s*(=|<|>|\blike\b)",
            r"\bunion(\s+all|\s+distinct)?\s+select\b",
            # A quoted value closed and the rest of the statement commented out: admin'--, 1' #
            r"'\s*\)?\s*(--|#|/\*)",
            r"'\s*\)?\s*;\s*(drop|insert|update|delete|exec|execute|shutdown|declare)\b",
            r"\b(sleep|benchmark|pg_sleep)\s*\(\s*\d",
            r"\bwaitfor\s+delay\s+'",
            r"information_schema\.|@@version|\bxp_cmdshell\b|\bload_file\s*\(|\binto\s+(out|dump)file\b",
        ),
    ),
    "xss": (
        "cross-site scripting",
        (
            r"<\s*script\b",
            r"\bjavascript\s*:",
            r"<[^>]*\son(error|load|mouseover|focus|click|start|begin)\s*=",
            r"\bdocument\s*\.\s*(cookie|domain|write\s*\()",
        ),
    ),
    "traversal": (
        "path traversal",
        (
            r"(\.\./|\.\.\\){2,}",
            r"/etc/(passwd|shadow|group|hosts)\b",
            r"\b(boot|win|system)\.ini\b",
            r"/proc/self/(environ|cmdline|fd)",
            r"\\windows\\(system32|win\.ini)",
        ),
    ),
}
HEADER_KINDS = ("log4shell", "shellshock")  # the kinds a User-Agent or Referer can carry
EXECUTION = ("cmdi", "log4shell", "shellshock")  # kinds that try to run code on the server


@dataclass(frozen=True)
class WebAttackParams(Params):
    # One alert per attacker and server per window; repeats inside it are merged.
    window_minutes: float = 60.0
    # This many matching requests in one window is a tool at work: high severity.
    many: int = 50


def url_decoded(text: pl.Expr) -> pl.Expr:
    """Lower-cased, ``+`` as a space, percent-escapes decoded twice (``%2527`` is ``'``)."""
    out = text.fill_null("").str.to_lowercase().str.replace_all("+", " ", literal=True)
    for _ in range(2):
        out = out.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))
    return out


def _kind(texts: dict[str, pl.Expr]) -> pl.Expr:
    """The first kind whose patterns match (the URI for every kind, headers for theirs)."""
    out: pl.Expr = pl.lit(None, pl.String)
    for kind in reversed(KINDS):
        _, patterns = KINDS[kind]
        pattern = "|".join(f"(?:{p})" for p in patterns)
        hit = texts["uri"].str.contains(pattern)
        if kind in HEADER_KINDS:
            for name in ("user_agent", "referrer"):
                hit = hit | texts[name].str.contains(pattern)
        out = pl.when(hit).then(pl.lit(kind)).otherwise(out)
    return out


@detector(ID, reads="http", key=("orig_h",), attack=("T1190", "T1059"), params=WebAttackParams)
def web_attack(http: pl.LazyFrame, p: WebAttackParams) -> pl.LazyFrame:
    """Requests carrying an injection, traversal or exploit: one alert per attacker and server."""
    texts = {c: url_decoded(pl.col(c)) for c in ("uri", "user_agent", "referrer")}
    found = (
        http.with_columns(kind=_kind(texts)).filter(pl.col("kind").is_not_null()).sort("ts", "uid")
    )
    hits = threshold(
        found,
        key=("orig_h", "resp_h"),
        window=timedelta(minutes=p.window_minutes),
        at_least=1,
        extra=(
            pl.col("kind").unique().sort().alias("kinds"),
            pl.col("uri").first().alias("sample"),
            pl.col("host").drop_nulls().first().alias("site"),
        ),
    )
    labels = pl.col("kinds").list.eval(
        pl.element().replace_strict({k: v[0] for k, v in KINDS.items()})
    )
    runs_code = pl.col("kinds").list.eval(pl.element().is_in(list(EXECUTION))).list.any()
    high = runs_code | (pl.col("kinds").list.len() >= 3) | (pl.col("n") >= p.many)
    return alerts(
        hits,
        detector_id=ID,
        techniques=pl.when(runs_code)
        .then(pl.lit(["T1190", "T1059"], dtype=pl.List(pl.String)))
        .otherwise(pl.lit(["T1190"], dtype=pl.List(pl.String))),
        severity=pl.when(high).then(pl.lit("high")).otherwise(pl.lit("medium")),
        confidence=pl.when(pl.col("n") >= 3).then(0.9).otherwise(0.75),
        summary=pl.format(
            "{} attacked the web application on {}{}: {} request(s) with {} (first: {})",
            "orig_h",
            "resp_h",
            pl.when(pl.col("site").is_not_null() & (pl.col("site") != pl.col("resp_h")))
            .then(pl.format(" ({})", "site"))
            .otherwise(pl.lit("")),
            "n",
            labels.list.join(", "),
            pl.col("sample").str.slice(0, SAMPLE_CHARS),
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
