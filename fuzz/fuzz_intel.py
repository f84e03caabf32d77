"""Fuzz the intel importers: mutated STIX 2.1 bundles, MISP events, plain lists and honeypot logs
through ``mamori intel import``'s path (``intel.store.load_file`` and ``to_table``), and mutated
STIX patterns through the pattern parser.

A feed is somebody else's file: a partner's exporter with a bug, a list edited by hand, a bundle
cut off in transit. What the importer owes its user is one of two outcomes: the file's good
indicators imported and each bad object skipped with its reason, or, when the file as a whole is
unreadable, one ``IntelFormatError`` line naming the file. Anything else (a traceback, a
``ValueError`` the command prints without the file's name, rows outside the store's schema, a
skip reason that spans lines) is a bug here. Seeds are the shared STIX examples and MISP test
events, the head of the IPsum list and of a Cowrie log, and built-in files that reach every
branch of the importers (every pattern shape, markings, relationships, MISP objects and
galaxies, list entries of every type). Mutations: a value anywhere in a JSON document replaced by
an odd one (another type, an extreme number, a hostile string), a STIX pattern edited token by
token or nested deeply, whole lines of a list duplicated, dropped or replaced by odd entries,
and ``fuzz_pcap``'s byte-level edits.

    python fuzz/fuzz_intel.py --seconds 30 [--seed N] [--data DIR] [--crash-dir DIR]

Exit status 1 on the first failure, with the offending input saved, so it is reproducible from
its seed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fuzz_pcap import default_data_dir, mutate

from mamori.intel.pattern import PatternError, Unmatchable, parse
from mamori.intel.schema import SCHEMA, TLPS, TYPES, IntelFormatError
from mamori.intel.store import TABLE, import_files, load_file, read, to_table

SEED_BYTES = 60_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)

_TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
_TLP_RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
_PATTERNS = [
    "[ipv4-addr:value = '198.51.100.7']",
    "[ipv4-addr:value = '203.0.113.0/24' OR ipv6-addr:value = '2001:db8::/32']",
    "[domain-name:value = 'evil.example.com'] OR [url:value = 'http://a.example.net:8080/x?y=1']",
    "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']",
    "[file:hashes.MD5 IN ('d41d8cd98f00b204e9800998ecf8427e', '0cc175b9c0f1b6a831c399e269772661')]",
    "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '192.0.2.1'"
    " AND network-traffic:dst_port = 443]",
    "[domain-name:value LIKE '%.example.org'] WITHIN 300 SECONDS",
    "[ipv4-addr:value NOT = '192.0.2.9'] REPEATS 5 TIMES",
    "[ipv4-addr:value = '192.0.2.10'] FOLLOWEDBY [domain-name:value = 'b.example']",
    "([url:value = 'https://c.example/login'] OR [domain-name:value = 'xn--bcher-kva.example'])"
    " START t'2020-01-01T00:00:00Z' STOP t'2030-01-01T00:00:00Z'",
    "[x-custom:value = 'anything']",
]
_STIX_BUILTIN: dict[str, Any] = {
    "type": "bundle",
    "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
    "objects": [
        {"type": "marking-definition", "spec_version": "2.1",
         "id": "marking-definition--f88d31f6-486f-44da-b317-01333bde0b83",
         "created": "2017-01-20T00:00:00.000Z", "definition_type": "tlp",
         "definition": {"tlp": "amber"}},
        *({"type": "indicator", "spec_version": "2.1",
           "id": f"indicator--{i:08d}-0000-4000-8000-000000000000",
           "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
           "name": f"indicator {i}", "pattern": p, "pattern_type": "stix",
           "valid_from": "2024-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
           "confidence": 10 * (i % 11), "indicator_types": ["malicious-activity"],
           "labels": ["c2"], "kill_chain_phases": [
               {"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}],
           "object_marking_refs": [[_TLP_GREEN], [_TLP_RED, _TLP_GREEN],
                                   ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b83"]
                                   ][i % 3]}
          for i, p in enumerate(_PATTERNS)),
        {"type": "indicator", "spec_version": "2.1",
         "id": "indicator--99999999-0000-4000-8000-000000000000", "pattern": "[a:b = 'c']",
         "pattern_type": "sigma", "valid_from": "2024-01-01T00:00:00Z"},
        {"type": "malware", "spec_version": "2.1",
         "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b", "name": "Poison Ivy",
         "is_family": True},
        {"type": "intrusion-set", "spec_version": "2.1",
         "id": "intrusion-set--4e78f46f-a023-4e5f-bc24-71b3ca22ec29", "name": "APT1",
         "external_references": [{"source_name": "mitre-attack", "external_id": "G0006"}]},
        {"type": "threat-actor", "spec_version": "2.1",
         "id": "threat-actor--56f3f0db-b5d5-431c-ae56-c18f02caf500", "name": "Comment Crew"},
        {"type": "relationship", "spec_version": "2.1",
         "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad", "relationship_type":
         "indicates", "source_ref": "indicator--00000000-0000-4000-8000-000000000000",
         "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"},
        {"type": "relationship", "spec_version": "2.1",
         "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fae", "relationship_type":
         "uses", "source_ref": "intrusion-set--4e78f46f-a023-4e5f-bc24-71b3ca22ec29",
         "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"},
        {"type": "relationship", "spec_version": "2.1",
         "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7faf", "relationship_type":
         "attributed-to", "source_ref": "intrusion-set--4e78f46f-a023-4e5f-bc24-71b3ca22ec29",
         "target_ref": "threat-actor--56f3f0db-b5d5-431c-ae56-c18f02caf500"},
    ],
}  # fmt: skip
_MISP_BUILTIN: dict[str, Any] = {
    "Event": {
        "uuid": "5f1e2d3c-0000-4000-8000-000000000001", "info": "fuzz seed event",
        "threat_level_id": "1", "Tag": [{"name": "tlp:amber"},
                                        {"name": 'misp-galaxy:threat-actor="APT28"'}],
        "Galaxy": [{"type": "mitre-malware", "GalaxyCluster": [{"value": "X-Agent"}]}],
        "Attribute": [
            {"type": t, "value": v, "uuid": f"5f1e2d3c-0000-4000-8000-{i:012d}",
             "category": "Network activity", "to_ids": i % 2 == 0,
             "Tag": [{"name": "tlp:red"}] if i == 3 else []}
            for i, (t, v) in enumerate([
                ("ip-dst", "198.51.100.9"), ("ip-src|port", "203.0.113.5|4444"),
                ("ip-dst|port", "192.0.2.44|8443"), ("domain", "bad.example"),
                ("hostname|port", "c2.example|443"), ("domain|ip", "d.example|192.0.2.7"),
                ("url", "http://e.example/a.php?x=1"), ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
                ("filename|sha256", "a.exe|aec070645fe53ee3b3763059376134f058cc337247c978add17"
                 "8b6ccdfb0019f"), ("ja3-fingerprint-md5", "e7d705a3286e19ea42f587b344ee6865"),
                ("comment", "not matched"), ("ip-dst", "not an address")])],
        "Object": [{"name": "domain-ip", "Attribute": [
            {"type": "domain", "value": "f.example", "uuid": "5f1e2d3c-0000-4000-8000-0000000000aa"},
            {"type": "ip-dst", "value": "2001:db8::5", "uuid": "5f1e2d3c-0000-4000-8000-0000000000ab"},
        ]}],
    }
}  # fmt: skip
_LIST_BUILTIN = (
    b"# a blocklist\n198.51.100.1\t3\n203.0.113.0/24 # a range\n2001:db8::/48\n"
    b"bad.example.com\nhttp://c.example/x\nhttps://[2001:db8::1]:8443/y?z\n"
    b"not an entry\n\xc3\xbc\xc3\xb1\xc3\xaf.example\n192.0.2.1 12\n"
)
# Odd JSON values: other types, extreme numbers, hostile strings.
_ODD: list[Any] = [
    None, True, False, -1, 0, 2**31, 2**63, 2**64 + 5, -(2**63) - 1, 1e308, -1e-300, 1.5, "",
    "-", "x" * 300, "1e999", [], {}, [1, "a"], [None], [[]], {"k": None}, {"id": 1},
    "2024-13-45T99:99:99Z", "\u0000", "²", "١٢٣", "tlp:red", "TLP:AMBER+STRICT", "fe80::1%eth0",
    "http://[::1", "a." * 130 + "example", "\u00e9\u0301.example",
    "xn--.example", "indicator--00000000-0000-4000-8000-000000000000",
    "[ipv4-addr:value = '198.51.100.1']", "(" * 50, "[" * 3000,
]  # fmt: skip
_LIST_ODD = [
    b"1.2.3.4 \xc2\xb2", b"1.2.3.4 99999999999999999999", b"::ffff:1.2.3.4/200",
    b"fe80::1%eth0", b"http://[::1", b"http://a.example:99999/", b"xn--zz.example",
    b"a." * 130 + b"example", b"\xff\xfe", b"\x00", b"#", b"   \t ", b"-" * 300,
    b"//", b"http:///", b"1.2.3.4/0", b"0.0.0.0/0",
]  # fmt: skip
_PATTERN_BITS = [
    "[", "]", "(", ")", "'", "\\", "=", "!=", " AND ", " OR ", " NOT ", " IN ", " LIKE ",
    " MATCHES ", " FOLLOWEDBY ", " WITHIN ", " SECONDS ", " REPEATS ", " TIMES ", " START ",
    " STOP ", ",", ".", ":", "ipv4-addr:value", "file:hashes.'SHA-256'", "-1", "1.5", "t'",
    "h'00'", "b'AA=='", "true", "*", "[*]", "[0]", "\u00e9", "\x00",
]  # fmt: skip


class InvariantError(AssertionError):
    """The importer failed on bad input, or told it in a way a user cannot act on."""


def load_seeds(data_dir: Path) -> dict[str, list[bytes]]:
    """Seed files by their suffix (``.json`` or ``.txt``): what the command detects them by."""
    intel = data_dir / "threat-intel"
    seeds: dict[str, list[bytes]] = {".json": [], ".txt": []}
    for path in sorted(intel.glob("stix2.1-examples/**/*.json")):
        seeds[".json"].append(path.read_bytes()[:SEED_BYTES])
    for path in sorted(intel.glob("misp-events/**/*.json")):
        seeds[".json"].append(path.read_bytes()[:SEED_BYTES])
    for path in sorted(intel.glob("ipsum/*.txt")):
        seeds[".txt"].append(path.read_bytes()[:SEED_BYTES].rsplit(b"\n", 1)[0] + b"\n")
    for path in sorted((data_dir / "logs").glob("cowrie*/*"))[:1]:
        seeds[".json"].append(path.read_bytes()[:SEED_BYTES].rsplit(b"\n", 1)[0] + b"\n")
    seeds[".json"] += [json.dumps(_STIX_BUILTIN).encode(), json.dumps(_MISP_BUILTIN).encode()]
    seeds[".txt"].append(_LIST_BUILTIN)
    return seeds


def _walk(node: Any, rng: random.Random) -> list[tuple[Any, Any]]:
    """A random path from ``node`` down (parent, key) steps, stopping anywhere."""
    path: list[tuple[Any, Any]] = []
    while isinstance(node, dict | list) and node and (not path or rng.random() < 0.7):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    return path


def mutate_pattern(rng: random.Random, text: str) -> str:
    """Token-level edits of a STIX pattern, or one nested far deeper than any real one."""
    op = rng.randrange(5)
    if op == 0:
        depth = rng.choice([2, 30, 400, 5000])
        return "(" * depth + text + ")" * depth
    if op == 1:
        depth = rng.choice([2, 30, 400, 5000])
        inner = text.strip()[1:-1] if text.strip().startswith("[") else text
        return "[" + "(" * depth + inner + ")" * depth + "]"
    out = text
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        if op == 2:
            out = out[:at] + rng.choice(_PATTERN_BITS) + out[at:]
        elif op == 3:
            out = out[:at] + out[at + rng.randint(1, 8) :]
        else:
            end = min(len(out), at + rng.randint(1, 40))
            out = out[:at] + out[at:end] * rng.randint(2, 50) + out[end:]
    return out


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """A few values anywhere in the document replaced by odd ones; a pattern edited instead,
    where the path ends at one."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        path = _walk(doc, rng)
        if not path:
            return data
        parent, key = path[-1]
        value = parent[key]
        if key == "pattern" and isinstance(value, str) and rng.random() < 0.7:
            parent[key] = mutate_pattern(rng, value)
        elif isinstance(value, dict | list) and value and rng.random() < 0.2:
            parent[key] = [value] * rng.randint(2, 3) if rng.random() < 0.5 else {"x": value}
        else:
            parent[key] = copy.deepcopy(rng.choice(_ODD))  # a later edit must not change _ODD
    return json.dumps(doc).encode()


def mutate_list(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        op = rng.randrange(4)
        if op == 0:
            lines[i] = rng.choice(_LIST_ODD)
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2 and len(lines) > 1:
            del lines[i]
        else:
            lines[i] = lines[i] + b" " + rng.choice(_LIST_ODD)
    return b"\n".join(lines)


def check_file(path: Path) -> int:
    """One feed file through the importer; its rows, or 0 when refused as it should be.
    Raises :class:`InvariantError` on a bug."""
    try:
        result = load_file(path, "clear")
        table = to_table(result, "fuzz", NOW)
    except IntelFormatError as exc:
        text = str(exc)
        if not text.startswith(str(path)) or "\n" in text:
            raise InvariantError(f"an error a user cannot act on: {text!r}") from exc
        return 0
    except RecursionError as exc:  # its traceback would be thousands of lines
        raise InvariantError("RecursionError") from exc
    except Exception as exc:
        raise InvariantError(f"{type(exc).__name__}: {exc}") from exc
    if not table.schema.equals(SCHEMA):
        raise InvariantError(f"rows outside the store's schema: {table.schema}")
    for name, allowed in (("type", TYPES), ("tlp", TLPS)):
        bad = set(table.column(name).to_pylist()) - set(allowed)
        if bad:
            raise InvariantError(f"{name} outside {allowed}: {sorted(bad)[:3]}")
    if table.num_rows and not 0 <= min(table.column("confidence").to_pylist()) <= 100:
        raise InvariantError("confidence outside 0-100")
    for oid, reason in result.skipped:
        if not isinstance(oid, str) or not isinstance(reason, str) or "\n" in reason:
            raise InvariantError(f"a skip reason a user cannot read: {oid!r}: {reason!r}")
    return table.num_rows


def check_pattern(text: str) -> None:
    """A pattern is parsed, refused as bad syntax, or refused as unmatchable: nothing else."""
    try:
        parse(text)
    except (PatternError, Unmatchable) as exc:
        if "\n" in str(exc):
            raise InvariantError(f"a pattern error spans lines: {exc!s:.200}") from exc
    except RecursionError as exc:
        raise InvariantError("RecursionError in the pattern parser") from exc
    except Exception as exc:
        raise InvariantError(f"pattern parser: {type(exc).__name__}: {exc}") from exc


def check_store(paths: list[Path], store: Path) -> None:
    """Two imports into one store: refused as a whole, or the store readable afterwards."""
    try:
        import_files(paths, store, "clear")
        import_files(paths, store, "clear")
    except IntelFormatError:
        return
    except Exception as exc:
        raise InvariantError(f"import_files: {type(exc).__name__}: {exc}") from exc
    frame = read(store)
    if frame["id"].n_unique() != frame.height:
        raise InvariantError("a re-import doubled rows")
    written = pq.read_schema(store / TABLE)
    if not written.equals(SCHEMA, check_metadata=False):
        raise InvariantError(f"the store's table left its schema: {written}")


def run(seconds: float, seed: int, data_dir: Path, crash_dir: Path) -> int:
    seeds = load_seeds(data_dir)
    patterns = list(_PATTERNS)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = rows = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_intel_") as tmp:
        while time.monotonic() < deadline:
            suffix = ".json" if rng.random() < 0.7 else ".txt"
            data = rng.choice(seeds[suffix])
            pick = rng.random()
            if pick < 0.15:  # the parser alone, much faster than a whole file
                text = mutate_pattern(rng, rng.choice(patterns))
                try:
                    check_pattern(text)
                except InvariantError as exc:
                    return _fail(crash_dir, text.encode(), "pattern", exc, runs, seed)
                runs += 1
                continue
            if suffix == ".json" and pick < 0.7:
                data = mutate_json(rng, data)
            elif suffix == ".txt" and pick < 0.7:
                data = mutate_list(rng, data)
            else:
                data = mutate(rng, [data])
            path = Path(tmp) / f"feed{suffix}"
            path.write_bytes(data)
            try:
                rows += check_file(path)
                if runs % 20 == 0:
                    check_store([path], Path(tmp) / f"store{runs % 3}")
            except InvariantError as exc:
                return _fail(crash_dir, data, suffix.lstrip("."), exc, runs, seed)
            runs += 1
    counts = ", ".join(f"{k} {len(v)}" for k, v in sorted(seeds.items()))
    print(f"ok: {runs} inputs, {rows} rows, seed {seed}, seed files: {counts}")
    return 0


def _fail(crash_dir: Path, data: bytes, kind: str, exc: Exception, runs: int, seed: int) -> int:
    crash_dir.mkdir(parents=True, exist_ok=True)
    out = crash_dir / f"crash-{kind}-{hashlib.sha1(data).hexdigest()[:16]}"
    out.write_bytes(data)
    cause = exc.__cause__
    where = f" ({type(cause).__name__} at {_where(cause)})" if cause else ""
    print(f"FAIL after {runs} runs (seed {seed}), {kind}: {exc}{where}", file=sys.stderr)
    print(f"input saved to {out}", file=sys.stderr)
    return 1


def _where(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}" if last else "?"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_intel")
    args = ap.parse_args(argv[1:])
    return run(args.seconds, args.seed, args.data, args.crash_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
