"""Arrow schema of the ``winevt`` table: Windows event log records (EVTX), one row per event.

The System part becomes typed columns (what every rule filters on first: channel, provider,
event id); EventData/UserData, whose fields differ per provider and event, stay one JSON object in
``data`` (flat: field name -> value as text, as Windows renders it), which the Sigma stage decodes
only for the fields its rules name.
"""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,  # host = System/Computer
        pa.field("channel", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("event_id", pa.int32()),
        pa.field("version", pa.int16()),
        pa.field("level", pa.int16()),
        pa.field("task", pa.int32()),
        pa.field("opcode", pa.int16()),
        pa.field("keywords", pa.string()),
        pa.field("record_id", pa.int64()),  # System/EventRecordID
        pa.field("process_id", pa.int64()),  # System/Execution ProcessID
        pa.field("thread_id", pa.int64()),
        pa.field("user_sid", pa.string()),  # System/Security UserID
        pa.field("data", pa.string()),  # JSON object: EventData/UserData fields, flat, as text
    ]
)
