"""Cases: opened from a report's incidents, kept as copies, with notes, owner, decisions and a
hash-chained history that shows any edit."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.cases import case as cases
from mamori.cases import tables
from mamori.cases.tables import case_events
from mamori.store import Store
from support.postgres import fresh_database, postgres_url  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def cases_pg_url(postgres_url: str) -> str:  # noqa: F811  (the imported fixture)
    return fresh_database(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The case API against SQLite (the default) and a real PostgreSQL server."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        s = Store(request.getfixturevalue("cases_pg_url"))
        with s.begin() as conn:
            for table in (
                tables.case_events,
                tables.case_notes,
                tables.case_decisions,
                tables.case_incidents,
                tables.evidence_packages,
                tables.cases,
            ):
                conn.execute(table.delete())
    yield s
    s.close()


def test_open_keeps_copies_of_the_chosen_incidents(store: Store, report: Path) -> None:
    c = cases.open_case(store, report, ["INC-000000000003", "INC-000000000001"], actor="ann")
    assert c.incident_ids == ["INC-000000000003", "INC-000000000001"]
    assert c.report_sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    assert c.report_path == str(report.resolve())
    assert c.captures == ["/captures/a.pcap"]
    assert c.owner == "ann" and c.status is cases.Status.open
    assert c.title == "incident 3 (+1 more)"
    original = json.loads(report.read_text())["incidents"][2]
    report.write_text("{}")  # the report may change or vanish; the case does not
    assert cases.get_case(store, c.id).incidents[0] == original


def test_open_without_incident_ids_takes_all(store: Store, report: Path) -> None:
    c = cases.open_case(store, report)
    assert len(c.incidents) == 3
    assert c.lake_path is None  # the fixture report has no lake beside it


def test_open_names_the_missing_incident_and_the_file(store: Store, report: Path) -> None:
    with pytest.raises(cases.CaseError, match=r"report\.json: no incident INC-nope"):
        cases.open_case(store, report, ["INC-000000000001", "INC-nope"])
    assert cases.list_cases(store) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [("not json", "not a readable JSON report"), ('{"schema": "x"}', "not a mamori patrol report")],
)
def test_open_rejects_what_is_not_a_report(
    store: Store, tmp_path: Path, content: str, reason: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(cases.CaseError, match=f"bad.json: {reason}"):
        cases.open_case(store, bad)


def test_notes_owner_decisions_and_close(store: Store, report: Path) -> None:
    c = cases.open_case(store, report, actor="ann")
    cases.add_note(store, c.id, "called the ISP", author="bob")
    cases.assign(store, c.id, "carol", actor="ann")
    cases.link_decision(store, c.id, "DEC-1", actor="ann")
    cases.link_decision(store, c.id, "DEC-1", actor="ann")  # idempotent
    cases.link_decision(store, c.id, "DEC-2", actor="ann")
    closed = cases.close_case(store, c.id, "referred to police", actor="carol")
    assert [(n.author, n.text) for n in closed.notes] == [("bob", "called the ISP")]
    assert closed.owner == "carol"
    assert [d.decision_id for d in closed.decisions] == ["DEC-1", "DEC-2"]
    assert closed.status is cases.Status.closed and closed.close_reason == "referred to police"
    assert closed.closed_at is not None and closed.closed_at >= closed.opened_at
    with pytest.raises(cases.CaseError, match="already closed"):
        cases.close_case(store, c.id, "again")
    events = cases.case_events(store, c.id)
    assert [(e.actor, e.action) for e in events] == [
        ("ann", "case.open"),
        ("bob", "case.note"),
        ("ann", "case.assign"),
        ("ann", "case.link_decision"),
        ("ann", "case.link_decision"),
        ("carol", "case.close"),
    ]
    assert cases.verify_events(events) is None


def test_list_filters_by_status(store: Store, report: Path) -> None:
    a = cases.open_case(store, report)
    b = cases.open_case(store, report)
    cases.close_case(store, a.id, "duplicate")
    assert {c.id for c in cases.list_cases(store)} == {a.id, b.id}
    assert [c.id for c in cases.list_cases(store, cases.Status.open)] == [b.id]
    assert [c.id for c in cases.list_cases(store, cases.Status.closed)] == [a.id]


def test_unknown_case_is_named(store: Store) -> None:
    for call in (
        lambda: cases.get_case(store, "CASE-x"),
        lambda: cases.add_note(store, "CASE-x", "hi"),
        lambda: cases.link_decision(store, "CASE-x", "DEC-1"),
        lambda: cases.close_case(store, "CASE-x", "why"),
    ):
        with pytest.raises(cases.CaseError, match="no case CASE-x"):
            call()


@pytest.mark.parametrize(
    "call",
    [
        lambda s, c: cases.add_note(s, c, "a\x00b"),
        lambda s, c: cases.assign(s, c, "\x00"),
        lambda s, c: cases.close_case(s, c, "done\x00"),
        lambda s, c: cases.link_decision(s, c, "DEC\x00"),
        lambda s, c: cases.add_note(s, c, "caf\udce9"),  # an undecodable byte from argv
        lambda s, c: cases.assign(s, c, "\ud800"),
    ],
)
def test_unstorable_text_is_refused_with_a_message(store: Store, report: Path, call) -> None:
    c = cases.open_case(store, report)
    with pytest.raises(cases.CaseError, match=r"contains a NUL character|is not valid text"):
        call(store, c.id)
    assert len(cases.case_events(store, c.id)) == 1


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    notes=st.lists(
        st.text(
            st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
            min_size=1,
            max_size=40,
        ).filter(str.strip),
        min_size=1,
        max_size=6,
    ),
    victim=st.data(),
)
def test_editing_any_history_entry_breaks_the_chain(
    store: Store, report: Path, notes: list[str], victim: st.DataObject
) -> None:
    c = cases.open_case(store, report)
    for text in notes:
        cases.add_note(store, c.id, text)
    events = cases.case_events(store, c.id)
    assert cases.verify_events(events) is None
    seq = victim.draw(st.integers(0, len(events) - 1))
    body = dict(events[seq].body, actor="mallory")
    with store.begin() as conn:
        conn.execute(
            case_events.update()
            .where((case_events.c.case_id == c.id) & (case_events.c.seq == seq))
            .values(body=json.dumps(body))
        )
    broken = cases.verify_events(cases.case_events(store, c.id))
    assert broken is not None and broken.index == seq and "altered" in broken.reason


def test_state_survives_a_new_store_handle(tmp_path: Path, report: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    c = cases.open_case(Store(url), report)
    cases.add_note(Store(url), c.id, "second process")
    again = cases.get_case(Store(url), c.id)
    assert [n.text for n in again.notes] == ["second process"]
    with Store(url).begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(case_events)).scalar() == 2
