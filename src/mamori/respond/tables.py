"""State-database tables of the respond stage (declared on mamori.store.metadata).

``respond_decisions`` holds each decision once (its id is stable across re-plans), with the guard's
verdict and where it is in its life (proposed → pending/approved/denied → rejected/expired).
``respond_audit`` is the hash-chained log of everything that happened to decisions, and
``respond_audit_head`` the last entry's number and hash, written in the same transaction as each
entry, so that deleting entries from the end of the log is detected too.
"""

from sqlalchemy import JSON, Column, DateTime, Float, Integer, String, Table, Text

from mamori.store.db import metadata

decisions = Table(
    "respond_decisions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("action", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("incident", String(200), nullable=False, index=True),
    Column("confidence", Float, nullable=False),
    Column("ttl", Integer, nullable=False),  # as judged (clamped to the policy's longest)
    Column("proposed_ttl", Integer, nullable=False),  # as the profile proposed it
    Column("profile", Text, nullable=True),
    Column("verdict", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("proposed", DateTime(timezone=True), nullable=False),
    Column("judged", DateTime(timezone=True), nullable=False),
    Column("created", DateTime(timezone=True), nullable=True),  # enforcement began
    Column("expires", DateTime(timezone=True), nullable=True, index=True),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("by", Text, nullable=True),  # who approved or rejected it
    Column("policy", Text, nullable=True),  # the policy file that judged it
)

audit = Table(
    "respond_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3, ...
    Column("at", DateTime(timezone=True), nullable=False),
    Column("event", String(16), nullable=False, index=True),
    Column("decision", String(40), nullable=True, index=True),
    Column("body", Text, nullable=False),  # canonical JSON, what the hash covers
    Column("prev", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "respond_audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)
