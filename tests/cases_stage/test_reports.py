"""Reports of a case built from a real C2 capture: every kind as HTML (parsed) and PDF (turned into
PNG pages with pdftoppm and read back with pdftotext), with the facts of the case in them."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mamori.cases import evidence, keys
from mamori.cases.case import add_note, link_decision, open_case
from mamori.cases.cli import report_app
from mamori.cases.reports import KINDS, ReportError, load_operator, render_html, write_report
from mamori.cases.reports.view import CaseView, from_report, from_store
from mamori.config import Settings
from mamori.correlate.attack import technique_name
from mamori.detect.base import registered
from mamori.intel.store import import_files
from mamori.patrol import patrol
from mamori.respond.decision import Action, Decision
from mamori.respond.ledger import Ledger
from mamori.respond.policy import build_policy
from mamori.store import Store

SANDCAT = "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap"
AGENT, SERVER = "172.18.0.3", "172.18.0.2"  # the Caldera agent beacons to its server
TECHNIQUE = "T1071.001"

# Section ids each kind must have (the PDF check looks for their headings).
SECTIONS = {
    "technical": {
        "summary": "Summary",
        "timeline": "Timeline",
        "entities": "Entities",
        "techniques": "Techniques (MITRE ATT&CK)",
        "decisions": "Decisions taken",
        "attribution": "Attribution assessment",
        "evidence": "Evidence",
    },
    "referral": {
        "referral": "Referral",
        "facts": "Facts",
        "timeline": "Timeline",
        "parties": "Addresses involved",
        "evidence": "Evidence index",
        "custody": "Provenance and custody",
    },
    "attribution": {
        "judgement": "Judgement",
        "activity": "The activity",
        "claims": "What the evidence supports",
        "not-claimed": "What is not claimed",
        "scale": "How to read this statement",
    },
    "regulator": {
        "operator": "Operator",
        "affected": "Affected systems",
        "impact": "Impact",
        "detection": "Detection",
        "cause": "Cause",
        "measures": "Measures taken",
    },
}

OPERATOR_YAML = """\
operator:
  name: Stadtwerke Beispiel GmbH
  sector: energy
  identifier: KRITIS-EN-0042
contact:
  name: Jane Doe
  role: CISO
  email: soc@stadtwerke.example
  phone: "+49 30 1234567"
regulator:
  name: Bundesamt fuer Sicherheit in der Informationstechnik
systems:
  - name: SCADA front-end
    addresses: [172.18.0.0/29]
    service: distribution control
"""


def _intrusion_set(data_dir: Path, group: str) -> dict[str, Any]:
    """An intrusion-set object of MITRE's ATT&CK data, read from the shared data in place."""
    for path in sorted(
        (data_dir / "threat-intel/mitre-attack-cti/enterprise-attack").glob("intrusion-set/*.json")
    ):
        data = json.loads(path.read_text())
        for obj in data.get("objects", [data]):
            refs = obj.get("external_references") or []
            if any(r.get("external_id") == group for r in refs):
                return obj
    raise AssertionError(f"{group} not in the shared ATT&CK data")


def _bundle(path: Path, sets: list[dict[str, Any]], ip: str, confidence: int) -> Path:
    """A feed that ties the address to intrusion sets (an analyst's own STIX bundle)."""
    stamp = "2024-01-01T00:00:00.000Z"
    ind = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_URL, path.name)}",
        "created": stamp,
        "modified": stamp,
        "pattern": f"[ipv4-addr:value = '{ip}']",
        "pattern_type": "stix",
        "valid_from": stamp,
        "confidence": confidence,
    }
    objects: list[dict[str, Any]] = [ind]
    for s in sets:
        rel_id = uuid.uuid5(uuid.NAMESPACE_URL, path.name + s["id"])
        objects += [
            s,
            {
                "type": "relationship",
                "spec_version": "2.1",
                "id": f"relationship--{rel_id}",
                "created": stamp,
                "modified": stamp,
                "relationship_type": "indicates",
                "source_ref": ind["id"],
                "target_ref": s["id"],
            },
        ]
    path.write_text(
        json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects})
    )
    return path


@dataclass(frozen=True)
class Built:
    store_url: str
    case_id: str
    decision_id: str
    report: Path
    package: evidence.Built
    operator: Path
    out: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Built:
    """Intel tying the C2 server to APT28 (two feeds) and APT29 (one, shared); a patrol of the
    Caldera capture; a case with a note, a linked decision and a signed evidence package."""
    tmp = tmp_path_factory.mktemp("reports")
    apt28, apt29 = _intrusion_set(data_dir, "G0007"), _intrusion_set(data_dir, "G0016")
    intel = tmp / "intel"
    import_files([_bundle(tmp / "feed-a.json", [apt28], SERVER, 100)], intel, source="feed-a")
    import_files(
        [_bundle(tmp / "feed-b.json", [apt28, apt29], SERVER, 100)], intel, "amber", "feed-b"
    )
    params = {"intel.match": registered()["intel.match"].params(store=str(intel))}  # type: ignore[call-arg]
    run = patrol([data_dir / SANDCAT], tmp / "patrol" / "lake", tmp / "patrol", Settings(), params)
    assert run.incidents, "the Caldera capture gave no incident"
    url = f"sqlite:///{tmp / 'state.db'}"
    store = Store(url)
    case = open_case(store, run.json_path, actor="ann")
    add_note(store, case.id, "agent host isolated pending reimage", author="ann")
    ledger = Ledger(store, policy=build_policy({"protected": {"own": ["172.18.0.0/16"]}}))
    [entry] = ledger.submit(
        [
            Decision(
                Action.quarantine,
                AGENT,
                "beacons to a C2 server",
                case.incident_ids[0],
                0.8,
                3600,
                scope="all",
            )
        ]
    )
    link_decision(store, case.id, entry.id, actor="ann")
    key = tmp / "keys" / "signing-key.pem"
    keys.generate(key)
    package = evidence.build(store, case.id, tmp / "package", key_path=key, intel_store=intel)
    store.close()
    operator = tmp / "operator.yaml"
    operator.write_text(OPERATOR_YAML)
    return Built(url, case.id, entry.id, run.json_path, package, operator, tmp / "out")


@pytest.fixture
def view(built: Built) -> CaseView:
    store = Store(built.store_url)
    try:
        return from_store(store, built.case_id)
    finally:
        store.close()


class _Page(HTMLParser):
    """Section ids with their text, every tag and attribute, and every judgement element."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.open: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.judgements: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section" and a.get("id"):
            self.open.append(str(a["id"]))
            self.sections[str(a["id"])] = []
        if "data-likelihood" in a:
            self.judgements.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for s in self.open:
            self.sections[s].append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def section_text(page: _Page, sid: str) -> str:
    return " ".join(" ".join(page.sections[sid]).split())


def _facts(kind: str, built: Built, view: CaseView) -> list[str]:
    """What each kind must show, taken from the case, the package and ATT&CK, not hard-coded."""
    inc = view.incidents[0]
    facts = [inc["id"], SERVER, TECHNIQUE]  # the C2 server is also the indicator matched
    if kind != "attribution":
        facts.append(AGENT)
    if kind in ("technical", "referral", "regulator"):
        facts.append(technique_name(TECHNIQUE))
    if kind in ("technical", "referral"):
        manifest = built.package.folder / "manifest.json"
        files = json.loads(manifest.read_text())["files"]
        facts += [built.package.manifest_sha256, built.package.key_fingerprint]
        facts += [f["sha256"] for f in files]
        facts += [f["source_sha256"] for f in files if f.get("source_sha256")]
    if kind in ("technical", "regulator"):
        facts.append(built.decision_id)
    if kind == "regulator":
        op = load_operator(built.operator)
        facts += [
            op.operator["name"],
            op.operator["identifier"],
            op.contact["phone"],
            "SCADA front-end",
        ]
    if kind == "attribution":
        facts += ["APT28 (G0007)", "roughly even chance", "TLP:AMBER"]
    return facts


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_html_report_has_its_sections_and_the_case_facts(
    kind: str, built: Built, view: CaseView
) -> None:
    operator = load_operator(built.operator) if kind == "regulator" else None
    html = render_html(kind, view, operator=operator)
    page = parse(html)
    assert set(SECTIONS[kind]) <= set(page.sections), set(SECTIONS[kind]) - set(page.sections)
    text = " ".join(" ".join(page.text).split())
    for fact in _facts(kind, built, view):
        assert fact in text, f"{kind}: {fact!r} missing"
    # Offline by construction: nothing that a browser or WeasyPrint would fetch.
    for tag, attrs in page.tags:
        assert tag not in ("link", "script", "img", "iframe", "object"), tag
        assert not any(k in ("src", "href") for k in attrs), (tag, attrs)
    assert "url(" not in html and "@import" not in html


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_pdf_report_pages_render_and_read_back(
    kind: str, built: Built, view: CaseView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMORI_STATE_URL", built.store_url)
    out = built.out / f"{kind}.pdf"
    args = [kind, built.case_id, "--format", "pdf", "-o", str(out)]
    if kind == "regulator":
        args += ["--operator", str(built.operator)]
    result = CliRunner().invoke(report_app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF-")
    pages = built.out / f"{kind}-page"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(out), str(pages)], check=True)
    pngs = sorted(built.out.glob(f"{kind}-page*.png"))
    info = subprocess.run(["pdfinfo", str(out)], check=True, capture_output=True, text=True).stdout
    assert len(pngs) == int(re.search(r"Pages:\s+(\d+)", info).group(1)) >= 1  # type: ignore[union-attr]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 1000 for p in pngs)
    text = subprocess.run(
        ["pdftotext", "-raw", str(out), "-"], check=True, capture_output=True, text=True
    ).stdout
    flat = " ".join(text.split())
    compact = re.sub(r"\s+", "", text)  # text wraps inside table cells
    for n, heading in enumerate(SECTIONS[kind].values(), 1):
        assert f"{n}. {heading}" in flat, f"{kind}: section {heading!r} missing from the PDF"
    for fact in _facts(kind, built, view):
        assert re.sub(r"\s+", "", fact) in compact, f"{kind}: {fact!r} missing from the PDF"


def test_attribution_statement_of_the_real_case_is_hedged(built: Built, view: CaseView) -> None:
    page = parse(render_html("attribution", view))
    assert "does not support attributing" in section_text(page, "judgement")
    by_subject = {j["data-subject"]: j for j in page.judgements}
    # APT28: two feeds, so moderate confidence; overlap alone caps it at roughly even chance.
    assert by_subject["APT28 (G0007)"]["data-likelihood"] == "roughly even chance"
    assert by_subject["APT28 (G0007)"]["data-confidence"] == "moderate"
    # APT29: one shared indicator from one feed, too weak to be stated at all.
    assert "APT29 (G0016)" not in by_subject
    claims = section_text(page, "claims")
    assert "published for the intrusion set tracked as APT28 (G0007)" in claims
    assert "tracked as APT29" not in claims  # named only as evidence against APT28
    assert "indicators of APT29 (G0016) were also seen" in claims
    assert "too weak to state" in section_text(page, "not-claimed")
    # A public channel gets no internal detail: not the own host, the case title or file paths.
    text = " ".join(page.text)
    assert AGENT not in text and view.title not in text and str(view.report_path) not in text


def test_without_evidence_package_or_intel_the_reports_say_so(built: Built) -> None:
    bare = from_report(built.report)
    bare = replace(bare, incidents=[{**i, "attribution": []} for i in bare.incidents])
    referral = parse(render_html("referral", bare))
    assert "No evidence package has been built" in section_text(referral, "evidence")
    statement = parse(render_html("attribution", bare))
    assert statement.judgements == []
    assert "does not support attributing" in section_text(statement, "judgement")
    assert "Nothing is claimed" in section_text(statement, "claims")
    technical = parse(render_html("technical", bare))
    assert "No response decisions are linked" in section_text(technical, "decisions")


def test_report_from_a_report_json_path(built: Built) -> None:
    out = built.out / "from-json.html"
    result = CliRunner().invoke(
        report_app, ["technical", str(built.report), "-f", "html", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = parse(out.read_text())
    incidents = [i["id"] for i in json.loads(built.report.read_text())["incidents"]]
    assert all(i in section_text(page, "summary") for i in incidents)


def test_regulator_report_needs_a_complete_operator_profile(built: Built, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.pdf"
    result = runner.invoke(report_app, ["regulator", str(built.report), "-o", str(out)])
    assert result.exit_code == 2 and "--operator" in result.output and not out.exists()
    partial = tmp_path / "op.yaml"
    partial.write_text("operator:\n  name: X\ncontact:\n  email: a@b.example\n")
    result = runner.invoke(
        report_app, ["regulator", str(built.report), "-o", str(out), "--operator", str(partial)]
    )
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert f"{partial}: operator profile is missing" in message
    for field in (
        "operator.sector",
        "operator.identifier",
        "contact.name",
        "contact.phone",
        "regulator.name",
    ):
        assert field in message
    assert "contact.email" not in message and not out.exists()
    with pytest.raises(ReportError, match="needs the operator profile"):
        render_html("regulator", from_report(built.report))


def test_pdf_rendering_fetches_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a URL smuggled into a page goes to our fetcher, which refuses it."""
    from mamori.cases.reports import pdf

    asked: list[str] = []
    original = pdf.refuse

    def spy(url: str) -> None:
        asked.append(url)
        original(url)

    monkeypatch.setattr(pdf, "refuse", spy)
    out = tmp_path / "x.pdf"
    pdf.write_pdf('<p>x</p><img src="http://192.0.2.1/logo.png">', out)
    assert asked == ["http://192.0.2.1/logo.png"] and out.read_bytes().startswith(b"%PDF-")
    with pytest.raises(ReportError, match="refuses to fetch"):
        original("https://example.org/font.woff")


def test_unknown_kind_and_format_are_refused(built: Built, tmp_path: Path) -> None:
    view = from_report(built.report)
    with pytest.raises(ReportError, match="unknown report kind"):
        render_html("press-release", view)
    with pytest.raises(ReportError, match="unknown format"):
        write_report("technical", view, "docx", tmp_path / "x.docx")
    result = CliRunner().invoke(
        report_app, ["technical", str(built.report), "-f", "docx", "-o", "x"]
    )
    assert result.exit_code == 2 and "--format" in result.output
    result = CliRunner().invoke(
        report_app,
        ["technical", "CASE-nope", "-o", str(tmp_path / "y.pdf")],
        env={"MAMORI_STATE_URL": built.store_url},
    )
    assert result.exit_code == 1 and "no case CASE-nope" in result.output


def test_assessment_command_writes_the_structured_record(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMORI_STATE_URL", built.store_url)
    out = tmp_path / "assessment.json"
    result = CliRunner().invoke(report_app, ["assessment", built.case_id, "-o", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["case"] == built.case_id and record["supports_attribution"] is False
    hyps = {h["subject"]: h for h in record["hypotheses"]}
    assert set(hyps) == {"APT28", "APT29"}
    assert hyps["APT28"]["external_id"] == "G0007"
    assert (hyps["APT28"]["likelihood"], hyps["APT28"]["confidence"]) == (
        "roughly even chance",
        "moderate",
    )
    assert hyps["APT29"]["confidence"] == "low"
    assert all(h["probability"] <= 0.5 for h in record["hypotheses"])
    assert {e["source"] for e in hyps["APT28"]["evidence_for"]} == {"feed-a", "feed-b"}
    assert any("APT29 (G0016)" in x for x in hyps["APT28"]["evidence_against"])
    assert any("Country of the infrastructure not assessed" in g for g in record["gaps"])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_minimal_incidents_render(kind: str, report: Path, tmp_path: Path) -> None:
    """Incidents with only the fields docs/report.md requires (no technique names, no
    attribution, no alerts) still give every section; nothing assumes a richer report."""
    data = json.loads(report.read_text())
    for inc in data["incidents"]:
        inc.pop("alerts")
    report.write_text(json.dumps(data))
    operator = tmp_path / "op.yaml"
    operator.write_text(OPERATOR_YAML)
    page = parse(render_html(kind, from_report(report), operator=load_operator(operator)))
    assert set(SECTIONS[kind]) <= set(page.sections)
    text = " ".join(" ".join(page.text).split())
    assert all(i["id"] in text for i in data["incidents"])
