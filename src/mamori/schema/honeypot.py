"""Arrow schema of the ``honeypot`` table: honeypot (Cowrie) events, one row per event.

Nobody has a reason to talk to a honeypot: every source here is hostile, which is why the table
feeds incidents and intel directly.
"""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,  # host = the honeypot sensor's name
        pa.field("session", pa.string()),
        pa.field("event", pa.string(), nullable=False),  # e.g. cowrie.login.failed
        pa.field("protocol", pa.string()),  # ssh | telnet
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.uint16()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.uint16()),
        pa.field("username", pa.string()),
        pa.field("password", pa.string()),
        pa.field("input", pa.string()),  # a command the attacker typed
        pa.field("url", pa.string()),  # a download attempted
        pa.field("shasum", pa.string()),  # SHA-256 of a file downloaded or uploaded
        pa.field("client", pa.string()),  # SSH client version string
        pa.field("hassh", pa.string()),
        pa.field("duration", pa.float64()),  # seconds, on session close
        pa.field("message", pa.string()),
    ]
)
