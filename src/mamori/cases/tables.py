"""State-database tables of the cases stage (declared on mamori.store.metadata).

A case keeps *copies* of what it was opened from (the chosen incidents as the report wrote them,
the report's path and SHA-256, the captures it read), so a later patrol or a deleted report
cannot change what the case says. Its history is a hash-chained event log (``case_events``):
the first part of the chain of custody that every evidence package exports.
"""

from __future__ import annotations

import sqlalchemy as sa

from mamori.store.db import metadata

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("close_reason", sa.Text),
    sa.Column("report_path", sa.Text, nullable=False),
    sa.Column("report_sha256", sa.String(64), nullable=False),
    # Where the patrol's lake was when the case was opened (``--lake`` or REPORT_DIR/lake).
    sa.Column("lake_path", sa.Text),
    # The report's ``inputs[]`` (capture path, packets, bytes, problem, error), copied.
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("mamori_version", sa.String(32), nullable=False),
)

case_incidents = sa.Table(
    "case_incidents",
    metadata,
    sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    # The incident object exactly as report.json had it (docs/report.md).
    sa.Column("body", sa.JSON, nullable=False),
)

case_notes = sa.Table(
    "case_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# Ids of respond decisions taken for the case; no foreign key, the respond stage owns decisions.
case_decisions = sa.Table(
    "case_decisions",
    metadata,
    sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("linked_by", sa.String(128), nullable=False),
)

# Who did what when, per case, hash-chained (mamori.hashchain): ``body`` is the canonical JSON
# that was hashed, kept verbatim so verification never depends on how a database stores times.
case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("prev", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Every evidence package built for a case, with its manifest (the evidence index reports cite).
evidence_packages = sa.Table(
    "evidence_packages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(32), sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("zip_path", sa.Text),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("built_by", sa.String(128), nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("key_fingerprint", sa.String(64), nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
)
