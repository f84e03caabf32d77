"""Patrol runs the console started or can see: each one a folder ``RUNS/<id>/`` holding what
``mamori patrol --out`` writes (``report.json``, ``report.html``, ``lake/``) and a ``status.json``.

Why folders and not a table: a run's output *is* the patrol's output folder, the contract every
later stage already reads (``respond plan REPORT``, ``case open REPORT``); the console only keeps
them side by side and reads the newest ones. Starting a run calls the same stage functions as the
CLI (``mamori.patrol.patrol``, then ``Ledger.plan`` when a policy is configured), in a thread, and
publishes what came of it to the event broker.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mamori.web.events import Broker


class RunError(ValueError):
    """A run that cannot be started (no such capture, outside the allowed folders)."""


@dataclass(frozen=True)
class Run:
    id: str
    folder: Path
    status: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.status.get("state", "unknown"))

    @property
    def report_path(self) -> Path:
        return self.folder / "report.json"

    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.report_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
        except (OSError, json.JSONDecodeError):
            return None


class Runs:
    """The runs folder; ``start`` is the only writer."""

    def __init__(
        self,
        folder: Path,
        broker: Broker,
        captures: tuple[Path, ...] = (),
        after: Callable[[Run, dict[str, Any]], None] | None = None,
    ) -> None:
        self.folder = folder
        self.broker = broker
        self.captures = tuple(p.resolve() for p in captures)
        self.after = after  # called with each finished run's report (plans decisions)
        self._cache: dict[Path, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._merge: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------------------ reading

    def all(self) -> list[Run]:
        """Every run, newest first."""
        if not self.folder.is_dir():
            return []
        runs = [self.get(p.name) for p in self.folder.iterdir() if (p / "status.json").is_file()]
        found = [r for r in runs if r is not None]
        return sorted(found, key=lambda r: str(r.status.get("started", "")), reverse=True)

    def get(self, run_id: str) -> Run | None:
        if not run_id or "/" in run_id or run_id.startswith("."):
            return None
        folder = self.folder / run_id
        try:
            status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # ValueError: bad JSON, or a NUL byte in the id
            return None
        return Run(run_id, folder, status)

    def report(self, run: Run) -> dict[str, Any] | None:
        """A run's report, parsed once per change of the file (pages read it on every request)."""
        path = run.report_path
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == mtime:
                return hit[1]
        data = run.report()
        with self._lock:
            self._cache[path] = (mtime, data)
        return data

    def finished(self) -> Iterator[tuple[Run, dict[str, Any]]]:
        """Finished runs with their reports, newest first."""
        for run in self.all():
            if run.state == "done" and (report := self.report(run)) is not None:
                yield run, report

    def incidents(self) -> list[tuple[Run, dict[str, Any]]]:
        """Every incident seen, once (the newest run's copy of an id wins), worst first.

        Merged and sorted once per change of the finished runs' reports, not per request: with
        10,000 incidents the merge costs ~100 ms, and every page and API list reads it."""
        return self._merged()[0]

    def incident(self, ident: str) -> tuple[Run, dict[str, Any]] | None:
        return self._merged()[1].get(ident)

    def _merged(
        self,
    ) -> tuple[list[tuple[Run, dict[str, Any]]], dict[str, tuple[Run, dict[str, Any]]]]:
        done = list(self.finished())
        # The parsed reports are held by the cache, so their ids cannot be reused while it lives.
        key = tuple((run.id, run.state, id(report)) for run, report in done)
        with self._lock:
            if self._merge is not None and self._merge[0] == key:
                return self._merge[2], self._merge[3]
        seen: dict[str, tuple[Run, dict[str, Any]]] = {}
        for run, report in done:
            for inc in report.get("incidents", []):
                seen.setdefault(inc["id"], (run, inc))
        rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        ordered = sorted(
            seen.values(),
            key=lambda ri: (rank.get(ri[1].get("severity", "low"), 4), ri[1].get("first_seen", "")),
        )
        with self._lock:
            self._merge = (key, [r for _, r in done], ordered, seen)
        return ordered, seen

    # ------------------------------------------------------------------------------ starting

    def check_capture(self, text: str) -> Path:
        """A server-side capture the console may read: an existing file under an allowed folder."""
        path = Path(text.strip()).expanduser()
        if not text.strip():
            raise RunError("name a capture file on this server")
        try:
            path = path.resolve(strict=True)
        except (OSError, ValueError):  # ValueError: a NUL byte in the name
            raise RunError(f"{text}: no such file on this server") from None
        if not path.is_file():
            raise RunError(f"{text}: not a file")
        if self.captures and not any(path.is_relative_to(root) for root in self.captures):
            allowed = ", ".join(str(c) for c in self.captures)
            raise RunError(f"{text}: outside the capture folders this console reads ({allowed})")
        return path

    def start(self, captures: list[Path], by: str) -> Run:
        """Start a patrol over ``captures`` in a thread; returns the run (state ``running``)."""
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        folder = self.folder / run_id
        folder.mkdir(parents=True)
        status = {
            "state": "running",
            "started": datetime.now(UTC).isoformat(),
            "by": by,
            "captures": [str(c) for c in captures],
            "packets": 0,
        }
        _write_status(folder, status)
        run = Run(run_id, folder, status)
        self.broker.publish(
            "run", {"id": run_id, "state": "running", "captures": status["captures"]}
        )
        threading.Thread(target=self._work, args=(run, captures), daemon=True).start()
        return run

    def _work(self, run: Run, captures: list[Path]) -> None:
        from mamori.config import load_settings
        from mamori.patrol import patrol

        status = dict(run.status)
        status["bytes_total"] = sum(c.stat().st_size for c in captures if c.is_file())
        status["bytes_read"] = 0
        _write_status(run.folder, status)
        read: dict[Path, int] = {}
        last = [0.0]
        lock = threading.Lock()

        def progress(path: Path, n: int) -> None:
            # Bytes of each capture read so far (the API's progress); written at most twice a second.
            with lock:
                read[path] = max(n, read.get(path, 0))
                if time.monotonic() - last[0] >= 0.5:
                    last[0] = time.monotonic()
                    status["bytes_read"] = sum(read.values())
                    _write_status(run.folder, status)

        try:
            result = patrol(
                captures, run.folder / "lake", run.folder, load_settings(None), progress=progress
            )
            status["bytes_read"] = status["bytes_total"]
            report = result.report
            status |= {
                "state": "done",
                "finished": datetime.now(UTC).isoformat(),
                "alerts": result.alerts.height,
                "incidents": len(result.incidents),
            }
        except Exception as exc:  # a run that fails says why on the overview; the server goes on
            status |= {"state": "failed", "finished": datetime.now(UTC).isoformat()}
            status["error"] = f"{type(exc).__name__}: {exc}"
            # Events first, then the status file: whoever sees the run ended can also find what
            # was published about it (the other order left a window under load).
            self.broker.publish("run", {"id": run.id, "state": "failed", "error": status["error"]})
            _write_status(run.folder, status)
            return
        # Done: the status file first, so what the events announce (incidents, alerts) can be read.
        _write_status(run.folder, status)
        for inc in report.get("incidents", []):  # type: ignore[union-attr]
            for alert in inc.get("alerts", []):
                self.broker.publish("alert", alert_row(alert, inc["id"]))
            self.broker.publish("incident", incident_row(inc))
        self.broker.publish(
            "run",
            {
                "id": run.id,
                "state": "done",
                "alerts": status["alerts"],
                "incidents": status["incidents"],
            },
        )
        if self.after is not None:
            try:
                self.after(Run(run.id, run.folder, status), report)  # type: ignore[arg-type]
            except Exception as exc:  # planning failed: say so on the run, keep its report
                status["plan_error"] = f"{type(exc).__name__}: {exc}"
                _write_status(run.folder, status)


def alert_row(alert: dict[str, Any], incident: str) -> dict[str, Any]:
    """The fields of an alert a console table shows (also the ``alert`` event's data)."""
    return {
        "incident": incident,
        "detector": alert.get("detector"),
        "severity": alert.get("severity"),
        "confidence": alert.get("confidence"),
        "summary": alert.get("summary"),
        "src": alert.get("src"),
        "dst": alert.get("dst"),
        "first_seen": alert.get("first_seen"),
        "last_seen": alert.get("last_seen"),
        "techniques": alert.get("techniques", []),
    }


def incident_row(inc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": inc["id"],
        "title": inc.get("title"),
        "severity": inc.get("severity"),
        "confidence": inc.get("confidence"),
        "first_seen": inc.get("first_seen"),
        "last_seen": inc.get("last_seen"),
        "alerts": len(inc.get("alerts", [])),
    }


def _write_status(folder: Path, status: dict[str, Any]) -> None:
    tmp = folder / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=1), encoding="utf-8")
    tmp.replace(folder / "status.json")
