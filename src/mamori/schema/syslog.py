"""Arrow schema of the ``syslog`` table: RFC 3164 and RFC 5424 records, one row per message."""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,  # host = HOSTNAME
        pa.field("format", pa.string()),  # rfc3164 | rfc5424
        pa.field("facility", pa.int16()),  # from PRI, when the line has one
        pa.field("severity", pa.int16()),
        pa.field("app", pa.string()),  # TAG / APP-NAME, e.g. sshd
        pa.field("pid", pa.int64()),
        pa.field("msgid", pa.string()),
        pa.field("structured_data", pa.string()),  # RFC 5424 SD-ELEMENTs as a JSON object
        pa.field("message", pa.string()),
    ]
)
