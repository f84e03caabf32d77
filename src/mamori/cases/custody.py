"""Custody after sealing: every later hand that holds a package adds its line to the log.

A package's ``custody.jsonl`` is sealed into the manifest at build time (the manifest pins its
head); what happens to the package afterwards (handed to the police, received, verified, copied
to a court's store) is appended after that head, chained to it, so an examiner sees one unbroken
history from the case's opening to the present. Appending refuses a log that is already broken:
adding to it would make a damaged history look continued.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from mamori.cases.case import now, operator
from mamori.cases.evidence import CUSTODY, MANIFEST
from mamori.hashchain import canonical, link
from mamori.hashchain import verify as verify_chain


class CustodyError(Exception):
    """The custody log could not be read or extended; the message names the file and why."""


class Action(StrEnum):
    transfer = "transfer"  # handed to someone (detail: to)
    receive = "receive"  # taken over from someone (detail: from)
    verify = "verify"  # checked with `mamori evidence verify`
    copy = "copy"  # a working copy was made
    store = "store"  # put into a store or archive
    note = "note"


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CustodyError(f"{where}: not UTF-8 text at byte {exc.start}") from None


def _entries(text: str, where: str) -> list[dict[str, Any]]:
    items = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for n, line in enumerate(lines):
        try:
            item = json.loads(line)
            items.append({"body": dict(item["body"]), "prev": item["prev"], "hash": item["hash"]})
        except (ValueError, KeyError, TypeError):
            raise CustodyError(f"{where}: entry {n} is not a custody record") from None
    broken = verify_chain((i["body"], i["prev"], i["hash"]) for i in items)
    if broken is not None:
        raise CustodyError(f"{where}: {broken.reason}; not appending to a broken log")
    if not items:
        raise CustodyError(f"{where}: empty custody log")
    return items


def _entry(last: dict[str, Any], action: Action, detail: dict[str, Any], actor: str) -> str:
    body = {
        "case": last["body"].get("case"),
        "at": now().isoformat(),
        "actor": actor,
        "action": f"custody.{action.value}",
        "detail": detail,
    }
    body = json.loads(canonical(body))
    return json.dumps(
        {"body": body, "prev": last["hash"], "hash": link(last["hash"], body)}, ensure_ascii=False
    )


def append(
    package: Path, action: Action, detail: dict[str, Any], *, actor: str | None = None
) -> dict[str, Any]:
    """Append one custody entry to a package folder and its zip beside it, or to a zip alone.

    Returns the new entry's body."""
    actor = actor or operator()
    if package.is_dir():
        log = package / CUSTODY
        if not log.is_file() or not (package / MANIFEST).is_file():
            raise CustodyError(f"{package}: not an evidence package (no {CUSTODY} or manifest)")
        items = _entries(_text(log.read_bytes(), str(log)), str(log))
        line = _entry(items[-1], action, detail, actor)
        with log.open("a") as fh:
            fh.write(line + "\n")
        beside = package.with_name(package.name + ".zip")
        if beside.is_file():
            _replace_member(beside, CUSTODY, log.read_bytes())
        return json.loads(line)["body"]
    if package.is_file() and zipfile.is_zipfile(package):
        with zipfile.ZipFile(package) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == CUSTODY]
            if len(names) != 1:
                raise CustodyError(f"{package}: not an evidence package (no {CUSTODY})")
            text = _text(zf.read(names[0]), f"{package}:{names[0]}")
        items = _entries(text, f"{package}:{names[0]}")
        line = _entry(items[-1], action, detail, actor)
        _replace_member(package, CUSTODY, (text + line + "\n").encode())
        return json.loads(line)["body"]
    raise CustodyError(f"{package}: not a package folder or zip")


def _replace_member(zip_path: Path, name: str, data: bytes) -> None:
    """Rewrite a zip with one member's content replaced (written aside, renamed into place)."""
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            content = data if item.filename.rsplit("/", 1)[-1] == name else src.read(item)
            dst.writestr(item, content)
    shutil.move(tmp, zip_path)
