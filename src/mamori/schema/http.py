"""Arrow schema of the ``http`` table: Zeek's http.log, one row per request/response pair.

Column names and order follow Zeek 7.2's http.log with the ``id.`` prefix dropped. Bodies are never
stored, only their lengths (``post_body``-style columns are deliberately absent: a monitoring lake
must not become a copy of users' uploads). ``password`` stays null, as in Zeek's default
(``HTTP::default_capture_password = F``).

The file-analysis columns (``orig_fuids``, ``orig_filenames``, ``orig_mime_types``, ``resp_fuids``,
``resp_filenames``, ``resp_mime_types``) come from Zeek's files framework, which mamori does not
run: they are part of the schema so the table lines up with Zeek's. ``orig_mime_types`` and
``resp_mime_types`` are filled for the binary types a body's first bytes tell
(``flows.analyzers.mime``: executables, archives, PDF, images) and stay null otherwise.
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
        pa.field("trans_depth", pa.uint32(), nullable=False),
        pa.field("method", pa.string()),
        pa.field("host", pa.string()),
        pa.field("uri", pa.string()),
        pa.field("referrer", pa.string()),
        pa.field("version", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("request_body_len", pa.uint64(), nullable=False),
        pa.field("response_body_len", pa.uint64(), nullable=False),
        pa.field("status_code", pa.uint16()),
        pa.field("status_msg", pa.string()),
        pa.field("info_code", pa.uint16()),
        pa.field("info_msg", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("username", pa.string()),
        pa.field("password", pa.string()),
        pa.field("proxied", pa.list_(pa.string())),
        pa.field("orig_fuids", pa.list_(pa.string())),
        pa.field("orig_filenames", pa.list_(pa.string())),
        pa.field("orig_mime_types", pa.list_(pa.string())),
        pa.field("resp_fuids", pa.list_(pa.string())),
        pa.field("resp_filenames", pa.list_(pa.string())),
        pa.field("resp_mime_types", pa.list_(pa.string())),
    ]
)
