"""The console's pages: each handler checks the caller's role, reads through a stage function and
renders a template. No logic of a stage lives here (STYLE.md: the doors are thin)."""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates

from mamori.web import auth
from mamori.web.auth import Role, User
from mamori.web.console import charts, work
from mamori.web.console.runs import RunError, Runs, alert_row
from mamori.web.events import stream

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
LOGIN_CSRF = "mamori_login_csrf"
SEVERITIES = ("critical", "high", "medium", "low")

router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------------- who is it


class _Redirect(HTTPException):
    def __init__(self, to: str) -> None:
        super().__init__(303, "log in first", headers={"Location": to})


def page_user(role: Role) -> Callable[[Request], Coroutine[Any, Any, User]]:
    """The caller of a page: unauthenticated (or expired) goes to the login form, a role too small
    gets 403; state-changing forms are CSRF-checked by ``auth.optional_user``."""

    async def check(request: Request) -> User:
        try:
            user = await auth.optional_user(request)
        except HTTPException as exc:
            if exc.status_code != 401:
                raise
            user = None
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise _Redirect("/login?next=" + quote(target, safe=""))
        if not auth.includes(user.role, role):
            raise HTTPException(
                403, f"this page needs the {role.value} role; {user.name} is {user.role}"
            )
        return user

    return check


analyst = page_user(Role.ANALYST)
responder = page_user(Role.RESPONDER)
Analyst = Annotated[User, Depends(analyst)]
Responder = Annotated[User, Depends(responder)]


def _runs(request: Request) -> Runs:
    return request.app.state.runs  # type: ignore[no-any-return]


def render(
    request: Request, template: str, user: User | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    ctx |= {
        "user": user,
        "csrf": getattr(request.state, "csrf", ""),
        "path": request.url.path,
        "can_respond": user is not None and auth.includes(user.role, Role.RESPONDER),
        "short_paths": lambda paths: _short_paths(request, paths),
    }
    return TEMPLATES.TemplateResponse(request, template, ctx, status_code=status)


def _short_paths(request: Request, paths: list[str]) -> str:
    """Captures named relative to the capture folder they are under (the folder is on the page)."""
    roots = request.app.state.runs.captures
    out = []
    for text in paths:
        p = Path(text)
        root = next((r for r in roots if p.is_relative_to(r)), None)
        out.append(str(p.relative_to(root)) if root else text)
    return ", ".join(out)


# ------------------------------------------------------------------------------------- login


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no //host): an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str | None = None, error: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(32)
    resp = render(request, "login.html", None, next=_safe_next(next), login_csrf=token, error=error)
    resp.set_cookie(
        LOGIN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        secure=auth.settings(request).secure_cookies,
        path="/login",
    )
    return resp


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    # A login form is CSRF-protected too (login CSRF logs a victim into the attacker's account):
    # the form's token must match the cookie set with it (double submit, SameSite=Strict).
    cookie = request.cookies.get(LOGIN_CSRF, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_error(request, next, "The form expired; please try again.", 403)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    try:
        auth.login(request, resp, username, password)
    except HTTPException as exc:
        message = {
            429: "Too many failed logins; wait a few minutes.",
            401: "Wrong user name or password.",
        }.get(exc.status_code, str(exc.detail))
        return _login_error(request, next, message, exc.status_code)
    resp.delete_cookie(LOGIN_CSRF, path="/login")
    return resp


def _login_error(request: Request, next: str, message: str, status: int) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(32)
    resp = render(
        request, "login.html", None, status, next=_safe_next(next), login_csrf=token, error=message
    )
    resp.set_cookie(
        LOGIN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=auth.settings(request).secure_cookies,
    )
    return resp


@router.post("/logout")
def logout(request: Request, user: Analyst) -> Response:
    resp = RedirectResponse("/login", status_code=303)
    auth.logout(request, resp)
    return resp


# ---------------------------------------------------------------------------------- overview


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, user: Analyst) -> HTMLResponse:
    runs = _runs(request)
    all_runs = runs.all()
    incidents = runs.incidents()
    by_sev = Counter(inc.get("severity", "low") for _, inc in incidents)
    latest = next(runs.finished(), None)
    traffic_chart = alert_chart = ""
    top_sources: list[dict[str, Any]] = []
    top_targets: list[tuple[str, int]] = []
    if latest is not None:
        report = latest[1]
        series = report.get("traffic", {}).get("series", [])
        traffic_chart = charts.bars(
            [(p["t"], p["connections"]) for p in series], "Connections over time (latest run)"
        )
        alert_chart = charts.bars(
            _alert_series(report.get("alert_timeline", [])),
            "Alerts over time (latest run)",
            colour="#c0392b",
        )
        top_sources = report.get("traffic", {}).get("top_sources", [])[:10]
    attackers: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    for _, inc in incidents:
        for alert in inc.get("alerts", []):
            if alert.get("src"):
                attackers[alert["src"]] += 1
            if alert.get("dst"):
                targets[alert["dst"]] += 1
    top_targets = targets.most_common(10)
    pending = _pending_count(request)
    return render(
        request,
        "overview.html",
        user,
        runs=all_runs[:10],
        incidents=[inc for _, inc in incidents[:20]],
        by_sev={s: by_sev.get(s, 0) for s in SEVERITIES},
        severity_chart=charts.severity_bar(dict(by_sev)),
        traffic_chart=traffic_chart,
        alert_chart=alert_chart,
        top_attackers=attackers.most_common(10),
        top_targets=top_targets,
        top_sources=top_sources,
        pending=pending,
        capture_roots=runs.captures,
    )


def _alert_series(timeline: list[dict[str, Any]], buckets: int = 48) -> list[tuple[str, float]]:
    times = sorted(datetime.fromisoformat(a["t"]) for a in timeline if a.get("t"))
    if not times:
        return []
    lo, hi = times[0], times[-1]
    span = max((hi - lo).total_seconds(), 1.0)
    step = span / buckets
    counts = [0] * buckets
    for t in times:
        counts[min(int((t - lo).total_seconds() / step), buckets - 1)] += 1
    return [
        (datetime.fromtimestamp(lo.timestamp() + n * step, UTC).isoformat(), float(c))
        for n, c in enumerate(counts)
    ]


def _pending_count(request: Request) -> int:
    from mamori.respond.decision import State
    from mamori.respond.ledger import Ledger

    return len(Ledger(request.app.state.store).list(State.pending))


@router.post("/runs")
def start_run(request: Request, user: Analyst, capture: Annotated[str, Form()] = "") -> Response:
    runs = _runs(request)
    try:
        path = runs.check_capture(capture)
    except RunError as exc:
        return _flash_back(request, user, str(exc))
    run = runs.start([path], by=user.name)
    return RedirectResponse(f"/?run={run.id}", status_code=303)


def _flash_back(request: Request, user: User, message: str) -> HTMLResponse:
    return render(request, "error.html", user, 400, message=message, back="/")


@router.get("/runs/{run_id}/report.html")
def run_report(run_id: str, request: Request, user: Analyst) -> Response:
    run = _runs(request).get(run_id)
    if run is None or not (run.folder / "report.html").is_file():
        raise HTTPException(404, f"no report for run {run_id}")
    return FileResponse(run.folder / "report.html", media_type="text/html")


# --------------------------------------------------------------------------------- incidents


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, user: Analyst) -> HTMLResponse:
    return render(
        request, "incidents.html", user, incidents=[inc for _, inc in _runs(request).incidents()]
    )


@router.get("/incidents/{ident}", response_class=HTMLResponse)
def incident_page(ident: str, request: Request, user: Analyst) -> HTMLResponse:
    from mamori.correlate.attack import tactics_of, technique_name
    from mamori.respond.ledger import Ledger

    found = _runs(request).incident(ident)
    if found is None:
        raise HTTPException(404, f"no incident {ident}")
    run, inc = found
    techniques = [
        {"id": t, "name": technique_name(t), "tactics": tactics_of(t)}
        for t in inc.get("techniques", [])
    ]
    timeline = sorted(
        (
            {"t": a.get("first_seen"), "end": a.get("last_seen"), **alert_row(a, ident)}
            | {"count": a.get("count"), "evidence": a.get("evidence", {})}
            for a in inc.get("alerts", [])
        ),
        key=lambda a: a["t"] or "",
    )
    decisions = [e for e in Ledger(request.app.state.store).list() if e.decision.incident == ident]
    return render(
        request,
        "incident.html",
        user,
        inc=inc,
        run=run,
        techniques=techniques,
        timeline=timeline,
        graph=charts.entity_graph(inc),
        decisions=decisions,
        cases=[c for c in _cases(request) if ident in c.incident_ids],
    )


# ------------------------------------------------------------------------------------ alerts


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    user: Analyst,
    detector: str = "",
    severity: str = "",
    since: str = "",
    until: str = "",
) -> HTMLResponse:
    rows = [
        alert_row(a, inc["id"])
        for _, inc in _runs(request).incidents()
        for a in inc.get("alerts", [])
    ]
    detectors = sorted({r["detector"] for r in rows if r["detector"]})
    problems: list[str] = []
    lo, hi = _when(since, "since", problems), _when(until, "until", problems)
    if detector:
        rows = [r for r in rows if r["detector"] == detector]
    if severity in SEVERITIES:
        rows = [r for r in rows if r["severity"] == severity]
    if lo is not None:
        rows = [r for r in rows if r["last_seen"] and _at(r["last_seen"]) >= lo]
    if hi is not None:
        rows = [r for r in rows if r["first_seen"] and _at(r["first_seen"]) <= hi]
    rows.sort(key=lambda r: r["first_seen"] or "", reverse=True)
    return render(
        request,
        "alerts.html",
        user,
        alerts=rows,
        detectors=detectors,
        severities=SEVERITIES,
        f={"detector": detector, "severity": severity, "since": since, "until": until},
        problems=problems,
    )


def _at(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _when(text: str, name: str, problems: list[str]) -> datetime | None:
    if not text.strip():
        return None
    try:
        return _at(text.strip())
    except ValueError:
        problems.append(f"{name}: {text!r} is not a date and time (use 2015-03-30T14:44)")
        return None


# --------------------------------------------------------------------------------- decisions


@router.get("/decisions", response_class=HTMLResponse)
def decisions_page(request: Request, user: Analyst) -> HTMLResponse:
    from mamori.respond.decision import State
    from mamori.respond.ledger import Ledger

    entries = Ledger(request.app.state.store).list()
    pending = [e for e in entries if e.state is State.pending]
    others = sorted(
        (e for e in entries if e.state is not State.pending), key=lambda e: e.updated, reverse=True
    )[:200]
    return render(request, "decisions.html", user, pending=pending, others=others)


@router.post("/decisions/{ident}/{verb}")
def decide(ident: str, verb: str, request: Request, user: Responder) -> Response:
    from mamori.respond.ledger import LedgerError

    if verb not in ("approve", "reject"):
        raise HTTPException(404, "approve or reject")
    try:
        if verb == "approve":
            work.approve(request.app, ident, by=user.name)
        else:
            work.reject(request.app, ident, by=user.name)
    except LedgerError as exc:
        return render(request, "error.html", user, 409, message=str(exc), back="/decisions")
    back = request.headers.get("referer", "")
    path = _safe_next("/" + back.split("/", 3)[3] if back.count("/") >= 3 else "/decisions")
    return RedirectResponse(path, status_code=303)


# ------------------------------------------------------------------------------------- cases


def _cases(request: Request) -> list[Any]:
    from mamori.cases.case import list_cases

    return list_cases(request.app.state.store)


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, user: Analyst) -> HTMLResponse:
    return render(request, "cases.html", user, cases=_cases(request))


@router.post("/cases")
def open_case(request: Request, incident: Annotated[str, Form()], user: Analyst) -> Response:
    from mamori.cases.case import CaseError
    from mamori.cases.case import open_case as open_

    found = _runs(request).incident(incident)
    if found is None:
        raise HTTPException(404, f"no incident {incident}")
    run, _ = found
    try:
        case = open_(
            request.app.state.store,
            run.report_path,
            [incident],
            owner=user.name,
            lake=run.folder / "lake",
            actor=user.name,
        )
    except CaseError as exc:
        return render(
            request, "error.html", user, 400, message=str(exc), back=f"/incidents/{incident}"
        )
    return RedirectResponse(f"/cases/{case.id}", status_code=303)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, user: Analyst) -> HTMLResponse:
    from mamori.cases.case import CaseError, case_events, get_case, list_packages, verify_events

    store = request.app.state.store
    try:
        case = get_case(store, case_id)
        events = case_events(store, case_id)
        packages = list_packages(store, case_id)
    except CaseError as exc:
        raise HTTPException(404, str(exc)) from None
    return render(
        request,
        "case.html",
        user,
        case=case,
        events=events,
        packages=packages,
        custody_ok=verify_events(events) is None,
        report_kinds=("technical", "referral", "attribution"),
    )


@router.post("/cases/{case_id}/notes")
def case_note(
    case_id: str, request: Request, user: Analyst, text: Annotated[str, Form()] = ""
) -> Response:
    from mamori.cases.case import CaseError, add_note

    try:
        add_note(request.app.state.store, case_id, text, author=user.name)
    except CaseError as exc:
        return render(request, "error.html", user, 400, message=str(exc), back=f"/cases/{case_id}")
    return RedirectResponse(f"/cases/{case_id}#notes-h", status_code=303)


@router.post("/cases/{case_id}/evidence")
def build_evidence(case_id: str, request: Request, user: Analyst) -> Response:
    from mamori.cases.evidence import EvidenceError, build

    cfg = request.app.state.console
    out = cfg.runs_dir.parent / "evidence" / case_id / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    try:
        build(request.app.state.store, case_id, out, key_path=cfg.key, actor=user.name)
    except EvidenceError as exc:
        return render(request, "error.html", user, 400, message=str(exc), back=f"/cases/{case_id}")
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.get("/cases/{case_id}/packages/{n}.zip")
def package_zip(case_id: str, n: int, request: Request, user: Analyst) -> Response:
    from mamori.cases.case import CaseError, list_packages

    try:
        packages = list_packages(request.app.state.store, case_id)
    except CaseError as exc:
        raise HTTPException(404, str(exc)) from None
    if not 0 <= n < len(packages) or not packages[n].zip_path:
        raise HTTPException(404, f"case {case_id} has no package {n}")
    path = Path(packages[n].zip_path)  # type: ignore[arg-type]
    if not path.is_file():
        raise HTTPException(410, f"{path.name} is no longer on this server")
    return FileResponse(path, media_type="application/zip", filename=f"{case_id}-evidence-{n}.zip")


@router.get("/cases/{case_id}/reports/{kind}.{fmt}")
def case_report(case_id: str, kind: str, fmt: str, request: Request, user: Analyst) -> Response:
    import tempfile

    from mamori.cases.reports import FORMATS, ReportError, write_report
    from mamori.cases.reports.view import from_store

    if fmt not in FORMATS or kind not in ("technical", "referral", "attribution"):
        raise HTTPException(404, "no such report")
    try:
        view = from_store(request.app.state.store, case_id)
        with tempfile.TemporaryDirectory() as tmp:
            out = write_report(kind, view, fmt, Path(tmp) / f"{case_id}-{kind}.{fmt}")
            data = out.read_bytes()
    except ReportError as exc:
        raise HTTPException(404, str(exc)) from None
    media = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
    disposition = "attachment" if fmt == "pdf" else "inline"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'{disposition}; filename="{case_id}-{kind}.{fmt}"'},
    )


# ------------------------------------------------------------------------- intel and partners


@router.get("/intel", response_class=HTMLResponse)
def intel_page(request: Request, user: Analyst) -> HTMLResponse:
    from mamori.intel.schema import default_store
    from mamori.intel.store import read
    from mamori.share.partners import all_partners

    folder = default_store()
    summary: list[tuple[str, str, int]] = []
    recent: list[dict[str, Any]] = []
    problem = None
    total = 0
    if folder.is_dir():
        try:
            frame = read(folder)
            total = frame.height
            cols = [c for c in ("source", "type") if c in frame.columns]
            if len(cols) == 2:
                grouped = frame.group_by(cols).len().sort("len", descending=True).head(50)
                summary = [(r[0], r[1], r[2]) for r in grouped.iter_rows()]
            recent = frame.head(100).to_dicts()
        except (OSError, ValueError) as exc:
            problem = f"{folder}: cannot read the intel store ({exc})"
    return render(
        request,
        "intel.html",
        user,
        folder=folder,
        total=total,
        summary=summary,
        recent=recent,
        problem=problem,
        partners=all_partners(request.app.state.store),
    )


# ----------------------------------------------------------------------------------- hunting


@router.get("/hunt", response_class=HTMLResponse)
def hunt_page(request: Request, user: Analyst) -> HTMLResponse:
    return render(request, "hunt.html", user, **_hunt_ctx(request, "", ""))


@router.post("/hunt", response_class=HTMLResponse)
def hunt_run(
    request: Request,
    user: Analyst,
    sql: Annotated[str, Form()] = "",
    run: Annotated[str, Form()] = "",
) -> HTMLResponse:
    return render(request, "hunt.html", user, **_hunt_ctx(request, sql, run, execute=True))


def _hunt_ctx(request: Request, sql: str, run_id: str, execute: bool = False) -> dict[str, Any]:
    from mamori.web.console.hunt import HuntError, hunt

    runs = [r for r in _runs(request).all() if r.state == "done"]
    chosen = next((r for r in runs if r.id == run_id), runs[0] if runs else None)
    ctx: dict[str, Any] = {
        "runs": runs,
        "chosen": chosen.id if chosen else "",
        "sql": sql
        or "SELECT orig_h, resp_h, resp_p, count(*) AS n\nFROM conn\nGROUP BY ALL\n"
        "ORDER BY n DESC\nLIMIT 20",
        "columns": [],
        "rows": [],
        "error": None,
    }
    if execute:
        if chosen is None:
            ctx["error"] = "no finished patrol run to hunt in yet"
        else:
            try:
                ctx["columns"], ctx["rows"] = hunt(chosen.folder / "lake", sql)
            except HuntError as exc:
                ctx["error"] = str(exc)
    return ctx


# ------------------------------------------------------------------------------------ events


@router.get("/events")
async def events(request: Request, user: Analyst) -> StreamingResponse:
    """New alerts, incidents, runs and decisions as server-sent events."""
    raw = request.headers.get("last-event-id", "")
    last = int(raw) if raw.isdigit() else None
    return StreamingResponse(
        stream(work.broker(request.app), last),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
