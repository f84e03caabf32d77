"""State-database tables of the web door: console users, their sessions and API tokens.

Nothing secret is stored in clear: ``web_users.password`` is an argon2id hash, and sessions and API
tokens are kept as the SHA-256 of their random value (they carry 256 bits of entropy, so a fast
hash is enough and lets each request find its row by an index, where argon2 would cost ~50 ms a
request). A stolen database therefore yields neither a password nor a usable credential.
"""

from sqlalchemy import Column, DateTime, ForeignKey, String, Table, Text

from mamori.store.db import metadata

users = Table(
    "web_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # analyst | responder | admin | partner
    Column("password", Text, nullable=False),  # argon2id PHC string, never the password
    Column("created", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the cookie's value
    Column(
        "user",
        String(64),
        ForeignKey("web_users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("csrf", String(64), nullable=False),  # the synchronizer token of this session
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False, index=True),
)

tokens = Table(
    "web_tokens",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the token
    Column(
        "prefix", String(24), nullable=False
    ),  # the token's first characters, to tell them apart
    Column(
        "user",
        String(64),
        ForeignKey("web_users.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("label", Text, nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
)
