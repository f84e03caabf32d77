"""Build an evidence package for a case: original packets, records, intel, manifest, custody, signature.

The package is a folder (and its zip) that a court's expert can check without trusting mamori:

- ``packets/*.pcap`` — the original capture records of the case's connections, cut byte for byte
  from each source capture (mamori.cases.cut);
- ``records/*.jsonl`` — the lake rows of those connections (conn, dns, http, ssl, …) and of the
  log records the alerts cite (winevt, syslog, auth, honeypot, …), the alerts that named them and
  the incidents as the patrol reported them;
- ``logs/*`` — each original log file a cited log record came from, copied byte for byte (a log
  record is only as good as the file it can be checked against); the manifest lists the record
  numbers cited in each;
- ``intel/matches.jsonl`` — the indicators from the intel store those records match, with the
  record and field that matched;
- ``case.json`` — the case: who owns it, its notes and linked decisions, where it came from;
- ``SHA256SUMS`` — the same hashes for ``sha256sum -c``;
- ``manifest.json`` — every file's SHA-256 and size, its source file and that source's own SHA-256,
  acquisition time, tool version, and the head of the custody log at sealing;
- ``manifest.sig`` and ``public-key.pem`` — an Ed25519 signature over ``manifest.json`` with the
  operator's key (mamori.cases.keys), and the key to check it;
- ``custody.jsonl`` — who did what when, hash-chained (mamori.hashchain): the case's history from
  its opening, the acquisition of each source, the packaging and the sealing.

``mamori evidence verify`` (mamori.cases.verify) checks all of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mamori import __version__
from mamori.cases import keys
from mamori.cases.case import (
    Case,
    CaseError,
    case_events,
    get_case,
    now,
    operator,
    record_event,
    sha256_file,
)
from mamori.cases.cut import CutError, cut_capture
from mamori.cases.tables import evidence_packages
from mamori.config import Settings
from mamori.sensors.inputs import CAPTURE, kind_of
from mamori.store import Store

MANIFEST_SCHEMA = "mamori.evidence.manifest/1"
RECORD_TABLES = ("conn", "dns", "http", "ssl", "ssh", "ftp", "smtp")
# Log tables: rows name their original ``file`` and ``record`` (line or EVTX record number).
LOG_RECORD_TABLES = ("winevt", "syslog", "auth", "honeypot", "jsonlog", "eve_alert")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public-key.pem"
CUSTODY = "custody.jsonl"
SUMS = "SHA256SUMS"
# Files the manifest cannot list: itself, its signature, and the custody log (which keeps growing
# after sealing; the manifest pins its head instead).
UNLISTED = (MANIFEST, SIGNATURE, CUSTODY)


class EvidenceError(Exception):
    """A package could not be built; the message names the case or file and why."""


@dataclass(frozen=True)
class Built:
    case_id: str
    folder: Path
    zip_path: Path
    manifest_sha256: str
    key_fingerprint: str
    files: int
    packets: int
    connections: int
    missing: list[str]


def case_uids(case: Case) -> list[str]:
    """The connections the case's alerts name as evidence (conn uids, in every table)."""
    seen: dict[str, None] = {}
    for inc in case.incidents:
        for alert in inc.get("alerts", []):
            ev = alert.get("evidence") or {}
            for uid in ev.get("uids", []) if isinstance(ev, dict) else []:
                seen[str(uid)] = None
    return list(seen)


def _capped(case: Case) -> list[dict[str, Any]]:
    """Alerts whose records outnumber the uids the report kept for them (at most 50 each): the
    package holds only the named connections, and says so."""
    out = []
    for inc in case.incidents:
        for alert in inc.get("alerts", []):
            ev = alert.get("evidence") or {}
            named = len(ev.get("uids", [])) if isinstance(ev, dict) else 0
            count = alert.get("count")
            if isinstance(count, int) and count > named:
                out.append(
                    {
                        "incident": inc.get("id"),
                        "detector": alert.get("detector"),
                        "records": count,
                        "named": named,
                        "table": ev.get("table") if isinstance(ev, dict) else None,
                    }
                )
    return out


def _frames(lake: Path | None) -> dict[str, pl.LazyFrame]:
    from mamori.detect.engine import lake_frames

    if lake is None or not lake.is_dir():
        return {}
    return lake_frames(lake, (*RECORD_TABLES, *LOG_RECORD_TABLES, "alerts"))


def _log_records(frames: dict[str, pl.LazyFrame], wanted: list[str]) -> dict[str, pl.DataFrame]:
    """The cited rows of each log table, and the rows ``auth`` records were normalised from."""
    found: dict[str, pl.DataFrame] = {}
    for table in LOG_RECORD_TABLES:
        rows = frames[table].filter(pl.col("uid").is_in(wanted)).collect()
        if rows.height:
            found[table] = rows
    if "auth" in found:
        # An auth row stands for a syslog line or a Windows event: cite that original too.
        for table, uids in found["auth"].group_by("source").agg(pl.col("source_uid")).iter_rows():
            if table in frames and table != "auth":
                rows = frames[table].filter(pl.col("uid").is_in(uids)).collect()
                if table in found:
                    rows = pl.concat([found[table], rows]).unique("uid")
                found[table] = rows
    return {t: f.sort("ts", "uid") for t, f in found.items() if f.height}


def _acquire(store: Store, case: Case, path: Path, actor: str) -> tuple[Any, str, int]:
    """Hash a source file and enter its acquisition in the case's custody log."""
    acquired = now()
    digest = sha256_file(path)
    size = path.stat().st_size
    record_event(
        store,
        case.id,
        "evidence.acquire",
        {"source": str(path), "sha256": digest, "size": size},
        actor=actor,
        at=acquired,
    )
    return acquired, digest, size


def _resolve_source(source: str, case: Case) -> Path:
    """The capture a lake record came from: as recorded, else beside the report, else by name
    among the report's inputs."""
    path = Path(source)
    candidates = [path, Path(case.report_path).parent / path]
    candidates += [Path(c) for c in case.captures if Path(c).name == path.name]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise EvidenceError(f"source file {source} not found (moved? it must be readable here)")


def _write_jsonl(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_ndjson(path)


def build(
    store: Store,
    case_id: str,
    out: Path,
    *,
    key_path: Path | None = None,
    intel_store: Path | None = None,
    settings: Settings | None = None,
    actor: str | None = None,
) -> Built:
    """Build, sign and zip the evidence package of a case into ``out`` (a new or empty folder)."""
    try:
        case = get_case(store, case_id)
    except CaseError as exc:
        raise EvidenceError(str(exc)) from None
    try:
        signing_key = keys.load_private(key_path)  # fail before any work if the key is unusable
    except keys.KeyStoreError as exc:
        raise EvidenceError(str(exc)) from None
    if out.exists() and any(out.iterdir()):
        raise EvidenceError(f"{out}: folder exists and is not empty")
    actor = actor or operator()
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    try:
        return _build(store, case, out, signing_key, intel_store, settings, actor)
    except BaseException:
        # Half a package must not pass for one: what was written goes (the custody entries of
        # sources already acquired stay in the case's history; they happened).
        shutil.rmtree(out, ignore_errors=True)
        raise


def _build(
    store: Store,
    case: Case,
    out: Path,
    signing_key: Ed25519PrivateKey,
    intel_store: Path | None,
    settings: Settings | None,
    actor: str,
) -> Built:
    uids = case_uids(case)
    frames = _frames(Path(case.lake_path) if case.lake_path else None)
    if not frames:
        raise EvidenceError(
            f"{case.id}: the patrol's lake is not available ({case.lake_path or 'not recorded'})"
        )
    files: list[dict[str, Any]] = []

    def add(rel: str, description: str, **extra: Any) -> None:
        p = out / rel
        files.append(
            {
                "path": rel,
                "sha256": sha256_file(p),
                "size": p.stat().st_size,
                "description": description,
                **extra,
            }
        )

    # --- records ------------------------------------------------------------------------------
    wanted = list(uids)
    records: dict[str, pl.DataFrame] = {}
    for table in RECORD_TABLES:
        rows = frames[table].filter(pl.col("uid").is_in(wanted)).collect().sort("ts", "uid")
        records[table] = rows
    conn = records["conn"]
    logs = _log_records(frames, wanted)
    found = set(conn["uid"].to_list()).union(*(set(f["uid"].to_list()) for f in logs.values()))
    missing = sorted(set(uids) - found)

    # --- sources: acquire (hash) and cut ------------------------------------------------------
    sources: list[dict[str, Any]] = []
    packets_total = 0
    per_conn: list[pl.DataFrame] = []
    # Connections read from Zeek logs or Suricata EVE name their log file and line: those files
    # are evidence to copy whole (below), not captures to cut.
    from_logs = [
        source
        for source in conn["source"].unique().to_list()
        if kind_of(_resolve_source(source, case)) not in (CAPTURE, None)
    ]
    logged = conn.filter(pl.col("source").is_in(from_logs))
    if logged.height:
        lines = logged.select(file="source", record="first_record").with_columns(
            pl.col("record").cast(pl.Int64)
        )
        logs["conn"] = logged.with_columns(file=pl.col("source"), record=lines["record"])
    for n, source in enumerate(
        sorted(set(conn["source"].unique().to_list()) - set(from_logs)), start=1
    ):
        path = _resolve_source(source, case)
        acquired, digest, size = _acquire(store, case, path, actor)
        rel = f"packets/{n:02d}-{path.name.removesuffix('.gz').rsplit('.', 1)[0]}.pcap"
        conns = conn.filter(pl.col("source") == source)
        try:
            cut = cut_capture(path, conns, out / rel, settings)
        except CutError as exc:
            raise EvidenceError(str(exc)) from None
        if cut.format == "pcapng":
            (out / rel).rename(out / (rel + "ng"))
            rel += "ng"
        packets_total += cut.packets
        src = {
            "path": str(path),
            "recorded_as": source,
            "sha256": digest,
            "size": size,
            "format": cut.format,
            "acquired": acquired.isoformat(),
        }
        sources.append(src)
        add(
            rel,
            f"original packets of {conns.height} connection(s), copied unchanged",
            source=str(path),
            source_sha256=digest,
            acquired=acquired.isoformat(),
            packets=cut.packets,
        )
        per_conn.append(
            conns.select(
                "uid",
                pl.lit(str(path)).alias("source"),
                "first_record",
                "last_record",
                (pl.col("orig_pkts") + pl.col("resp_pkts")).cast(pl.Int64).alias("expected"),
            )
            .join(cut.per_uid.drop("first_record", "last_record"), on="uid", how="left")
            .with_columns(pl.col("packets", "fragments").fill_null(0).cast(pl.Int64))
        )
    connections = pl.concat(per_conn) if per_conn else pl.DataFrame()

    # --- original log files: acquire (hash) and copy whole -----------------------------------
    cited = (
        pl.concat([f.select("file", pl.col("record").cast(pl.Int64)) for f in logs.values()])
        if logs
        else None
    )
    logs.pop("conn", None)  # its rows are already among the records
    for n, source in enumerate(
        sorted(cited["file"].unique().to_list()) if cited is not None else [], 1
    ):
        path = _resolve_source(source, case)
        acquired, digest, size = _acquire(store, case, path, actor)
        rel = f"logs/{n:02d}-{path.name}"
        (out / "logs").mkdir(exist_ok=True)
        shutil.copyfile(path, out / rel)
        if sha256_file(out / rel) != digest:
            raise EvidenceError(f"{path}: changed while it was being copied")
        numbers = sorted(set(cited.filter(pl.col("file") == source)["record"].to_list()))  # type: ignore[union-attr]
        sources.append(
            {
                "path": str(path),
                "recorded_as": source,
                "sha256": digest,
                "size": size,
                "format": "log",
                "acquired": acquired.isoformat(),
            }
        )
        add(
            rel,
            f"original log file, copied unchanged; the case cites {len(numbers)} of its records",
            source=str(path),
            source_sha256=digest,
            acquired=acquired.isoformat(),
            records=numbers,
        )
    records.update(logs)

    acquired_records = now().isoformat()
    for table, rows in records.items():
        if rows.height:
            _write_jsonl(rows, out / "records" / f"{table}.jsonl")
            add(
                f"records/{table}.jsonl",
                f"{rows.height} {table} record(s) the case's alerts cite",
                source=case.lake_path,
                acquired=acquired_records,
            )
    alerts = (
        frames["alerts"]
        .filter(pl.col("evidence").list.eval(pl.element().is_in(wanted)).list.any())
        .collect()
        .sort("ts")
    )
    if alerts.height:
        _write_jsonl(alerts, out / "records" / "alerts.jsonl")
        add(
            "records/alerts.jsonl",
            f"{alerts.height} alert(s) naming these connections",
            source=case.lake_path,
            acquired=acquired_records,
        )
    (out / "records" / "incidents.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "records" / "incidents.json").write_text(json.dumps(case.incidents, indent=2))
    add(
        "records/incidents.json",
        "the case's incidents as the patrol reported them",
        source=case.report_path,
        source_sha256=case.report_sha256,
        acquired=case.opened_at.isoformat(),
    )

    # --- intel ----------------------------------------------------------------------------------
    matches = _intel_matches(records, intel_store)
    if matches is not None and matches.height:
        _write_jsonl(matches, out / "intel" / "matches.jsonl")
        add(
            "intel/matches.jsonl",
            f"{matches.height} match(es) of the records against stored threat intelligence",
            source=str(matches["source_file"][0]) if "source_file" in matches.columns else None,
            acquired=now().isoformat(),
        )

    # --- case, key ----------------------------------------------------------------------------
    (out / "case.json").write_text(json.dumps(_case_json(case), indent=2))
    add("case.json", "the case: owner, status, notes, linked decisions, origin")
    public = signing_key.public_key()
    (out / PUBLIC_KEY).write_bytes(keys.public_pem(public))
    add(PUBLIC_KEY, "the public key that checks manifest.sig")
    fingerprint = keys.fingerprint(public)
    # The same hashes in coreutils' format: `sha256sum -c SHA256SUMS` checks them without mamori.
    (out / SUMS).write_text("".join(f"{f['sha256']}  {f['path']}\n" for f in files))
    add(SUMS, "the files' SHA-256 in sha256sum format")

    # --- custody, manifest, signature ---------------------------------------------------------
    record_event(
        store,
        case.id,
        "evidence.package",
        {"folder": str(out), "files": {f["path"]: f["sha256"] for f in files}},
        actor=actor,
    )
    events = case_events(store, case.id)
    created = now()
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "case": {"id": case.id, "title": case.title, "owner": case.owner},
        "created": created.isoformat(),
        "created_by": actor,
        "tool": {"name": "mamori", "version": __version__},
        "signature": {"algorithm": "Ed25519", "key_fingerprint": fingerprint, "file": SIGNATURE},
        "report": {"path": case.report_path, "sha256": case.report_sha256},
        "sources": sources,
        "files": files,
        "connections": connections.to_dicts(),
        "connections_missing": missing,
        "alerts_with_more_records": _capped(case),
        "custody": {"file": CUSTODY, "entries": len(events), "head": events[-1].hash},
    }
    manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"
    (out / MANIFEST).write_bytes(manifest_bytes)
    (out / SIGNATURE).write_text(keys.sign(signing_key, manifest_bytes) + "\n")
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()
    zip_path = out.with_name(out.name + ".zip")
    seal = record_event(
        store,
        case.id,
        "evidence.seal",
        {
            "manifest_sha256": manifest_sha,
            "key_fingerprint": fingerprint,
            "zip": str(zip_path),
        },
        actor=actor,
    )
    _write_custody(out / CUSTODY, [*events, seal])
    _zip(out, zip_path)
    with store.begin() as conn_:
        conn_.execute(
            evidence_packages.insert().values(
                case_id=case.id,
                path=str(out),
                zip_path=str(zip_path),
                built_at=created,
                built_by=actor,
                manifest_sha256=manifest_sha,
                key_fingerprint=fingerprint,
                manifest=manifest,
            )
        )
    return Built(
        case.id,
        out,
        zip_path,
        manifest_sha,
        fingerprint,
        len(files),
        packets_total,
        connections.height,
        missing,
    )


def _intel_matches(
    records: dict[str, pl.DataFrame], intel_store: Path | None
) -> pl.DataFrame | None:
    """Indicators of the intel store the case's records match, one row per (record, indicator)."""
    from mamori.intel.match import match
    from mamori.intel.schema import default_store
    from mamori.intel.store import read

    indicators = read(intel_store or default_store())
    if indicators.height == 0:
        return None
    frames = {t: records[t].lazy() for t in ("conn", "dns", "http", "ssl")}
    hits = match(indicators, frames)
    if hits.height == 0:
        return None
    return hits.join(indicators, left_on="indicator", right_on="id", how="left").sort("ts")


def _case_json(case: Case) -> dict[str, Any]:
    return case.record() | {
        "incidents": case.incident_ids,
        "decisions": [
            {"id": d.decision_id, "linked_at": d.linked_at.isoformat(), "linked_by": d.linked_by}
            for d in case.decisions
        ],
    }


def _write_custody(path: Path, events: list) -> None:  # type: ignore[type-arg]
    with path.open("w") as fh:
        for e in events:
            fh.write(
                json.dumps({"body": e.body, "prev": e.prev, "hash": e.hash}, ensure_ascii=False)
                + "\n"
            )


def _zip(folder: Path, zip_path: Path) -> None:
    """The folder as one zip (members under the folder's name), written then renamed into place."""
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    shutil.move(tmp, zip_path)
