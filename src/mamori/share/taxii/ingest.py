"""What enters a TAXII collection: validated, given its TLP and provenance, and (from partners)
imported into intel.

Why references are kept: a relationship or report that points at a RED or unmarked object would
reveal that object's id (and mamori's ids are derived from content), so storage keeps what each
object reaches and serves it only when all of that may go to the same reader, the rule
:func:`mamori.share.tlp.filter_objects` applies to bundles.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mamori.share.taxii.storage import Item
from mamori.share.tlp import (
    Tlp,
    bundle_markings,
    marking_definition,
    marking_definition_tlp,
    tlp_of,
)

log = logging.getLogger(__name__)

UNMARKED = "unmarked"
RANK = {"clear": 0, "green": 1, "amber": 2, "amber+strict": 3, "red": 4, UNMARKED: 5}
_SKIP_REFS = ("object_marking_refs", "created_by_ref")


def validate(obj: object) -> str | None:
    """None when the object is valid STIX 2.1 for stix2-validator, else its error messages."""
    from stix2validator import ValidationOptions, validate_instance

    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return "not a STIX object (no 'id')"
    spec = obj.get("spec_version")
    if spec is not None and spec != "2.1":
        return f"spec_version {spec!r}: this server stores STIX 2.1 only"
    try:
        result = validate_instance(obj, ValidationOptions(version="2.1"))
    except Exception as exc:  # the validator raises on shapes its schemas do not expect
        return f"stix2-validator: {exc}"
    if result.is_valid:
        return None
    return "; ".join(str(e) for e in result.errors) or "invalid STIX 2.1"


def _refs(obj: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in obj.items():
        if key in _SKIP_REFS:
            continue
        if key.endswith("_ref") and isinstance(value, str):
            out.append(value)
        elif key.endswith("_refs") and isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def own_tlp(obj: dict[str, Any], markings: dict[str, Tlp]) -> str:
    """The object's own TLP label; TLP marking-definitions are public (CLEAR) by nature."""
    if marking_definition_tlp(obj) is not None:
        return "clear"
    level = tlp_of(obj, markings)
    return level.label if level is not None else UNMARKED


def mark(obj: dict[str, Any], level: Tlp) -> dict[str, Any]:
    """The object with a TLP 2.0 marking added when it carries none (our own publishing only)."""
    if obj.get("type") == "marking-definition" or tlp_of(obj) is not None:
        return obj
    return {
        **obj,
        "object_marking_refs": [*(obj.get("object_marking_refs") or []), level.marking_id],
    }


def items_for(
    conn: sa.Connection,
    collection_id: str,
    objects: Sequence[dict[str, Any]],
    provenance: str,
    audience: Sequence[str] = (),
) -> list[Item]:
    """Storage items for already-validated objects: their own TLP (markings of the batch read
    too) and the ids they refer to, from which storage keeps the closure that gates serving."""
    markings = bundle_markings(objects)
    return [
        Item(
            obj=o,
            tlp=own_tlp(o, markings),
            provenance=provenance,
            audience=tuple(audience),
            refs=tuple(_refs(o)),
        )
        for o in objects
    ]


def share_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mamori" / "share"


@dataclass(frozen=True)
class IntelImport:
    path: Path
    indicators: int
    skipped: int


def to_intel(
    partner: str, objects: Sequence[dict[str, Any]], intel_store: Path, tag: str
) -> IntelImport | None:
    """Import a partner's objects into intel with provenance ``taxii:PARTNER``.

    The objects are kept as a bundle file in the share inbox (the intel row's ``source_file``),
    so an analyst can always see exactly what the partner sent. Unmarked objects enter intel as
    AMBER: not judged shareable by their sender, so not shared further by us.
    """
    from mamori.intel.store import import_files

    if not any(o.get("type") == "indicator" for o in objects):
        return None
    inbox = share_dir() / "inbox" / partner
    inbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = inbox / f"{stamp}-{tag}.json"
    bundle = {"type": "bundle", "id": f"bundle--{tag}", "objects": list(objects)}
    path.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    summaries = import_files([path], intel_store, tlp="amber", source=f"taxii:{partner}")
    s = summaries[0]
    return IntelImport(path, s.indicators, s.skipped)


def tlp_markings(levels: Sequence[Tlp]) -> list[dict[str, Any]]:
    return [marking_definition(lv) for lv in levels]


@dataclass(frozen=True)
class Published:
    collection_id: str
    added: int
    already: int
    rejected: list[tuple[str, str]]  # (object id, validator message)


def publish(
    store: Any,
    collection: str,
    objects: Sequence[dict[str, Any]],
    default_tlp: Tlp | None = None,
    named: Sequence[str] = (),
) -> Published:
    """Put our own objects into a collection (created when absent) for partners to read.

    ``default_tlp`` marks objects that carry no TLP (without it they stay unmarked and never
    leave); ``named`` are the partners an AMBER object of this batch may go to.
    """
    from mamori.share.partners import ensure_collection
    from mamori.share.taxii import storage

    good: list[dict[str, Any]] = []
    rejected: list[tuple[str, str]] = []
    for obj in objects:
        if default_tlp is not None and isinstance(obj, dict):
            obj = mark(obj, default_tlp)
        problem = validate(obj)
        if problem is None:
            good.append(obj)
        else:
            rejected.append((str(obj.get("id") if isinstance(obj, dict) else obj), problem))
    with store.begin() as conn:
        cid = ensure_collection(conn, collection)
        outcomes = storage.add(conn, cid, items_for(conn, cid, good, "local", named))
    added = sum(o.added for o in outcomes)
    return Published(cid, added, len(outcomes) - added, rejected)
