"""Evidence packages over a real C2 capture: built, verified, and every kind of tampering caught
and named; the cut pcap holds exactly the connections' original packets (checked with tshark and
dpkt against the original capture)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.cases import keys
from mamori.cases.case import Case, case_events, get_case, list_packages, open_case
from mamori.cases.custody import Action, CustodyError, append
from mamori.cases.evidence import EvidenceError, build, case_uids
from mamori.cases.verify import verify
from mamori.hashchain import GENESIS, link
from mamori.intel.store import import_files
from mamori.store import Store


@dataclass
class Package:
    store: Store
    case: Case
    folder: Path
    zip_path: Path
    key: keys.KeyInfo
    report: Path


@pytest.fixture(scope="module")
def package(sandcat_report: Path, tmp_path_factory: pytest.TempPathFactory) -> Package:
    tmp = tmp_path_factory.mktemp("evidence")
    store = Store(f"sqlite:///{tmp / 'state.db'}")
    key = keys.generate(tmp / "key" / "op.pem")
    feed = tmp / "c2-feed.txt"
    feed.write_text("# test feed\n172.18.0.2\n")
    import_files([feed], tmp / "intel", tlp="amber")
    case = open_case(store, sandcat_report, actor="analyst ann")
    built = build(
        store,
        case.id,
        tmp / "pkg",
        key_path=key.private_path,
        intel_store=tmp / "intel",
        actor="analyst ann",
    )
    assert built.zip_path.is_file()
    return Package(
        store, get_case(store, case.id), built.folder, built.zip_path, key, sandcat_report
    )


def _copy(pkg: Package, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pkg.folder, tmp_path / "copy"))


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_fresh_package_verifies(package: Package) -> None:
    for target in (package.folder, package.zip_path):
        v = verify(target, fingerprint=package.key.fingerprint)
        assert v.ok, v.problems
        assert v.case == package.case.id
        assert v.key_fingerprint == package.key.fingerprint
        assert [b["action"] for b in v.after_seal] == ["evidence.seal"]


def test_manifest_names_sources_with_their_own_hash(package: Package, data_dir: Path) -> None:
    import hashlib

    m = _manifest(package.folder)
    [source] = m["sources"]
    assert source["sha256"] == hashlib.sha256(Path(source["path"]).read_bytes()).hexdigest()
    assert m["tool"]["name"] == "mamori" and m["tool"]["version"]
    pcap = next(f for f in m["files"] if f["path"].startswith("packets/"))
    assert pcap["source_sha256"] == source["sha256"] and pcap["acquired"] == source["acquired"]
    for f in m["files"]:
        assert (package.folder / f["path"]).stat().st_size == f["size"]
    # every alerted connection was found, and the packets cut are the ones the lake counted
    assert m["connections_missing"] == []
    assert {c["uid"] for c in m["connections"]} == set(case_uids(package.case))
    assert all(c["packets"] == c["expected"] > 0 for c in m["connections"])
    # the sandcat alert stands for 36 check-ins over 2 connections: counted in conn records
    alerts = [a for i in package.case.incidents for a in i["alerts"]]
    capped = [a for a in alerts if a["count"] > len(a["evidence"]["uids"])]
    assert len(m["alerts_with_more_records"]) == len(capped)


def test_records_and_intel_are_those_of_the_case(package: Package) -> None:
    uids = set(case_uids(package.case))
    conn = [json.loads(x) for x in (package.folder / "records/conn.jsonl").read_text().splitlines()]
    assert {r["uid"] for r in conn} == uids
    http = (package.folder / "records/http.jsonl").read_text().splitlines()
    assert http and {json.loads(x)["uid"] for x in http} <= uids
    incidents = json.loads((package.folder / "records/incidents.json").read_text())
    assert [i["id"] for i in incidents] == package.case.incident_ids
    matches = [
        json.loads(x) for x in (package.folder / "intel/matches.jsonl").read_text().splitlines()
    ]
    assert matches and {m["value"] for m in matches} == {"172.18.0.2"}
    assert {m["uid"] for m in matches} <= uids and {m["tlp"] for m in matches} == {"amber"}


def test_custody_log_tells_who_did_what_and_the_case_remembers_the_package(
    package: Package,
) -> None:
    lines = (package.folder / "custody.jsonl").read_text().splitlines()
    bodies = [json.loads(x)["body"] for x in lines]
    assert [b["action"] for b in bodies] == [
        "case.open",
        "evidence.acquire",
        "evidence.package",
        "evidence.seal",
    ]
    assert {b["actor"] for b in bodies} == {"analyst ann"}
    assert [e.hash for e in case_events(package.store, package.case.id)] == [
        json.loads(x)["hash"] for x in lines
    ]
    [recorded] = list_packages(package.store, package.case.id)
    assert recorded.manifest == _manifest(package.folder)


def _frames(path: Path, display_filter: str | None = None) -> list[tuple[str, str, str]]:
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"]
    cmd += ["-e", "frame.time_epoch", "-e", "frame.len"]
    if display_filter:
        cmd += ["-Y", display_filter]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [tuple(line.split("\t")) for line in done.stdout.splitlines()]  # type: ignore[misc]


def test_cut_pcap_holds_exactly_the_connections_original_packets(
    package: Package, data_dir: Path
) -> None:
    m = _manifest(package.folder)
    [source] = m["sources"]
    original = Path(source["path"])
    conns = [
        json.loads(x) for x in (package.folder / "records/conn.jsonl").read_text().splitlines()
    ]
    assert all(c["proto"] == "tcp" for c in conns)
    flt = " || ".join(
        f"(ip.addr=={c['orig_h']} && ip.addr=={c['resp_h']} && tcp.port=={c['orig_p']}"
        f" && tcp.port=={c['resp_p']})"
        for c in conns
    )
    expected = _frames(original, flt)
    cut_file = package.folder / next(
        f["path"] for f in m["files"] if f["path"].startswith("packets/")
    )
    got = _frames(cut_file)
    assert len(got) == sum(c["orig_pkts"] + c["resp_pkts"] for c in conns) == len(expected)
    assert [g[1:] for g in got] == [e[1:] for e in expected]  # time and length, in order
    # and byte for byte, with the original record timestamps (dpkt as a second reader)
    with original.open("rb") as fh:
        records = list(dpkt.pcap.Reader(fh))
    wanted = [records[int(e[0]) - 1] for e in expected]
    with cut_file.open("rb") as fh:
        cut = list(dpkt.pcap.Reader(fh))
    assert cut == wanted
    assert cut_file.read_bytes()[:24] == original.read_bytes()[:24]


def _tamper_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_changed_byte_is_named(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    pcap = next((folder / "packets").iterdir())
    _tamper_byte(pcap, pcap.stat().st_size // 2)
    v = verify(folder)
    assert [(p.what, p.path) for p in v.problems] == [("file", f"packets/{pcap.name}")]
    assert "SHA-256" in v.problems[0].reason and "changed" in v.problems[0].reason


def test_a_changed_custody_entry_is_named(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    log = folder / "custody.jsonl"
    lines = log.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["body"]["actor"] = "someone else"
    lines[1] = json.dumps(entry)
    log.write_text("\n".join(lines) + "\n")
    v = verify(folder)
    assert [(p.what, p.path) for p in v.problems] == [("custody", "custody.jsonl")]
    assert "entry 1 was altered" in v.problems[0].reason
    assert "evidence.acquire" in v.problems[0].reason


def test_a_deleted_custody_entry_is_named(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    log = folder / "custody.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    [problem] = verify(folder).problems
    assert problem.what == "custody" and "entry 1 does not follow entry 0" in problem.reason


def test_a_rewritten_custody_log_is_caught_by_the_sealed_head(
    package: Package, tmp_path: Path
) -> None:
    folder = _copy(package, tmp_path)
    log = folder / "custody.jsonl"
    bodies = [json.loads(x)["body"] for x in log.read_text().splitlines()]
    bodies[0]["actor"] = "someone else"
    prev, out = GENESIS, []
    for body in bodies:  # a forger who recomputes every hash
        digest = link(prev, body)
        out.append(json.dumps({"body": body, "prev": prev, "hash": digest}))
        prev = digest
    log.write_text("\n".join(out) + "\n")
    [problem] = verify(folder).problems
    assert problem.what == "custody" and "sealed in the manifest" in problem.reason


def test_a_changed_signature_is_named(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    sig = folder / "manifest.sig"
    text = sig.read_text().strip()
    sig.write_text(("A" if text[0] != "A" else "B") + text[1:] + "\n")
    v = verify(folder)
    assert [(p.what, p.path) for p in v.problems] == [("signature", "manifest.sig")]
    assert "signature does not match manifest.json" in v.problems[0].reason


def test_a_manifest_edited_to_hide_a_change_fails_its_signature(
    package: Package, tmp_path: Path
) -> None:
    import hashlib

    folder = _copy(package, tmp_path)
    conn = folder / "records" / "conn.jsonl"
    conn.write_text(conn.read_text().replace("172.18.0.3", "172.18.0.9"))
    m = _manifest(folder)
    for f in m["files"]:
        if f["path"] == "records/conn.jsonl":
            f["sha256"] = hashlib.sha256(conn.read_bytes()).hexdigest()
            f["size"] = conn.stat().st_size
    (folder / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    [problem] = verify(folder).problems
    assert problem.what == "signature"


def test_another_signer_is_caught_when_the_key_is_pinned(package: Package, tmp_path: Path) -> None:
    other = keys.generate(tmp_path / "other.pem")
    v = verify(package.folder, public_key=other.public_path)
    assert {p.what for p in v.problems} == {"signature"}
    assert any("not the signer the manifest names" in p.reason for p in v.problems)
    v = verify(package.folder, fingerprint=other.fingerprint)
    assert [p.reason for p in v.problems] == [
        f"signed with key {package.key.fingerprint}, not the expected {other.fingerprint}"
    ]


def test_an_added_or_removed_file_is_named(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    (folder / "records" / "extra.jsonl").write_text("{}\n")
    (folder / "case.json").unlink()
    found = {(p.path, p.reason) for p in verify(folder).problems}
    assert found == {
        ("records/extra.jsonl", "not in the manifest (added after sealing)"),
        ("case.json", "missing from the package"),
    }


def test_a_changed_zip_member_is_named(package: Package, tmp_path: Path) -> None:
    tampered = tmp_path / "pkg.zip"
    with zipfile.ZipFile(package.zip_path) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("records/conn.jsonl"):
                data = data.replace(b"tcp", b"udp", 1)
            dst.writestr(item, data)
    v = verify(tampered)
    assert [(p.what, p.path) for p in v.problems] == [("file", "records/conn.jsonl")]
    assert v.package == str(tampered)


def test_build_refuses_without_a_key_or_into_a_used_folder(
    package: Package, tmp_path: Path
) -> None:
    with pytest.raises(EvidenceError, match="mamori keys generate"):
        build(package.store, package.case.id, tmp_path / "a", key_path=tmp_path / "no.pem")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(EvidenceError, match="not empty"):
        build(package.store, package.case.id, tmp_path / "b", key_path=package.key.private_path)
    with pytest.raises(EvidenceError, match="no case CASE-none"):
        build(package.store, "CASE-none", tmp_path / "c", key_path=package.key.private_path)


def test_custody_continues_after_sealing_in_folder_and_zip(
    package: Package, tmp_path: Path
) -> None:
    folder = _copy(package, tmp_path)
    zipped = Path(shutil.copy(package.zip_path, tmp_path / "copy.zip"))  # the zip beside it
    append(folder, Action.transfer, {"to": "police officer P"}, actor="analyst ann")
    append(zipped, Action.receive, {"from": "analyst ann"}, actor="officer P")
    v = verify(folder)
    assert v.ok, v.problems
    assert [b["action"] for b in v.after_seal] == ["evidence.seal", "custody.transfer"]
    v = verify(zipped)  # the folder's entry reached its zip, then the zip's own was added
    assert v.ok, v.problems
    assert [(b["action"], b["actor"]) for b in v.after_seal] == [
        ("evidence.seal", "analyst ann"),
        ("custody.transfer", "analyst ann"),
        ("custody.receive", "officer P"),
    ]


def test_custody_refuses_to_continue_a_broken_log(package: Package, tmp_path: Path) -> None:
    folder = _copy(package, tmp_path)
    (tmp_path / "copy.zip").unlink(missing_ok=True)
    log = folder / "custody.jsonl"
    log.write_text(log.read_text().replace("analyst ann", "analyst bob", 1))
    with pytest.raises(CustodyError, match=r"entry 0 was altered.*not appending to a broken log"):
        append(folder, Action.verify, {}, actor="x")


def test_a_package_checks_out_with_coreutils_and_openssl_alone(
    package: Package, tmp_path: Path
) -> None:
    """A court's expert need not trust mamori: sha256sum and openssl check the same things."""
    import base64

    sums = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=package.folder,
        capture_output=True,
        text=True,
    )
    assert sums.returncode == 0, sums.stdout + sums.stderr
    listed = {f["path"] for f in _manifest(package.folder)["files"]} - {"SHA256SUMS"}
    assert {
        line.split("  ", 1)[1] for line in (package.folder / "SHA256SUMS").read_text().splitlines()
    } == listed
    sig = tmp_path / "sig.bin"
    sig.write_bytes(base64.b64decode((package.folder / "manifest.sig").read_text()))
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "public-key.pem", "-rawin"]
    cmd += ["-in", "manifest.json", "-sigfile", str(sig)]
    ok = subprocess.run(cmd, cwd=package.folder, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    folder = _copy(package, tmp_path)
    _tamper_byte(folder / "manifest.json", 40)
    bad = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    assert bad.returncode != 0


AGENTTESLA = (
    "zeek-detector-pcaps/zeek-agenttesla-detector/testing/Traces/"
    "f9421792-7d2c-47d3-90e0-07eb54ae12fa.pcap"
)


def test_a_case_over_two_captures_cuts_each_source(data_dir: Path, tmp_path: Path) -> None:
    from mamori.config import Settings
    from mamori.patrol import patrol

    sources = [data_dir / "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap"]
    sources.append(data_dir / AGENTTESLA)
    result = patrol(sources, tmp_path / "p" / "lake", tmp_path / "p", Settings())
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    key = keys.generate(tmp_path / "op.pem")
    case = open_case(store, result.json_path)
    built = build(store, case.id, tmp_path / "pkg", key_path=key.private_path)
    m = _manifest(built.folder)
    assert sorted(Path(s["path"]).name for s in m["sources"]) == sorted(p.name for p in sources)
    pcaps = [f for f in m["files"] if f["path"].startswith("packets/")]
    assert len(pcaps) == 2 and {f["source"] for f in pcaps} == {s["path"] for s in m["sources"]}
    assert all(c["packets"] == c["expected"] for c in m["connections"])
    assert verify(built.zip_path, fingerprint=key.fingerprint).ok
    acquired = [
        json.loads(x)["body"]["detail"]["source"]
        for x in (built.folder / "custody.jsonl").read_text().splitlines()
        if json.loads(x)["body"]["action"] == "evidence.acquire"
    ]
    assert sorted(acquired) == sorted(s["path"] for s in m["sources"])


def test_build_names_a_missing_lake_or_capture(package: Package, tmp_path: Path) -> None:
    report = tmp_path / "r" / "report.json"
    report.parent.mkdir()
    data = json.loads(Path(package.report).read_text())
    data["lake"] = str(tmp_path / "gone")  # the lake the report names has been removed
    report.write_text(json.dumps(data))  # and none lies beside the report either
    case = open_case(package.store, report)
    with pytest.raises(EvidenceError, match="lake is not available"):
        build(package.store, case.id, tmp_path / "a", key_path=package.key.private_path)


def test_build_names_a_capture_that_has_moved(data_dir: Path, tmp_path: Path) -> None:
    from mamori.config import Settings
    from mamori.patrol import patrol

    capture = Path(shutil.copy(data_dir / AGENTTESLA, tmp_path / "moving.pcap"))
    result = patrol([capture], tmp_path / "p" / "lake", tmp_path / "p", Settings())
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    key = keys.generate(tmp_path / "op.pem")
    case = open_case(store, result.json_path)
    capture.unlink()
    with pytest.raises(EvidenceError, match=r"source file .*moving\.pcap not found"):
        build(store, case.id, tmp_path / "pkg", key_path=key.private_path)
    assert not (tmp_path / "pkg").exists()  # no half package left behind


@settings(
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(choice=st.data())
def test_any_changed_byte_of_any_file_is_caught(
    package: Package, tmp_path_factory: pytest.TempPathFactory, choice: st.DataObject
) -> None:
    folder = Path(shutil.copytree(package.folder, tmp_path_factory.mktemp("flip") / "pkg"))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    name = choice.draw(st.sampled_from(files))
    size = (folder / name).stat().st_size
    offset = choice.draw(st.integers(0, size - 1))
    bit = choice.draw(st.integers(0, 7))
    data = bytearray((folder / name).read_bytes())
    data[offset] ^= 1 << bit
    (folder / name).write_bytes(bytes(data))
    v = verify(folder)
    assert not v.ok, (name, offset, bit)
    assert any(p.path == name or p.what == "signature" for p in v.problems), v.problems


def test_log_evidence_carries_the_original_log_file_and_its_cited_records(
    data_dir: Path, tmp_path: Path
) -> None:
    """A honeypot incident's package: the Cowrie log copied whole, the cited records, verified."""
    from mamori.config import Settings
    from mamori.patrol import patrol

    log = Path(shutil.copy(data_dir / "logs/cowrie-honeypot/cowrie.json.2018-05-06", tmp_path))
    result = patrol([log], tmp_path / "p" / "lake", tmp_path / "p", Settings())
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    key = keys.generate(tmp_path / "op.pem")
    case = open_case(store, result.json_path)
    built = build(store, case.id, tmp_path / "pkg", key_path=key.private_path)
    m = _manifest(built.folder)
    assert [s["path"] for s in m["sources"]] == [str(log.resolve())]
    [copy] = [f for f in m["files"] if f["path"].startswith("logs/")]
    assert (built.folder / copy["path"]).read_bytes() == log.read_bytes()
    cited = [
        json.loads(x) for x in (built.folder / "records/honeypot.jsonl").read_text().splitlines()
    ]
    assert cited and {r["uid"] for r in cited} == set(case_uids(get_case(store, case.id)))
    assert copy["records"] == sorted({r["record"] for r in cited})
    lines = log.read_text().splitlines()
    for r in cited:  # each cited record is the line of the original file it says it is
        assert json.loads(lines[r["record"] - 1])["eventid"] == r["event"]
    assert m["connections_missing"] == []
    assert verify(built.zip_path, fingerprint=key.fingerprint).ok
    tampered = _copy(
        Package(store, case, built.folder, built.zip_path, key, result.json_path), tmp_path
    )
    _tamper_byte(tampered / copy["path"], 10)
    problems = verify(tampered).problems
    assert any(p.path == copy["path"] for p in problems)


def test_connections_read_from_zeek_logs_are_evidenced_by_the_log_not_cut(
    data_dir: Path, tmp_path: Path
) -> None:
    """A case built from Zeek's own logs: conn.log copied whole with the lines cited, no pcap."""
    from mamori.config import Settings
    from mamori.patrol import patrol

    folder = data_dir / "zeek-reference/zeek-btest/Traces/ssh/sshguess.pcap.zeek"
    logs = [Path(shutil.copy(folder / n, tmp_path / n)) for n in ("conn.log", "ssh.log")]
    result = patrol(logs, tmp_path / "p" / "lake", tmp_path / "p", Settings())
    assert result.incidents, "Zeek's own ssh.log of the guessing trace must raise an incident"
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    key = keys.generate(tmp_path / "op.pem")
    case = open_case(store, result.json_path)
    built = build(store, case.id, tmp_path / "pkg", key_path=key.private_path)
    m = _manifest(built.folder)
    assert not [f for f in m["files"] if f["path"].startswith("packets/")]
    copies = {Path(f["source"]).name: f for f in m["files"] if f["path"].startswith("logs/")}
    assert "conn.log" in copies
    conn_lines = (tmp_path / "conn.log").read_text().splitlines()
    cited = [json.loads(x) for x in (built.folder / "records/conn.jsonl").read_text().splitlines()]
    assert copies["conn.log"]["records"] == sorted({r["first_record"] for r in cited})
    for r in cited:  # the cited line of Zeek's conn.log is that connection
        assert conn_lines[r["first_record"] - 1].split("\t")[1] == r["uid"]
    assert verify(built.zip_path, fingerprint=key.fingerprint).ok
