"""Check an evidence package (folder or zip): signature, every file's hash, the custody chain.

Each failure is reported on its own, naming the file (and for the custody log the entry) and what
is wrong, so a reader learns *what* was changed, not only *that* something was. Verification needs
nothing but the package (and, to know *who* signed, the operator's published key fingerprint or
public key: a package signed by an impostor verifies against the impostor's own key).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamori.cases import keys
from mamori.cases.evidence import CUSTODY, MANIFEST, PUBLIC_KEY, SIGNATURE, UNLISTED
from mamori.hashchain import verify as verify_chain


@dataclass(frozen=True)
class Problem:
    what: str  # "signature", "file", "custody", "manifest"
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Verdict:
    package: str
    problems: list[Problem] = field(default_factory=list)
    case: str | None = None
    files: int = 0
    key_fingerprint: str | None = None
    custody_entries: int = 0
    after_seal: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    package: Path, *, public_key: Path | None = None, fingerprint: str | None = None
) -> Verdict:
    """Verify a package folder or its zip; optionally pin the signer's key (file or fingerprint)."""
    if package.is_file() and zipfile.is_zipfile(package):
        with tempfile.TemporaryDirectory() as tmp:
            with zipfile.ZipFile(package) as zf:
                tops = {n.split("/", 1)[0] for n in zf.namelist()}
                for name in zf.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        return Verdict(str(package), [Problem("zip", name, "unsafe member path")])
                zf.extractall(tmp)
            root = Path(tmp) / tops.pop() if len(tops) == 1 else Path(tmp)
            verdict = _verify_folder(root, public_key, fingerprint)
            verdict.package = str(package)
            return verdict
    if not package.is_dir():
        return Verdict(str(package), [Problem("manifest", str(package), "not a folder or zip")])
    return _verify_folder(package, public_key, fingerprint)


def _verify_folder(root: Path, public_key: Path | None, fingerprint: str | None) -> Verdict:
    v = Verdict(str(root))
    try:
        manifest_bytes = (root / MANIFEST).read_bytes()
        manifest = json.loads(manifest_bytes)
    except FileNotFoundError:
        v.problems.append(Problem("manifest", MANIFEST, "missing"))
        return v
    except ValueError as exc:
        v.problems.append(Problem("manifest", MANIFEST, f"not valid JSON ({exc})"))
        manifest_bytes, manifest = b"", {}
    v.case = (manifest.get("case") or {}).get("id")
    _check_signature(root, manifest_bytes, manifest, public_key, fingerprint, v)
    _check_files(root, manifest, v)
    _check_custody(root, manifest, v)
    return v


def _check_signature(
    root: Path,
    data: bytes,
    manifest: dict[str, Any],
    public_key: Path | None,
    fingerprint: str | None,
    v: Verdict,
) -> None:
    try:
        signature = (root / SIGNATURE).read_bytes().decode("ascii")
    except FileNotFoundError:
        v.problems.append(Problem("signature", SIGNATURE, "missing: the manifest is not signed"))
        return
    except UnicodeDecodeError:
        signature = ""  # not base64 at all: fails the check below with the usual message
    try:
        key = keys.load_public(public_key or root / PUBLIC_KEY)
    except keys.KeyStoreError as exc:
        v.problems.append(Problem("signature", PUBLIC_KEY, str(exc).split(": ", 1)[-1]))
        return
    v.key_fingerprint = keys.fingerprint(key)
    stated = (manifest.get("signature") or {}).get("key_fingerprint")
    if stated and stated != v.key_fingerprint:
        v.problems.append(
            Problem(
                "signature",
                PUBLIC_KEY if public_key is None else str(public_key),
                f"key fingerprint {v.key_fingerprint} is not the signer the manifest names "
                f"({stated})",
            )
        )
    if fingerprint and fingerprint.lower() != v.key_fingerprint:
        v.problems.append(
            Problem(
                "signature",
                SIGNATURE,
                f"signed with key {v.key_fingerprint}, not the expected {fingerprint.lower()}",
            )
        )
    # Exactly base64 and one newline: any other byte in the file is a change, even whitespace.
    if not keys.check(key, data, signature.removesuffix("\n")):
        v.problems.append(
            Problem(
                "signature",
                SIGNATURE,
                "signature does not match manifest.json (the manifest or its signature was "
                "changed, or another key signed it)",
            )
        )


def _check_files(root: Path, manifest: dict[str, Any], v: Verdict) -> None:
    listed = manifest.get("files") or []
    names = set()
    for entry in listed:
        rel = str(entry.get("path", ""))
        names.add(rel)
        path = root / rel
        if ".." in Path(rel).parts or not path.is_file():
            v.problems.append(Problem("file", rel, "missing from the package"))
            continue
        size = path.stat().st_size
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != entry.get("sha256"):
            v.problems.append(
                Problem(
                    "file",
                    rel,
                    f"SHA-256 {h.hexdigest()} differs from the manifest's {entry.get('sha256')}"
                    " (the file was changed)",
                )
            )
        elif size != entry.get("size"):
            v.problems.append(Problem("file", rel, f"size {size} differs from the manifest"))
    v.files = len(listed)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in names and rel not in UNLISTED:
            v.problems.append(Problem("file", rel, "not in the manifest (added after sealing)"))


def _check_custody(root: Path, manifest: dict[str, Any], v: Verdict) -> None:
    sealed = manifest.get("custody") or {}
    try:
        lines = (root / CUSTODY).read_bytes().decode("utf-8").split("\n")
    except FileNotFoundError:
        v.problems.append(Problem("custody", CUSTODY, "missing"))
        return
    except UnicodeDecodeError as exc:
        v.problems.append(Problem("custody", CUSTODY, f"not UTF-8 text at byte {exc.start}"))
        return
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    entries: list[tuple[dict[str, Any], str, str]] = []
    for n, line in enumerate(lines):
        try:
            item = json.loads(line)
            entries.append((dict(item["body"]), str(item["prev"]), str(item["hash"])))
        except (ValueError, KeyError, TypeError):
            v.problems.append(Problem("custody", CUSTODY, f"entry {n} is not a custody record"))
            return
    v.custody_entries = len(entries)
    broken = verify_chain(entries)
    if broken is not None:
        body = entries[broken.index][0]
        v.problems.append(
            Problem(
                "custody",
                CUSTODY,
                f"{broken.reason} ({body.get('action')} by {body.get('actor')} at "
                f"{body.get('at')})",
            )
        )
        return
    count, head = sealed.get("entries"), sealed.get("head")
    if (
        not isinstance(count, int)
        or count < 1
        or count > len(entries)
        or entries[count - 1][2] != head
    ):
        v.problems.append(
            Problem(
                "custody",
                CUSTODY,
                f"the log does not hold the {count} entries sealed in the manifest (head {head}):"
                " entries before sealing were removed or the log was rewritten",
            )
        )
        return
    v.after_seal = [body for body, _p, _h in entries[count:]]
