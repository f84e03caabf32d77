"""Arrow schema of the ``smtp`` table: one row per SMTP mail transaction, as Zeek's smtp.log
(headers of the first MIME entity, the Received path, STARTTLS)."""

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
        pa.field("trans_depth", pa.uint32()),
        pa.field("helo", pa.string()),
        pa.field("mailfrom", pa.string()),
        pa.field("rcptto", pa.list_(pa.string())),
        pa.field("date", pa.string()),
        pa.field("from", pa.string()),
        pa.field("to", pa.list_(pa.string())),
        pa.field("cc", pa.list_(pa.string())),
        pa.field("reply_to", pa.string()),
        pa.field("msg_id", pa.string()),
        pa.field("in_reply_to", pa.string()),
        pa.field("subject", pa.string()),
        pa.field("x_originating_ip", pa.string()),
        pa.field("first_received", pa.string()),
        pa.field("second_received", pa.string()),
        pa.field("last_reply", pa.string()),
        pa.field("path", pa.list_(pa.string())),
        pa.field("user_agent", pa.string()),
        pa.field("tls", pa.bool_()),
        pa.field("fuids", pa.list_(pa.string())),
        pa.field("is_webmail", pa.bool_()),
    ]
)
