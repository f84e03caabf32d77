"""Arrow schema of the ``conn`` table: Zeek's conn.log, field for field, plus provenance.

``source``, ``first_record`` and ``last_record`` say which capture and which records (1-based packet
numbers) the connection came from, so evidence can later be cut from the original file.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("uid", pa.string(), nullable=False),
        pa.field("orig_h", pa.string(), nullable=False),
        pa.field("orig_p", pa.uint16(), nullable=False),
        pa.field("resp_h", pa.string(), nullable=False),
        pa.field("resp_p", pa.uint16(), nullable=False),
        pa.field("proto", pa.string(), nullable=False),
        pa.field("service", pa.string()),
        pa.field("duration", pa.float64()),
        pa.field("orig_bytes", pa.uint64()),
        pa.field("resp_bytes", pa.uint64()),
        pa.field("conn_state", pa.string()),
        pa.field("local_orig", pa.bool_()),
        pa.field("local_resp", pa.bool_()),
        pa.field("missed_bytes", pa.uint64()),
        pa.field("history", pa.string()),
        pa.field("orig_pkts", pa.uint64()),
        pa.field("orig_ip_bytes", pa.uint64()),
        pa.field("resp_pkts", pa.uint64()),
        pa.field("resp_ip_bytes", pa.uint64()),
        pa.field("tunnel_parents", pa.list_(pa.string())),
        pa.field("ip_proto", pa.uint8()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("first_record", pa.uint64(), nullable=False),
        pa.field("last_record", pa.uint64(), nullable=False),
    ]
)
