"""The state database: incidents, cases, decisions, partners, audit (SQLite by default, PostgreSQL by URL)."""

from mamori.store.db import Store, default_url, metadata

__all__ = ["Store", "default_url", "metadata"]
