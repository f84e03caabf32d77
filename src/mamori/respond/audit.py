"""The respond stage's audit log: every proposal, verdict, approval, rejection, application and
expiry, appended to a hash chain in the state database (``mamori.hashchain``).

Each entry's hash covers the previous entry's hash and the entry's canonical JSON body, so an
edit, a deletion or a reordering anywhere breaks the chain at that entry. Deleting entries from the
*end* leaves a shorter chain that is still whole, so a head row (last number and hash) is written
in the same transaction as every entry: ``verify`` reports a log whose last entry is not the head.
Someone able to rewrite the database could rewrite the head too; ``verify(expect_head=...)`` checks
against a head hash kept elsewhere (printed by ``mamori respond audit verify``), which catches even
that.

Appends are serialised: the head row is updated *before* it is read, which takes the write lock
on SQLite and a row lock on PostgreSQL, so two writers can never both extend the same entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mamori.hashchain import GENESIS, canonical, link
from mamori.hashchain import verify as verify_chain
from mamori.respond.tables import audit, audit_head

EVENTS = ("proposed", "judged", "approved", "rejected", "refused", "applied", "expired")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    event: str
    decision: str | None
    body: Mapping[str, Any]
    prev: str
    hash: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head: str  # the last entry's hash (GENESIS for an empty log)
    problem: str | None = None  # what is wrong, naming the entry


class Writer:
    """Appends within the caller's transaction: takes the lock and reads the head once, then
    writes the buffered entries and the new head together at ``flush`` (a plan of thousands of
    decisions is one insert, not thousands of round trips). Use as a context manager, or call
    ``flush`` before the transaction ends."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        lock(conn)
        self.seq, self.prev = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
        self._rows: list[dict[str, Any]] = []

    def add(
        self,
        event: str,
        decision: str | None,
        details: Mapping[str, Any],
        at: datetime | None = None,
    ) -> AuditEntry:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        at = (at or datetime.now(UTC)).astimezone(UTC)
        seq = self.seq + 1
        body = {
            "seq": seq,
            "at": at.isoformat(),
            "event": event,
            "decision": decision,
            **{k: v for k, v in details.items() if k not in ("seq", "at", "event", "decision")},
        }
        text = canonical(body)
        body = json.loads(text)  # exactly what will be stored and re-read
        digest = link(self.prev, body)
        self._rows.append(
            {
                "seq": seq,
                "at": at,
                "event": event,
                "decision": decision,
                "body": text.decode(),
                "prev": self.prev,
                "hash": digest,
            }
        )
        entry = AuditEntry(seq, at, event, decision, body, self.prev, digest)
        self.seq, self.prev = seq, digest
        return entry

    def flush(self) -> None:
        if not self._rows:
            return
        self.conn.execute(sa.insert(audit), self._rows)
        self.conn.execute(
            sa.update(audit_head).where(audit_head.c.id == 1).values(seq=self.seq, hash=self.prev)
        )
        self._rows = []

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.flush()


def append(
    conn: Connection,
    event: str,
    decision: str | None,
    details: Mapping[str, Any],
    at: datetime | None = None,
) -> AuditEntry:
    """Add one entry inside the caller's transaction (so it commits with the change it records)."""
    with Writer(conn) as log:
        return log.add(event, decision, details, at)


def lock(conn: Connection) -> None:
    """Take the log's write lock (creating its head row the first time) before reading anything
    that a change depends on; held until the caller's transaction ends."""
    touch = sa.update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq)
    if conn.execute(touch).rowcount:
        return
    # no head yet (tables made by hand, or an empty log): create it once, whoever comes first
    insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}.get(conn.dialect.name)
    if insert is None:
        conn.execute(sa.insert(audit_head).values(id=1, seq=0, hash=GENESIS))
    else:
        conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing())
    conn.execute(touch)


def entries(conn: Connection, decision: str | None = None) -> list[AuditEntry]:
    q = sa.select(audit).order_by(audit.c.seq)
    if decision is not None:
        q = q.where(audit.c.decision == decision)
    out = []
    for row in conn.execute(q):
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        out.append(
            AuditEntry(
                row.seq, at, row.event, row.decision, json.loads(row.body), row.prev, row.hash
            )
        )
    return out


def verify(conn: Connection, expect_head: str | None = None) -> Verification:
    """Check the whole log; the first problem found is reported, naming the entry by number."""
    rows = conn.execute(sa.select(audit).order_by(audit.c.seq)).all()
    head_row = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).first()
    triples = []
    for n, row in enumerate(rows):
        try:
            body = json.loads(row.body)
        except ValueError:
            return Verification(False, len(rows), "", f"entry {row.seq}: body is not JSON")
        if (
            not isinstance(body, dict)
            or body.get("seq") != row.seq
            or body.get("event") != row.event
            or body.get("decision") != row.decision
        ):
            return Verification(
                False, len(rows), "", f"entry {row.seq}: its columns disagree with its body"
            )
        if row.seq != n + 1:
            return Verification(
                False, len(rows), "", f"entry {n + 1} is missing (found {row.seq} in its place)"
            )
        triples.append((body, row.prev, row.hash))
    broken = verify_chain(triples)
    if broken is not None:
        seq = rows[broken.index].seq
        why = broken.reason.replace(f"entry {broken.index}", f"entry {seq}")
        why = why.replace(f"entry {broken.index - 1}", f"entry {seq - 1}")
        return Verification(False, len(rows), "", why)
    last = rows[-1].hash if rows else GENESIS
    last_seq = rows[-1].seq if rows else 0
    if head_row is None:
        if rows:
            return Verification(False, len(rows), last, "the head row is missing")
    elif (head_row.seq, head_row.hash) != (last_seq, last):
        return Verification(
            False,
            len(rows),
            last,
            f"the log ends at entry {last_seq} but its head says {head_row.seq}: "
            "entries were removed from the end (or the head was edited)",
        )
    if expect_head is not None and expect_head != last:
        return Verification(
            False, len(rows), last, f"the last hash is {last}, not the expected {expect_head}"
        )
    return Verification(True, len(rows), last)
