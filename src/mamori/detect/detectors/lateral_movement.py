"""Lateral movement: an internal host suddenly logging in to many other internal hosts.

Admin protocols (SMB, RDP, WinRM, SSH, DCE-RPC) from one workstation to a handful of servers are
daily life; the same host reaching many internal machines it has never touched before, in one
window, is how an intruder with stolen credentials spreads (PsExec over a subnet, a worm, WMI
fan-out). So only completed handshakes between local hosts count, targets are compared with the
source's own history (targets seen in an earlier window are not new; the window's count must
exceed ``baseline_factor`` times the source's mean per earlier window), and the techniques name
the protocols used. A source's first window has no history, so its first fan-out alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mamori.detect.base import Params, alerts, detector

ID = "lateral.movement"
NAMES = {
    "T1021.001": "RDP",
    "T1021.002": "SMB",
    "T1021.003": "DCE-RPC",
    "T1021.004": "SSH",
    "T1021.006": "WinRM",
}
ESTABLISHED = ("SF", "S1", "S2", "S3", "RSTO", "RSTR")  # Zeek conn_state: handshake completed


def _technique(port: pl.Expr, service: pl.Expr) -> pl.Expr:
    """ATT&CK T1021 sub-technique of a connection, by port first, else by detected service."""
    return (
        pl.when(port.is_in([445, 139]) | service.str.contains("smb"))
        .then(pl.lit("T1021.002"))
        .when((port == 3389) | service.str.contains("rdp"))
        .then(pl.lit("T1021.001"))
        .when(port.is_in([5985, 5986]))
        .then(pl.lit("T1021.006"))
        .when((port == 22) | service.str.contains("ssh"))
        .then(pl.lit("T1021.004"))
        .when((port == 135) | service.str.contains("dce_rpc"))
        .then(pl.lit("T1021.003"))  # DCOM/WMI over the RPC endpoint mapper
    )


@dataclass(frozen=True)
class LateralMovementParams(Params):
    # Window in which a source's internal targets are counted.
    window_minutes: float = 60.0
    # New internal targets (never reached by this source before) in one window to alert.
    min_new_targets: int = 5
    # The window's targets must exceed this multiple of the source's mean per earlier window.
    baseline_factor: float = 3.0
    # New targets in one window from which the alert is high rather than medium.
    high_new_targets: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_minutes <= 0 or self.min_new_targets < 1 or self.baseline_factor < 0:
            raise ValueError("window_minutes must be positive, min_new_targets >= 1")


@detector(ID, reads="conn", key=("orig_h",), attack=("T1021",), params=LateralMovementParams)
def lateral_movement(conn: pl.LazyFrame, p: LateralMovementParams) -> pl.LazyFrame:
    """Internal sources reaching many new internal hosts over admin protocols, beyond baseline."""
    every = f"{int(p.window_minutes * 60_000_000)}us"
    admin = (
        conn.filter(
            (pl.col("proto") == "tcp")
            & pl.col("local_orig").fill_null(False)
            & pl.col("local_resp").fill_null(False)
            & (pl.col("orig_h") != pl.col("resp_h"))
            & pl.col("conn_state").is_in(ESTABLISHED)
        )
        .with_columns(
            technique=_technique(pl.col("resp_p"), pl.col("service").fill_null("")),
            window=pl.col("ts").dt.truncate(every),
        )
        .filter(pl.col("technique").is_not_null())
        .with_columns(first=pl.col("window").min().over("orig_h", "resp_h"))
        .sort("ts", "uid")  # a total order: evidence must not depend on the input's row order
    )
    per_window = (
        admin.group_by("orig_h", "window")
        .agg(
            targets=pl.col("resp_h").n_unique(),
            new=pl.col("resp_h").filter(pl.col("first") == pl.col("window")).n_unique(),
            techniques=pl.col("technique").unique().sort(),
            first_seen=pl.col("ts").min(),
            last_seen=pl.col("ts").max(),
            n=pl.len(),
            uids=pl.col("uid"),
        )
        .sort("orig_h", "window")
        .with_columns(
            earlier=pl.int_range(pl.len()).over("orig_h"),
            before=pl.col("targets").cum_sum().over("orig_h") - pl.col("targets"),
        )
        .with_columns(baseline=(pl.col("before") / pl.col("earlier")).fill_nan(0.0).fill_null(0.0))
    )
    hits = per_window.filter(
        (pl.col("new") >= p.min_new_targets)
        & (pl.col("targets") > p.baseline_factor * pl.col("baseline"))
    )
    return alerts(
        hits,
        detector_id=ID,
        techniques=pl.col("techniques"),
        severity=pl.when(pl.col("new") >= p.high_new_targets)
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        confidence=pl.min_horizontal(
            pl.lit(0.9), 0.5 + 0.3 * (pl.col("new") / p.min_new_targets - 1) / 3
        ),
        summary=pl.format(
            "{} reached {} internal hosts ({} new; baseline {} per window) over {}",
            pl.col("orig_h"),
            pl.col("targets"),
            pl.col("new"),
            pl.col("baseline").round(1),
            pl.col("techniques").list.eval(pl.element().replace_strict(NAMES)).list.join(", "),
        ),
        src=pl.col("orig_h"),
        dst=None,
        first_seen=pl.col("first_seen"),
        last_seen=pl.col("last_seen"),
        count=pl.col("n"),
        evidence_table="conn",
        evidence=pl.col("uids"),
        key=pl.col("orig_h"),
    )
