"""How guessing-style detectors grade what they count, in one place.

Brute force against SSH, FTP, HTTP or any login service is graded the same way: medium until the
count reaches ten times the limit, high beyond; confidence grows from a floor at the limit to a cap
at ten times it; many distinct user names make it spraying (T1110.003) rather than guessing.
"""

from __future__ import annotations

import polars as pl


def volume_severity(n: pl.Expr, limit: int) -> pl.Expr:
    """'medium' at the limit, 'high' from ten times it."""
    return pl.when(n >= 10 * limit).then(pl.lit("high")).otherwise(pl.lit("medium"))


def volume_confidence(n: pl.Expr, limit: int, floor: float, cap: float) -> pl.Expr:
    """``floor`` at the limit, rising by 0.3 up to ten times it, never above ``cap``."""
    return pl.min_horizontal(pl.lit(cap), floor + 0.3 * (n / limit - 1) / 9)


def guessing_or_spraying(spraying: pl.Expr) -> pl.Expr:
    """T1110.003 (password spraying) when many user names are tried, else T1110.001."""
    return (
        pl.when(spraying)
        .then(pl.lit(["T1110.003"], dtype=pl.List(pl.String)))
        .otherwise(pl.lit(["T1110.001"], dtype=pl.List(pl.String)))
    )
