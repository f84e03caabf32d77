"""``mamori share export CASE|REPORT.json``: files written, validated, errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mamori.cases.case import open_case
from mamori.cli import app
from mamori.share.export import resolve
from mamori.share.stix import validate
from mamori.share.tlp import Tlp, tlp_of
from mamori.store import Store

runner = CliRunner()


def test_export_report_as_stix(reports: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    src = reports["amplification"]["_path"]
    r = runner.invoke(app, ["share", "export", src, "-o", str(out), "--tlp", "TLP:GREEN"])
    assert r.exit_code == 0, r.output
    bundle = json.loads(out.read_text())
    assert bundle["type"] == "bundle" and validate(bundle) == []
    # ATT&CK techniques are public (CLEAR); everything of ours is at least the asked TLP.
    ours = ("marking-definition", "attack-pattern", "identity")
    marks = [tlp_of(o) for o in bundle["objects"] if o["type"] not in ours]
    assert marks and all(m is not None and m >= Tlp.GREEN for m in marks)
    again = tmp_path / "again.json"
    runner.invoke(app, ["share", "export", src, "-o", str(again), "--tlp", "green"])
    assert again.read_bytes() == out.read_bytes()


def test_export_report_folder_as_misp_to_stdout(reports: dict[str, dict[str, Any]]) -> None:
    folder = str(Path(reports["beacon"]["_path"]).parent)
    r = runner.invoke(app, ["share", "export", folder, "--format", "misp"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)["Event"]
    assert ev["Tag"][0]["name"] == "tlp:amber"  # the default marking


def test_export_case(
    reports: dict[str, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("MAMORI_STATE_URL", url)
    case = open_case(Store(url), Path(reports["amplification"]["_path"]), actor="tester")
    subject = resolve(case.id)
    assert subject.container is not None and subject.container.key == case.id
    out = tmp_path / "case.json"
    r = runner.invoke(app, ["share", "export", case.id, "-o", str(out)])
    assert r.exit_code == 0, r.output
    bundle = json.loads(out.read_text())
    assert validate(bundle) == []
    names = {o.get("name") for o in bundle["objects"] if o["type"] == "report"}
    assert case.title in names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/report.json"], "neither a patrol report"),
        (["CASE-doesnotexist"], "no case"),
        (["REPORT", "--tlp", "blue"], "unknown TLP"),
        (["REPORT", "--format", "csv"], "unknown format"),
        (["NOTREPORT"], "not a mamori patrol report"),
    ],
)
def test_bad_input_is_a_clear_error(
    args: list[str],
    message: str,
    reports: dict[str, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAMORI_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    other = tmp_path / "other.json"
    other.write_text('{"type": "bundle"}')
    subst = {"REPORT": reports["beacon"]["_path"], "NOTREPORT": str(other)}
    r = runner.invoke(app, ["share", "export", *[subst.get(a, a) for a in args]])
    assert r.exit_code == 1
    assert message in r.output and "Traceback" not in r.output


def test_docs_name_every_object_type_and_option(reports: dict[str, dict[str, Any]]) -> None:
    import typer

    from mamori.share.cli import app as share_app
    from mamori.share.stix import report_bundle

    docs = (Path(__file__).resolve().parents[2] / "docs" / "sharing.md").read_text()
    types = {o["type"] for o in report_bundle(reports["amplification"])["objects"]}
    assert {t for t in types if f"`{t}`" not in docs} == set()
    export = typer.main.get_command(share_app).commands["export"]  # type: ignore[attr-defined]
    options = {o for p in export.params for o in p.opts if o.startswith("--")}
    assert options and {o for o in options if o not in docs} == set()
