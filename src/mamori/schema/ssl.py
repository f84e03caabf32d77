"""Arrow schema of the ``ssl`` table: Zeek's ssl.log columns (with the x509 policy's subject/issuer)
plus the JA3/JA3S/JA4 fingerprints, so TLS sessions can be joined to threat intel on either."""

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
        pa.field("version", pa.string()),
        pa.field("cipher", pa.string()),
        pa.field("curve", pa.string()),
        pa.field("server_name", pa.string()),
        pa.field("resumed", pa.bool_()),
        pa.field("last_alert", pa.string()),
        pa.field("next_protocol", pa.string()),
        pa.field("established", pa.bool_()),
        pa.field("ssl_history", pa.string()),
        pa.field("cert_chain_fps", pa.list_(pa.string())),
        pa.field("client_cert_chain_fps", pa.list_(pa.string())),
        pa.field("sni_matches_cert", pa.bool_()),
        pa.field("subject", pa.string()),
        pa.field("issuer", pa.string()),
        pa.field("ja3", pa.string()),
        pa.field("ja3s", pa.string()),
        pa.field("ja4", pa.string()),
    ]
)
