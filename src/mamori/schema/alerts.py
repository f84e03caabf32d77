"""Arrow schema of the ``alerts`` table: what a detector says, and the records that show it.

``evidence`` names the lake table and the ``uid``s of the records an analyst (or an evidence
package) should look at; ``key`` identifies the alert for suppression of repeats.
"""

from __future__ import annotations

import pyarrow as pa

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

SCHEMA: pa.Schema = pa.schema(
    [
        pa.field(
            "ts", pa.timestamp("us", tz="UTC"), nullable=False
        ),  # first_seen, for partitioning
        pa.field("detector", pa.string(), nullable=False),
        pa.field("techniques", pa.list_(pa.string()), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("confidence", pa.float64(), nullable=False),
        pa.field("summary", pa.string(), nullable=False),
        pa.field("src", pa.string()),
        pa.field("dst", pa.string()),
        # Domain names the alert is about (a tunnel's zone, DGA names, a matched indicator): the
        # entities a resolver sinkhole or a shared indicator acts on.
        pa.field("domains", pa.list_(pa.string()), nullable=False),
        pa.field("first_seen", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("last_seen", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("count", pa.int64(), nullable=False),  # records behind the alert
        pa.field("evidence_table", pa.string(), nullable=False),
        pa.field("evidence", pa.list_(pa.string()), nullable=False),  # uids, at most EVIDENCE_MAX
        pa.field("key", pa.string(), nullable=False),
    ]
)
