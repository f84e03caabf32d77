"""State-database tables of this stage (declared on mamori.store.metadata)."""

from mamori.store.db import metadata  # noqa: F401
