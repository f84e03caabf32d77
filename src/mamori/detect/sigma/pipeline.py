"""Where a Sigma rule's events are in the lake: logsources and field names, kept as data.

Sigma rules name abstract log sources (``category: process_creation``, ``service: security``) and
the field names of the product that logged them. Which lake table holds those events, which rows
of it (a channel, event ids), and what a field is called there differ per deployment, so they live
in YAML files (``pipelines/*.yml``, documented in docs/sigma.md) that a user can extend with their
own, not in code. A rule's logsource matches a source when product, category and service are all
equal (a missing one is equal only to a missing one); several sources may match one logsource
(process creation is both Sysmon event 1 and Security 4688) and the rule runs over each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

LogsourceKey = tuple[str | None, str | None, str | None]  # product, category, service


DECODERS = ("struct", "path", "xml", "kv")


class PipelineError(ValueError):
    """A pipeline file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class TableView:
    """How rules see one lake table."""

    name: str
    columns: Mapping[str, str]  # Sigma field name -> typed column
    data: str | None  # JSON column holding every other field
    # "struct": one json_decode (all values text) | "path": one JSON path per field | "xml":
    # <Data Name="F"> or <F> elements of an event rendered as XML (Sysmon for Linux in syslog) |
    # "kv": F=value / F="value" pairs (auditd records)
    decode: str
    text: str | None  # the column keyword searches look at
    src: tuple[str, ...]
    dst: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    """Rows of one table that hold one logsource's events, and that source's field names."""

    id: str
    logsource: LogsourceKey
    table: TableView
    where: Mapping[str, tuple[Any, ...]]  # column -> allowed values
    fields: Mapping[str, str]  # Sigma field name -> the name in this source
    detection: Mapping[str, tuple[str, ...]]  # extra field conditions (Sigma equality)


@dataclass(frozen=True)
class Pipeline:
    tables: Mapping[str, TableView]
    sources: tuple[Source, ...]
    by_logsource: Mapping[LogsourceKey, tuple[Source, ...]] = field(default_factory=dict)

    def sources_for(self, key: LogsourceKey) -> tuple[Source, ...]:
        return self.by_logsource.get(key, ())


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def _tables(data: Any, where: str) -> dict[str, TableView]:
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise PipelineError(f"{where}: expected a mapping 'tables'")
    out = {}
    for name, spec in data["tables"].items():
        if not isinstance(spec, dict):
            raise PipelineError(f"{where}: table {name!r}: expected a mapping")
        decode = spec.get("decode", "struct")
        if decode not in DECODERS:
            raise PipelineError(f"{where}: table {name!r}: decode must be one of {DECODERS}")
        out[name] = TableView(
            name=name,
            columns={str(k): str(v) for k, v in (spec.get("columns") or {}).items()},
            data=spec.get("data"),
            decode=decode,
            text=spec.get("text"),
            src=tuple(spec.get("src") or ()),
            dst=tuple(spec.get("dst") or ()),
        )
    return out


def _sources(data: Any, where: str, tables: Mapping[str, TableView]) -> list[Source]:
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise PipelineError(f"{where}: expected a list 'sources'")
    out = []
    for n, spec in enumerate(data["sources"], 1):
        at = f"{where}: source {n}"
        if not isinstance(spec, dict) or not isinstance(spec.get("logsource"), dict):
            raise PipelineError(f"{at}: expected a mapping with 'logsource'")
        ls = spec["logsource"]
        unknown = set(ls) - {"product", "category", "service"}
        if unknown:
            raise PipelineError(f"{at}: unknown logsource keys {sorted(unknown)}")
        table = spec.get("table")
        if table not in tables:
            raise PipelineError(f"{at}: unknown table {table!r}; known: {', '.join(tables)}")
        key: LogsourceKey = (ls.get("product"), ls.get("category"), ls.get("service"))
        view = tables[table]
        if "data" in spec or "decode" in spec:  # this source's events carry their fields otherwise
            decode = spec.get("decode", view.decode)
            if decode not in DECODERS:
                raise PipelineError(f"{at}: decode must be one of {DECODERS}")
            view = replace(view, data=spec.get("data", view.data), decode=decode)
        out.append(
            Source(
                id=f"{data.get('name', where)}:{n}:{'/'.join(k or '-' for k in key)}",
                logsource=key,
                table=view,
                where={str(k): _tuple(v) for k, v in (spec.get("where") or {}).items()},
                fields={str(k): str(v) for k, v in (spec.get("fields") or {}).items()},
                detection={
                    str(k): tuple(str(x) for x in _tuple(v))
                    for k, v in (spec.get("detection") or {}).items()
                },
            )
        )
    return out


def _read(path: Path | Any) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise PipelineError(f"{path}: cannot read: {exc}") from exc


def load_pipeline(extra: Iterable[Path] = ()) -> Pipeline:
    """The built-in pipelines (``tables.yml`` and every other file of ``pipelines/``), then
    ``extra`` files, whose sources are added (a user's own channels or datasets)."""
    extra = tuple(extra)
    return _load(extra) if extra else _builtin()


@lru_cache(maxsize=1)
def _builtin() -> Pipeline:
    return _load(())


def _load(extra: tuple[Path, ...]) -> Pipeline:
    folder = resources.files("mamori.detect.sigma") / "pipelines"
    tables = _tables(_read(folder / "tables.yml"), "pipelines/tables.yml")
    files: list[tuple[str, Any]] = [
        (f"pipelines/{f.name}", f)
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".yml") and f.name != "tables.yml"
    ]
    files += [(str(p), p) for p in extra]
    sources: list[Source] = []
    for where, f in files:
        data = _read(f)
        if isinstance(data, dict) and "tables" in data:
            tables = {**tables, **_tables(data, where)}
        if isinstance(data, dict) and "sources" in data:
            sources += _sources(data, where, tables)
    index: dict[LogsourceKey, list[Source]] = {}
    for s in sources:
        index.setdefault(s.logsource, []).append(s)
    return Pipeline(tables, tuple(sources), {k: tuple(v) for k, v in index.items()})
