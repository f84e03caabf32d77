"""Columns every log table starts with: when, which record, and from where.

``file`` and ``record`` (1-based: the line of a text log, the record of an EVTX file) let an
analyst or an evidence package go back to the original bytes; ``uid`` names the record in alerts'
evidence the way a Zeek ``uid`` names a connection, and is seeded from the file's content (not its
path), so it is the same on every machine that reads the same file.
"""

from __future__ import annotations

import pyarrow as pa

HEAD: tuple[pa.Field, ...] = (
    pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("uid", pa.string(), nullable=False),
    pa.field("file", pa.string(), nullable=False),
    pa.field("record", pa.int64(), nullable=False),
    pa.field("host", pa.string()),  # the machine that wrote the record (Computer, HOSTNAME, sensor)
)
