"""The audit log: appended with every change, and any tampering found by verify (on SQLite and
on a real PostgreSQL)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from mamori.respond import audit
from mamori.respond.tables import audit as audit_table
from mamori.respond.tables import audit_head
from mamori.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(store: Store, n: int = 6) -> None:
    for i in range(n):
        with store.begin() as conn:
            audit.append(
                conn, "proposed", f"d-{i}", {"target": f"5.6.7.{i}"}, T0 + timedelta(seconds=i)
            )


def _verify(store: Store, **kw: object) -> audit.Verification:
    with store.begin() as conn:
        return audit.verify(conn, **kw)  # type: ignore[arg-type]


def test_a_whole_log_verifies_and_chains(store: Store) -> None:
    assert _verify(store).ok and _verify(store).entries == 0
    _fill(store)
    v = _verify(store)
    assert v.ok and v.entries == 6
    with store.begin() as conn:
        entries = audit.entries(conn)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert all(b.prev == a.hash for a, b in itertools.pairwise(entries))
    assert v.head == entries[-1].hash
    assert _verify(store, expect_head=v.head).ok


def test_a_rolled_back_change_leaves_no_entry(store: Store) -> None:
    _fill(store, 2)
    with pytest.raises(RuntimeError), store.begin() as conn:
        audit.append(conn, "approved", "d-0", {"by": "x"}, T0)
        raise RuntimeError
    assert _verify(store).entries == 2 and _verify(store).ok


def _edit_body(store: Store, seq: int, **changes: object) -> None:
    with store.begin() as conn:
        body = json.loads(
            conn.execute(sa.select(audit_table.c.body).where(audit_table.c.seq == seq)).scalar_one()
        )
        body.update(changes)
        conn.execute(
            sa.update(audit_table).where(audit_table.c.seq == seq).values(body=json.dumps(body))
        )


def test_an_edit_is_found(store: Store) -> None:
    _fill(store)
    _edit_body(store, 3, target="6.6.6.6")
    v = _verify(store)
    assert not v.ok and v.problem == "entry 3 was altered: its content does not match its hash"


def test_an_edit_of_a_column_outside_the_body_is_found(store: Store) -> None:
    _fill(store)
    with store.begin() as conn:
        conn.execute(sa.update(audit_table).where(audit_table.c.seq == 2).values(event="approved"))
    v = _verify(store)
    assert not v.ok and "entry 2" in v.problem


def test_a_deletion_is_found(store: Store) -> None:
    _fill(store)
    with store.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq == 4))
    v = _verify(store)
    assert not v.ok and "entry 4" in v.problem


def test_a_deletion_with_renumbering_is_found(store: Store) -> None:
    _fill(store)
    with store.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq == 4))
        for seq in (5, 6):
            _renumber(conn, seq, seq - 1)
    v = _verify(store)
    assert not v.ok and "entry 4 does not follow entry 3" in v.problem


def _renumber(conn: sa.Connection, old: int, new: int) -> None:
    body = json.loads(
        conn.execute(sa.select(audit_table.c.body).where(audit_table.c.seq == old)).scalar_one()
    )
    body["seq"] = new
    conn.execute(
        sa.update(audit_table)
        .where(audit_table.c.seq == old)
        .values(seq=new, body=json.dumps(body))
    )


def test_a_reordering_is_found(store: Store) -> None:
    _fill(store)
    with store.begin() as conn:  # swap entries 2 and 3, numbers and all
        _renumber(conn, 2, 100)
        _renumber(conn, 3, 2)
        _renumber(conn, 100, 3)
    v = _verify(store)
    assert not v.ok and "entry 2" in v.problem


def test_truncating_the_tail_is_found_by_the_head(store: Store) -> None:
    _fill(store)
    with store.begin() as conn:
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq >= 5))
    v = _verify(store)
    assert not v.ok and "ends at entry 4 but its head says 6" in v.problem


def test_truncating_the_tail_and_the_head_is_found_by_a_kept_head_hash(store: Store) -> None:
    _fill(store)
    kept = _verify(store).head
    with store.begin() as conn:
        last = conn.execute(
            sa.select(audit_table.c.hash).where(audit_table.c.seq == 4)
        ).scalar_one()
        conn.execute(sa.delete(audit_table).where(audit_table.c.seq >= 5))
        conn.execute(sa.update(audit_head).values(seq=4, hash=last))
    assert _verify(store).ok  # a consistent shorter log: only an outside record can tell
    v = _verify(store, expect_head=kept)
    assert not v.ok and "not the expected" in v.problem


def test_unknown_events_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown audit event"), store.begin() as conn:
        audit.append(conn, "deleted", None, {})


def test_concurrent_writers_never_fork_the_chain(store: Store) -> None:
    """Appends from several connections at once are serialised by the head lock."""
    from concurrent.futures import ThreadPoolExecutor

    def write(worker: int) -> None:
        for i in range(8):
            with store.begin() as conn:
                audit.append(conn, "applied", f"d-{worker}-{i}", {"point": "test"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    v = _verify(store)
    assert v.ok, v.problem
    assert v.entries == 32
