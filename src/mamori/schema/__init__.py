"""Arrow schemas of every table: the contracts between stages."""

from __future__ import annotations

import importlib

import pyarrow as pa

SCHEMA_VERSION = 1
NETWORK_TABLES: tuple[str, ...] = ("conn", "dns", "http", "ssl", "ssh", "ftp", "smtp")
LOG_TABLES: tuple[str, ...] = ("winevt", "syslog", "auth", "honeypot", "jsonlog", "eve_alert")
TABLES: tuple[str, ...] = (*NETWORK_TABLES, *LOG_TABLES, "alerts")


def schema_of(table: str) -> pa.Schema:
    """The Arrow schema of a lake table, by name."""
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    return importlib.import_module(f"mamori.schema.{table}").SCHEMA
