"""What the authentication detectors share: which ``auth`` rows are guesses, and how many.

One guess can be written several times: sshd logs ``Invalid user``, PAM's ``authentication
failure`` and ``Failed password`` for the same password, and may add ``Disconnected from
authenticating user`` when the client gives up. Counting every line would make three tries look
like nine. Each line keeps its own ``reason`` (the syslog sensor says which kind it is), so the
guesses in a window are the count of the most frequent *kind* of failure line there: each guess
counted once whichever lines the daemon wrote for it. Windows logon events and honeypot logins
are one row per attempt already; their kind is their source.

Rows without a source address (``sudo``, ``su``, console logins, NTLM validations that name only
a workstation) cannot be blamed on a source and are left out of these detectors.
"""

from __future__ import annotations

import polars as pl

KIND = "__kind"
TARGET = "target"  # the machine logged into: the log's host, else the address connected to


def attempts(auth: pl.LazyFrame, outcome: str) -> pl.LazyFrame:
    """Rows of one outcome with a source, their ``target`` and the ``__kind`` of line."""
    return auth.filter(
        (pl.col("outcome") == outcome) & pl.col("src_ip").is_not_null()
    ).with_columns(
        pl.coalesce(pl.col("host"), pl.col("dst_ip")).alias(TARGET),
        pl.col("service").fill_null(""),
        pl.when(pl.col("source") == "syslog")
        .then(pl.coalesce(pl.col("reason"), pl.lit("")))
        .otherwise(pl.col("source"))
        .alias(KIND),
    )


def guesses() -> pl.Expr:
    """In an aggregation: the number of guesses among a group's failure rows."""
    return pl.col(KIND).unique_counts().max().alias("guesses")


def users() -> pl.Expr:
    """In an aggregation: the distinct user names a group's rows tried."""
    return pl.col("user").drop_nulls().n_unique().alias("users")
