"""Arrow schema of the ``dns`` table: Zeek's dns.log, one row per query/response pair.

Column names and order follow Zeek 7.2's dns.log with the ``id.`` prefix dropped, so queries written
against Zeek logs port over unchanged. Strings are rendered as Zeek's ASCII writer shows them
(non-printable bytes and backslashes as ``\\xNN``): names on the wire are bytes, not text, and this is
the one lossless rendering analysts already know.
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
        pa.field("trans_id", pa.uint16()),
        pa.field("rtt", pa.float64()),  # seconds; null when no answer RR was seen
        pa.field("query", pa.string()),
        pa.field("qclass", pa.uint16()),
        pa.field("qclass_name", pa.string()),
        pa.field("qtype", pa.uint16()),
        pa.field("qtype_name", pa.string()),
        pa.field("rcode", pa.uint16()),
        pa.field("rcode_name", pa.string()),
        pa.field("AA", pa.bool_(), nullable=False),
        pa.field("TC", pa.bool_(), nullable=False),
        pa.field("RD", pa.bool_(), nullable=False),
        pa.field("RA", pa.bool_(), nullable=False),
        pa.field("Z", pa.uint8(), nullable=False),
        pa.field("answers", pa.list_(pa.string())),
        pa.field("TTLs", pa.list_(pa.float64())),  # seconds, parallel to ``answers``
        pa.field("rejected", pa.bool_(), nullable=False),
    ]
)
