"""Arrow schema of the ``eve_alert`` table: Suricata's alerts read from EVE JSON.

A sensor's own verdicts, kept as records (with the rule's metadata, where ATT&CK tags live in
ET rules); the detect stage turns them into mamori alerts like any other evidence.
"""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,  # host = EVE's host (sensor name), when present
        pa.field("flow_uid", pa.string()),  # the conn uid this sensor's flow_id becomes
        pa.field("flow_id", pa.int64()),
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.uint16()),
        pa.field("dest_ip", pa.string()),
        pa.field("dest_port", pa.uint16()),
        pa.field("proto", pa.string()),
        pa.field("app_proto", pa.string()),
        pa.field("action", pa.string()),  # allowed | blocked
        pa.field("signature_id", pa.int64()),
        pa.field("rev", pa.int32()),
        pa.field("signature", pa.string()),
        pa.field("category", pa.string()),
        pa.field("severity", pa.int16()),  # 1 (high) .. 4
        pa.field("metadata", pa.string()),  # the rule's metadata as a JSON object of lists
        # The sides a rule with Suricata's ``target:`` keyword names: EVE's ``alert.source`` (the
        # attacker) and ``alert.target`` (the victim); null for rules that name none.
        pa.field("source_ip", pa.string()),
        pa.field("source_port", pa.uint16()),
        pa.field("target_ip", pa.string()),
        pa.field("target_port", pa.uint16()),
    ]
)
