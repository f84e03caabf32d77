"""Arrow schema of the ``ssh`` table: Zeek's ssh.log columns plus the HASSH client/server
fingerprints, which identify SSH implementations even when banners lie."""

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
        pa.field("version", pa.uint8()),
        pa.field("auth_success", pa.bool_()),
        pa.field("auth_attempts", pa.uint32()),
        pa.field("direction", pa.string()),
        pa.field("client", pa.string()),
        pa.field("server", pa.string()),
        pa.field("cipher_alg", pa.string()),
        pa.field("mac_alg", pa.string()),
        pa.field("compression_alg", pa.string()),
        pa.field("kex_alg", pa.string()),
        pa.field("host_key_alg", pa.string()),
        pa.field("host_key", pa.string()),
        pa.field("hassh", pa.string()),
        pa.field("hasshServer", pa.string()),
    ]
)
