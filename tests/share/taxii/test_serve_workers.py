"""``mamori serve --workers 2`` (:func:`mamori.web.cli.serve`): several processes serve TAXII from one state database, and each
of them sees a revocation at once (no process keeps serving a credential it remembered)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

import mamori
from mamori.share import partners
from mamori.share.taxii.ingest import publish
from mamori.share.tlp import Tlp
from mamori.store import Store
from support.taxii_peers import TAXII, free_port

OBJECTS = "/taxii2/mamori/collections/intel/objects/"


def _get(base: str, path: str, auth: tuple[str, str], **params: str) -> httpx.Response:
    # A new connection per request, so the kernel hands requests to either worker.
    return httpx.get(
        base + path, auth=auth, params=params, headers={"Accept": TAXII, "Connection": "close"}
    )


def test_workers_page_the_collection_and_all_see_a_revocation(tmp_path, examples):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store(url)
    secret = partners.add(store, "cert-w", ["intel"], can_read=True)
    apt1 = examples("threat-reports/apt1.json")
    publish(store, "intel", apt1, Tlp.GREEN)
    store.close()

    port = free_port()
    src = str(Path(mamori.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "MAMORI_STATE_URL": url,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
    }
    cli = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mamori.cli import app; app()", *cli],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    auth = ("cert-w", secret)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "mamori serve --workers 2 exited"
            try:
                if _get(base, "/taxii2/", auth).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mamori serve --workers 2 did not come up"
            time.sleep(0.2)

        for _ in range(3):  # every worker pages the whole collection, each object once
            ids: list[str] = []
            params = {"limit": "7"}
            while True:
                r = _get(base, OBJECTS, auth, **params)
                assert r.status_code == 200, r.text
                body = r.json()
                ids += [o["id"] for o in body.get("objects", [])]
                if not body["more"]:
                    break
                params["next"] = body["next"]
            assert sorted(ids) == sorted(o["id"] for o in apt1)

        partners.revoke(Store(url), "cert-w")
        refused = [_get(base, OBJECTS, auth, limit="5").status_code for _ in range(20)]
        assert refused == [401] * 20
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_worker_listener_is_tcp_and_keeps_a_deep_queue():
    """What a spawned worker receives: a TCP socket (so asyncio sets TCP_NODELAY on what it
    accepts) whose queue holds a burst of connections although asyncio asks listen(1)."""
    import socket
    from multiprocessing.reduction import ForkingPickler

    from mamori.web.cli import _Listener

    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    sent = _Listener(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    got = ForkingPickler.loads(ForkingPickler.dumps(sent))
    assert type(got) is _Listener and got.proto == socket.IPPROTO_TCP
    got.listen(1)
    clients = []
    try:
        for _ in range(16):  # none accepted: with a queue of 1 the third would not connect
            c = socket.create_connection(got.getsockname(), timeout=2)
            clients.append(c)
        assert len(clients) == 16
    finally:
        for c in clients:
            c.close()
        got.close()
        sent.close()


def test_cli_serve_mount_still_runs_one_process(monkeypatch):
    """``mamori serve`` without ``--workers`` runs one uvicorn in this process."""
    import uvicorn
    from typer.testing import CliRunner

    from mamori.cli import app

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    monkeypatch.setattr("mamori.web.app.create_app", lambda *a, **k: "app")
    result = CliRunner().invoke(app, ["serve", "--port", "18123"])
    assert result.exit_code == 0, result.output
    assert [(c["host"], c["port"]) for c in calls] == [("127.0.0.1", 18123)]


def test_cli_serve_workers_option_reaches_the_workers_path(monkeypatch):
    from typer.testing import CliRunner

    from mamori.cli import app

    calls = []
    monkeypatch.setattr("mamori.web.cli.serve_workers", lambda *a, **k: calls.append((a, k)))
    result = CliRunner().invoke(app, ["serve", "--port", "18124", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert [a for a, _ in calls] == [("127.0.0.1", 18124, 3)]
    bad = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert bad.exit_code == 2
