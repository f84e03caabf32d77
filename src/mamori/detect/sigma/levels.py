"""Sigma's rule levels, lowest first: what a detector's parameters are checked against without
loading pySigma (the rule compiler's import, ~80 ms, is paid only by a run that has rules)."""

LEVELS = ("informational", "low", "medium", "high", "critical")
