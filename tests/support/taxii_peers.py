"""TAXII peers on loopback for tests and benchmarks: our app under uvicorn (in a thread) and the
OASIS reference server medallion (a subprocess over its memory backend).

Both bind 127.0.0.1 on a free port and are stopped by their context manager.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

TAXII = "application/taxii+json;version=2.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, auth: tuple[str, str] | None, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-2000:]}")
        try:
            r = httpx.get(url, auth=auth, headers={"Accept": TAXII}, timeout=2)
            if r.status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in 30 s")


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app on loopback in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


MEDALLION_USER = ("mamori", "medallion-test-password")
MEDALLION_ROOT = "api1"
MEDALLION_COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"


def _version(obj: dict[str, Any], added: str) -> str:
    return str(obj.get("modified") or obj.get("created") or added)


def medallion_data(
    objects: Sequence[dict[str, Any]], start: datetime | None = None
) -> dict[str, Any]:
    """A memory-backend data file: one API root, one read/write collection holding ``objects``
    (each with the manifest entry medallion needs, one microsecond apart)."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    manifest = []
    for i, obj in enumerate(objects):
        added = (start + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        manifest.append(
            {
                "id": obj["id"],
                "date_added": added,
                "version": _version(obj, added),
                "media_type": "application/stix+json;version=2.1",
            }
        )
    return {
        "/discovery": {
            "title": "medallion (OASIS reference TAXII 2.1 server)",
            "description": "loopback test peer",
            "default": f"/{MEDALLION_ROOT}/",
            "api_roots": [f"/{MEDALLION_ROOT}/"],
        },
        MEDALLION_ROOT: {
            "information": {
                "title": "test root",
                "description": "loopback test peer",
                "versions": [TAXII],
                "max_content_length": 100 * 1024 * 1024,
            },
            "status": [],
            "collections": [
                {
                    "id": MEDALLION_COLLECTION,
                    "title": "shared",
                    "description": "loopback test collection",
                    "can_read": True,
                    "can_write": True,
                    "media_types": ["application/stix+json;version=2.1"],
                    "objects": [dict(o) for o in objects],
                    "manifest": manifest,
                }
            ],
        },
    }


@contextmanager
def medallion_server(
    workdir: Path, objects: Sequence[dict[str, Any]] = (), max_page_size: int = 100
) -> Iterator[str]:
    """medallion on loopback over its memory backend; yields its API root URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    data = workdir / f"medallion-data-{tag}.json"
    data.write_text(json.dumps(medallion_data(objects)), encoding="utf-8")
    config = workdir / f"medallion-config-{tag}.json"
    config.write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(data),
                    "session_timeout": 600,
                },
                "users": {MEDALLION_USER[0]: MEDALLION_USER[1]},
                "taxii": {"max_page_size": max_page_size},
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port",
         str(port), "--log-level", "ERROR", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/taxii2/", MEDALLION_USER, proc)
        yield f"{base}/{MEDALLION_ROOT}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
