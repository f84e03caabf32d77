"""What the REST routes answer, beyond who may call them: runs with progress and reports,
incidents and alerts, decisions approved through the ledger, evidence zips, the hunting fence,
CSRF on the API, users and partners."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mamori.respond.ledger import Ledger
from mamori.web import auth
from web.conftest import PASSWORD, Accounts
from web.console.conftest import SSHGUESS, wait_run


def test_run_from_a_server_capture_reports_progress_and_its_report(
    client: TestClient, accounts: Accounts, data_dir: Path
) -> None:
    h = accounts.headers("analyst")
    capture = data_dir / SSHGUESS
    r = client.post("/api/runs", json={"captures": [str(capture)]}, headers=h)
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["state"] == "running" and run["by"] == "analyst"
    wait_run(client.app.state.runs, run["id"])  # type: ignore[attr-defined]
    done = client.get(f"/api/runs/{run['id']}", headers=h).json()
    assert done["state"] == "done"
    assert done["bytes_read"] == done["bytes_total"] == capture.stat().st_size
    report = client.get(done["report_url"], headers=h).json()
    assert [i["id"] for i in report["incidents"]] == [
        i["id"]
        for i in client.get("/api/incidents", params={"run": run["id"]}, headers=h).json()["items"]
    ]
    assert run["id"] in [x["id"] for x in client.get("/api/runs", headers=h).json()]


@pytest.mark.parametrize(
    ("captures", "message"),
    [(["/etc/passwd"], "outside the capture folders"), (["/nope.pcap"], "no such file")],
)
def test_run_refuses_captures_it_may_not_read(
    client: TestClient, accounts: Accounts, captures: list[str], message: str
) -> None:
    r = client.post("/api/runs", json={"captures": captures}, headers=accounts.headers("analyst"))
    assert r.status_code == 400 and message in r.json()["detail"]


def test_uploaded_capture_runs(client: TestClient, accounts: Accounts, data_dir: Path) -> None:
    h = accounts.headers("analyst")
    files = {"capture": ("../../evil name.pcap", (data_dir / SSHGUESS).read_bytes())}
    r = client.post("/api/runs/upload", files=files, headers=h)
    assert r.status_code == 202, r.text
    (path,) = r.json()["captures"]
    assert Path(path).name == "evil name.pcap"  # no path from the client survives
    assert Path(path).is_relative_to(client.app.state.runs.folder.parent)  # type: ignore[attr-defined]
    wait_run(client.app.state.runs, r.json()["id"])  # type: ignore[attr-defined]
    empty = client.post("/api/runs/upload", files={"capture": ("e.pcap", b"")}, headers=h)
    assert empty.status_code == 400


def test_unknown_run_incident_case_decision_are_404(client: TestClient, accounts: Accounts) -> None:
    h = accounts.headers("admin")
    for path in (
        "/api/runs/nope",
        "/api/runs/nope/report",
        "/api/incidents/INC-nope",
        "/api/incidents?run=nope",
        "/api/cases/CASE-nope",
        "/api/decisions/d-nope",
        "/api/cases/CASE-nope/evidence/0.zip",
    ):
        assert client.get(path, headers=h).status_code == 404, path


def test_incidents_and_alerts_filter_and_page(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    h = accounts.headers("analyst")
    body = client.get("/api/incidents", headers=h).json()
    assert body["total"] == 1 == len(body["items"])
    inc = body["items"][0]
    assert inc["id"] == world["incident"] and inc["run"] == world["run"]
    assert client.get("/api/incidents?severity=critical", headers=h).json()["total"] == 0
    assert client.get("/api/incidents?offset=1", headers=h).json()["items"] == []
    assert client.get("/api/incidents?limit=0", headers=h).status_code == 422
    detail = client.get(f"/api/incidents/{world['incident']}", headers=h).json()
    assert detail["alerts"] and detail["entities"]["attackers"]
    alerts = client.get("/api/alerts", params={"incident": world["incident"]}, headers=h).json()
    assert alerts["total"] == len(detail["alerts"])
    detector = alerts["items"][0]["detector"]
    assert client.get("/api/alerts", params={"detector": detector}, headers=h).json()["total"] >= 1
    assert client.get("/api/alerts", params={"detector": "no-such"}, headers=h).json()["total"] == 0


def test_approve_and_reject_go_through_the_ledger(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    h = accounts.headers("responder")
    r = client.post(f"/api/decisions/{world['decision']}/approve", headers=h)
    assert r.status_code == 200
    entry = Ledger(client.app.state.store).get(world["decision"])  # type: ignore[attr-defined]
    assert str(entry.state) == "approved" and entry.by == "responder"
    again = client.post(f"/api/decisions/{world['decision']}/reject", headers=h)
    assert again.status_code == 400 and "only pending" in again.json()["detail"]
    pending = client.get("/api/decisions?state=pending", headers=h).json()
    assert world["decision"] not in [d["id"] for d in pending]


def test_case_notes_close_and_evidence_zip(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    h = accounts.headers("analyst")
    case = world["case"]
    assert (
        client.post(f"/api/cases/{case}/notes", json={"text": "beacon"}, headers=h).status_code
        == 201
    )
    r = client.post(f"/api/cases/{case}/evidence", headers=h)
    assert r.status_code == 201, r.text
    built = r.json()
    z = client.get(built["zip_url"], headers=h)
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert any(n.endswith("manifest.json") for n in names), names
    listed = client.get(f"/api/cases/{case}/evidence", headers=h).json()
    assert listed[-1]["manifest_sha256"] == built["manifest_sha256"]
    closed = client.post(f"/api/cases/{case}/close", json={"reason": "contained"}, headers=h).json()
    assert closed["status"] == "closed"
    got = client.get(f"/api/cases/{case}", headers=h).json()
    assert got["custody_ok"] and [n["text"] for n in got["notes"]] == ["beacon"]
    assert [c["id"] for c in client.get("/api/cases?status=closed", headers=h).json()] == [case]


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SELECT 1; SELECT 2",
        "ATTACH '/tmp/other.db'",
        "SET threads = 1",
        "PRAGMA version",
        "CREATE TABLE x AS SELECT 1",
        "DELETE FROM conn",
        "SELEC 1",
    ],
)
def test_hunt_refuses_anything_but_one_select(
    client: TestClient, accounts: Accounts, world: dict[str, str], sql: str
) -> None:
    r = client.post("/api/hunt", json={"sql": sql}, headers=accounts.headers("analyst"))
    assert r.status_code == 400, r.text


def test_hunt_reads_only_the_lake(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    r = client.post(
        "/api/hunt",
        json={"sql": "SELECT * FROM read_csv('/etc/passwd')"},
        headers=accounts.headers("analyst"),
    )
    assert r.status_code == 400


def test_hunt_answers_and_limits_rows(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    h = accounts.headers("analyst")
    n = client.post("/api/hunt", json={"sql": "SELECT count(*) AS n FROM conn"}, headers=h).json()
    assert n["columns"] == ["n"] and n["run"] == world["run"]
    total = n["rows"][0][0]
    assert total > 2
    sql = "WITH c AS (SELECT uid, ts FROM conn) SELECT * FROM c ORDER BY ts"
    r = client.post("/api/hunt", json={"sql": sql, "limit": 2}, headers=h).json()
    assert len(r["rows"]) == 2 and r["truncated"] is True
    r = client.post("/api/hunt", json={"sql": sql, "limit": total}, headers=h).json()
    assert len(r["rows"]) == total and r["truncated"] is False


def _session(client: TestClient, name: str) -> str:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200
    return str(r.json()["csrf_token"])


def test_cookie_post_to_the_api_needs_the_csrf_token(
    client: TestClient, accounts: Accounts, world: dict[str, str]
) -> None:
    csrf = _session(client, "responder")
    path = f"/api/decisions/{world['decision']}/approve"
    assert client.post(path).status_code == 403
    entry = Ledger(client.app.state.store).get(world["decision"])  # type: ignore[attr-defined]
    assert str(entry.state) == "pending"  # refused before the ledger was touched
    assert client.post(path, headers={auth.CSRF_HEADER: csrf}).status_code == 200


def test_partner_accounts_have_no_console(client: TestClient, accounts: Accounts) -> None:
    r = client.post("/api/auth/login", json={"username": "partner", "password": PASSWORD})
    assert r.status_code == 403
    assert auth.SESSION_COOKIE not in client.cookies


def test_users_and_partners_by_api(client: TestClient, accounts: Accounts) -> None:
    h = accounts.headers("admin")
    body = {"name": "dana", "role": "responder", "password": "pw-dana"}
    assert client.post("/api/users", json=body, headers=h).status_code == 201
    assert client.post("/api/users", json=body, headers=h).status_code == 400
    token = client.post("/api/users/dana/tokens", json={}, headers=h).json()["token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["name"] == "dana" and me["role"] == "responder"
    users = {u["name"]: u for u in client.get("/api/users", headers=h).json()}
    assert users["dana"]["tokens"] == 1 and "password" not in users["dana"]
    assert client.delete("/api/users/admin", headers=h).status_code == 400
    assert client.delete("/api/users/ghost", headers=h).status_code == 404

    p: dict[str, Any] = client.post(
        "/api/partners", json={"name": "acme", "collections": ["shared"]}, headers=h
    ).json()
    assert p["secret"] and p["collections"][0]["alias"] == "shared"
    listed = client.get("/api/partners", headers=h).json()
    assert all("secret" not in x and "remote_password" not in x for x in listed)
    assert client.post("/api/partners/acme/revoke", headers=h).json()["revoked"]
    assert client.post("/api/partners/acme/revoke", headers=h).status_code == 404


def test_intel_import_and_list(client: TestClient, accounts: Accounts) -> None:
    feed = {"feed": ("bad.txt", b"203.0.113.9\nevil.example\n# comment\n")}
    r = client.post("/api/intel/import", files=feed, headers=accounts.headers("responder"))
    assert r.status_code == 201, r.text
    assert r.json()["indicators"] == 2
    got = client.get("/api/intel", params={"source": "bad"}, headers=accounts.headers("analyst"))
    values = {i["value"] for i in got.json()["items"]}
    assert {"203.0.113.9", "evil.example"} <= values
    bad = client.post(
        "/api/intel/import",
        files=feed,
        data={"tlp": "ultraviolet"},
        headers=accounts.headers("responder"),
    )
    assert bad.status_code == 400


@pytest.mark.parametrize("bad", ["%00", "a%00b", "..", ".hidden", "a%2Fb"])
def test_odd_run_ids_are_404_not_500(client: TestClient, accounts: Accounts, bad: str) -> None:
    h = accounts.headers("analyst")
    assert client.get(f"/api/incidents?run={bad}", headers=h).status_code == 404
    assert client.get(f"/api/runs/{bad}", headers=h).status_code == 404


@pytest.mark.parametrize("path", ["/api/intel", "/api/incidents", "/api/alerts"])
def test_huge_offsets_are_422_not_500(client: TestClient, accounts: Accounts, path: str) -> None:
    r = client.get(path, params={"offset": 2**63}, headers=accounts.headers("analyst"))
    assert r.status_code == 422
