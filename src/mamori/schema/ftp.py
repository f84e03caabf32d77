"""Arrow schema of the ``ftp`` table: one row per logged FTP command with its reply, as Zeek's
ftp.log, the ``data_channel`` record flattened into ``data_channel_*`` columns."""

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
        pa.field("user", pa.string()),
        pa.field("password", pa.string()),
        pa.field("command", pa.string()),
        pa.field("arg", pa.string()),
        pa.field("mime_type", pa.string()),
        pa.field("file_size", pa.uint64()),
        pa.field("reply_code", pa.uint16()),
        pa.field("reply_msg", pa.string()),
        pa.field("data_channel_passive", pa.bool_()),
        pa.field("data_channel_orig_h", pa.string()),
        pa.field("data_channel_resp_h", pa.string()),
        pa.field("data_channel_resp_p", pa.uint16()),
        pa.field("fuid", pa.string()),
    ]
)
