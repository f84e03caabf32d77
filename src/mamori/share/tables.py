"""State-database tables of the share stage (declared on mamori.store.metadata).

Why times are integers (microseconds since the epoch): TAXII filters and pages by ``date_added``
and matches ``version`` exactly; integer columns compare exactly, index compactly and sort the
same on SQLite and PostgreSQL, where ISO strings of mixed precision would not.

Why ``is_last`` / ``is_first`` flags: a TAXII GET returns only the newest version of each object
unless asked otherwise; keeping that answer in an indexed column lets the database page a 100k
collection with one range scan instead of a window function over every version.
"""

from __future__ import annotations

import sqlalchemy as sa

from mamori.store.db import metadata

# Partners: who may call our TAXII server, and how we call theirs.
partners = sa.Table(
    "share_partners",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # "scrypt$n$r$p$salt_hex$hash_hex" of the credential printed once by `partner add`.
    sa.Column("secret_hash", sa.String(256), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked", sa.DateTime(timezone=True)),
    # TLPs this partner receives without being named on the object ("clear,green" by default).
    sa.Column("open_tlps", sa.String(64), nullable=False),
    # The partner's own TAXII 2.1 server, for `share pull` / `share push` (all optional).
    sa.Column("remote_url", sa.String(1024)),
    sa.Column("remote_collection", sa.String(256)),
    sa.Column("remote_user", sa.String(256)),
    sa.Column("remote_password", sa.String(1024)),
    # The X-TAXII-Date-Added-Last of the last complete pull (TAXII timestamp string).
    sa.Column("last_pull", sa.String(40)),
)

collections = sa.Table(
    "share_taxii_collections",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),  # a UUID, as TAXII requires
    sa.Column("alias", sa.String(128), nullable=False, unique=True),
    sa.Column("title", sa.String(256), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

grants = sa.Table(
    "share_partner_grants",
    metadata,
    sa.Column(
        "partner",
        sa.String(64),
        sa.ForeignKey("share_partners.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "collection_id",
        sa.String(36),
        sa.ForeignKey("share_taxii_collections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("can_read", sa.Boolean, nullable=False),
    sa.Column("can_write", sa.Boolean, nullable=False),
)

objects = sa.Table(
    "share_taxii_objects",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection_id", sa.String(36), nullable=False),
    sa.Column("object_id", sa.String(128), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),  # the object's own timestamp text
    sa.Column("version_us", sa.BigInteger, nullable=False),
    sa.Column("spec_version", sa.String(8), nullable=False),
    sa.Column("date_added_us", sa.BigInteger, nullable=False),  # unique per collection
    sa.Column("is_last", sa.Boolean, nullable=False),
    sa.Column("is_first", sa.Boolean, nullable=False),
    sa.Column("tlp", sa.String(16), nullable=False),
    # "local" for what we publish, "partner:NAME" for what a partner sent.
    sa.Column("provenance", sa.String(80), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the object's JSON, served as stored
    sa.UniqueConstraint("collection_id", "object_id", "version_us", name="uq_share_obj_version"),
    sa.Index("ix_share_obj_added", "collection_id", "date_added_us"),
    sa.Index("ix_share_obj_last", "collection_id", "is_last", "date_added_us"),
    sa.Index("ix_share_obj_type", "collection_id", "type", "date_added_us"),
    sa.Index("ix_share_obj_id", "object_id"),  # references cross collections
)

# Partners an AMBER / AMBER+STRICT object may go to (TLP 2.0: "named recipients").
audience = sa.Table(
    "share_object_audience",
    metadata,
    sa.Column(
        "object_pk",
        sa.Integer,
        sa.ForeignKey("share_taxii_objects.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("partner", sa.String(64), primary_key=True),
    sa.Index("ix_share_audience_partner", "partner", "object_pk"),
)

# Every id a stored object reaches through ``*_ref`` / ``*_refs``, transitively (ids not stored yet
# included): an object is served only when everything it reaches may go to the same reader, since
# a report or relationship would otherwise reveal the id of what that reader may not see.
closure = sa.Table(
    "share_object_closure",
    metadata,
    sa.Column(
        "object_pk",
        sa.Integer,
        sa.ForeignKey("share_taxii_objects.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("ref_id", sa.String(128), primary_key=True),
    sa.Index("ix_share_closure_ref", "ref_id"),
)

statuses = sa.Table(
    "share_taxii_status",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("partner", sa.String(64), nullable=False),  # only its requester may read it
    sa.Column("body", sa.Text, nullable=False),  # the status resource's JSON
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)
