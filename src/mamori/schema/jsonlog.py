"""Arrow schema of the ``jsonlog`` table: any JSON-lines log, one row per line.

The object is kept whole in ``data``; ``dataset`` names the log (the file's stem unless the user
says otherwise), which is what Sigma pipelines use to pick the rules that apply to it.
"""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,
        pa.field("dataset", pa.string()),
        pa.field("data", pa.string(), nullable=False),  # the line's JSON object
    ]
)
