"""The detector contract and its registry.

A detector is a plain function over Polars LazyFrames of the lake tables it ``reads``, returning
rows of the alerts schema (built with :func:`alerts`). It declares the partition ``key`` its logic
groups by: all rows of one key value are enough to decide that key's alerts, which is what lets an
engine run the same function on one machine (Polars, every core) or per key on Spark
(``groupBy(key).applyInArrow``) without rewriting it. A key that is not a column of every table
read (a flood's ``victim`` is whichever endpoint received the replies) comes with ``derive``: per
table, the row-wise expression of each such key column, so an engine can partition rows before the
detector sees them (``detect.partition``). Its tunables are a frozen dataclass with
documented defaults; a YAML file can override them (validated, with errors naming the file).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import polars as pl
import yaml

from mamori.schema.alerts import SEVERITIES

EVIDENCE_MAX = 50  # uids kept per alert; the count says how many records there were


class DetectorConfigError(ValueError):
    """A detector configuration that cannot be used; the message names the source."""


@dataclass(frozen=True)
class Params:
    """Base of every detector's parameters (frozen: a run's configuration cannot drift).

    The rules every detector's numbers share are checked here, by what a field's name says it
    is, so a YAML override cannot make a detector run on nonsense (a window of -5 s counted
    every connection in a window of its own; a share of 2 can never be reached) and no
    detector has to restate them: every number finite and not negative (thresholds, counts,
    spans, rates), a ``window*`` longer than zero, a ``*_share``, ``*_probability`` or
    confidence within 0-1. A detector's own ``__post_init__`` adds what only it knows, after
    calling this one."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number >= 0, not {value!r}")
            if f.name.startswith("window") and value <= 0:
                raise ValueError(f"{f.name} must be > 0, not {value!r}")
            unit = f.name.endswith(("_share", "_probability")) or "confidence" in f.name
            if unit and value > 1:
                raise ValueError(f"{f.name} must be within 0 and 1, not {value!r}")


DetectorFn = Callable[..., pl.LazyFrame]


@dataclass(frozen=True)
class Detector:
    id: str
    reads: tuple[str, ...]
    key: tuple[str, ...]
    attack: tuple[str, ...]
    params: type[Params]
    fn: DetectorFn
    doc: str
    derive: Mapping[str, Mapping[str, pl.Expr]] = dataclasses.field(default_factory=dict)
    # Its working set grows with the whole table it reads (every connection of a flood, every
    # walk's rows), not with what it finds: a local engine runs no two heavy detectors at once.
    heavy: bool = False
    # Heavier still (a flood is most of the table, with a set of sources per victim and window):
    # the engine runs it with nothing beside it.
    alone: bool = False

    def run(self, frames: Mapping[str, pl.LazyFrame], params: Params | None = None) -> pl.LazyFrame:
        return self.fn(*(frames[t] for t in self.reads), params or self.params())


_REGISTRY: dict[str, Detector] = {}


def detector(
    id: str,
    *,
    reads: str | tuple[str, ...],
    key: tuple[str, ...],
    attack: tuple[str, ...],
    params: type[Params],
    derive: Mapping[str, Mapping[str, pl.Expr]] | None = None,
    heavy: bool = False,
    alone: bool = False,
) -> Callable[[DetectorFn], DetectorFn]:
    """Register a detector function under a stable id; a second one with the same id is a bug,
    and so is a key an engine could not compute for every table the detector reads."""
    from mamori.schema import schema_of

    tables = (reads,) if isinstance(reads, str) else tuple(reads)
    derive = dict(derive or {})
    for table in tables:
        have = set(schema_of(table).names) | set(derive.get(table, {}))
        missing = [k for k in key if k not in have]
        if missing:
            raise ValueError(
                f"detector {id!r}: key {missing} is neither a column of {table!r} nor derived"
            )

    def wrap(fn: DetectorFn) -> DetectorFn:
        if id in _REGISTRY:
            raise ValueError(f"detector {id!r} registered twice")
        doc = (fn.__doc__ or "").strip()
        _REGISTRY[id] = Detector(
            id, tables, key, attack, params, fn, doc, derive, heavy or alone, alone
        )
        return fn

    return wrap


def registered() -> dict[str, Detector]:
    """Every detector, importing the built-in modules on first use."""
    from mamori.detect import detectors  # noqa: F401  (imports register the built-ins)

    return dict(_REGISTRY)


def load_params(path: Path | None) -> dict[str, Params]:
    """Parameters per detector id: defaults, overridden by a YAML file ``{id: {name: value}}``."""
    out = {d.id: d.params() for d in registered().values()}
    if path is None:
        return out
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:  # one line: YAML's own message spans several
        raise DetectorConfigError(f"{path}: cannot read: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise DetectorConfigError(f"{path}: expected a mapping of detector ids to parameters")
    for det_id, overrides in data.items():
        if det_id not in out:
            raise DetectorConfigError(
                f"{path}: unknown detector {det_id!r}; known: {', '.join(sorted(out))}"
            )
        if not isinstance(overrides, dict):
            raise DetectorConfigError(f"{path}: {det_id}: expected a mapping of parameter names")
        known = {f.name: f for f in fields(out[det_id])}
        for name, value in list(overrides.items()):
            if isinstance(getattr(out[det_id], name, None), tuple) and isinstance(value, list):
                # YAML has lists; frozen parameters hold tuples.
                value = overrides[name] = tuple(value)
            if name not in known:
                raise DetectorConfigError(
                    f"{path}: {det_id}: unknown parameter {name!r}; known: {', '.join(sorted(known))}"
                )
            default = getattr(out[det_id], name)
            if isinstance(default, bool) != isinstance(value, bool) or not isinstance(
                value, (type(default), int) if isinstance(default, float) else type(default)
            ):
                raise DetectorConfigError(
                    f"{path}: {det_id}.{name}: expected {type(default).__name__}, got {value!r}"
                )
        try:
            out[det_id] = dataclasses.replace(out[det_id], **overrides)
        except (TypeError, ValueError) as exc:
            raise DetectorConfigError(f"{path}: {det_id}: {exc}") from exc
    return out


def alerts(
    frame: pl.LazyFrame,
    *,
    detector_id: str,
    techniques: tuple[str, ...] | pl.Expr,
    severity: str | pl.Expr,
    confidence: float | pl.Expr,
    summary: pl.Expr,
    src: pl.Expr | None,
    dst: pl.Expr | None,
    first_seen: pl.Expr,
    last_seen: pl.Expr,
    count: pl.Expr,
    evidence_table: str,
    evidence: pl.Expr,
    key: pl.Expr,
    domains: pl.Expr | None = None,
) -> pl.LazyFrame:
    """Rows of the alerts schema from a frame of findings (one row per alert).

    ``techniques`` may be an expression (a list column) when one detector reports several vectors.
    """
    if isinstance(severity, str) and severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} not in {SEVERITIES}")
    sev = pl.lit(severity) if isinstance(severity, str) else severity
    conf = pl.lit(float(confidence)) if isinstance(confidence, (int, float)) else confidence
    return frame.select(
        ts=first_seen,
        detector=pl.lit(detector_id),
        techniques=techniques
        if isinstance(techniques, pl.Expr)
        else pl.lit(list(techniques), dtype=pl.List(pl.String)),
        severity=sev,
        # Six decimals: aggregation order may vary between runs; the last bit must not.
        confidence=conf.cast(pl.Float64).clip(0.0, 1.0).round(6),
        summary=summary,
        src=src if src is not None else pl.lit(None, pl.String),
        dst=dst if dst is not None else pl.lit(None, pl.String),
        domains=domains.list.drop_nulls().list.unique().list.sort()
        if domains is not None
        else pl.lit([], dtype=pl.List(pl.String)),
        first_seen=first_seen,
        last_seen=last_seen,
        count=count.cast(pl.Int64),
        evidence_table=pl.lit(evidence_table),
        evidence=evidence.list.head(EVIDENCE_MAX),
        key=pl.lit(f"{detector_id}|") + key,
    )


ALERT_COLUMNS: tuple[str, ...] = (
    "ts", "detector", "techniques", "severity", "confidence", "summary", "src", "dst", "domains",
    "first_seen", "last_seen", "count", "evidence_table", "evidence", "key",
)  # fmt: skip


def empty_alerts() -> pl.DataFrame:
    from mamori.schema.alerts import SCHEMA

    return pl.from_arrow(SCHEMA.empty_table())  # type: ignore[return-value]
