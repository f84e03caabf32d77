"""Arrow schema of the ``auth`` table: authentication events normalised from every log source.

sshd and ftpd lines in syslog, Windows logon events (4624/4625/4648/4771/4776), honeypot logins:
one row each, so one brute-force or password-spraying detector sees them all. ``source`` names the
table the event was read into (``syslog``, ``winevt``, ``honeypot``) and ``source_uid`` that row.
"""

from __future__ import annotations

import pyarrow as pa

from mamori.schema._logs import HEAD

OUTCOMES: tuple[str, ...] = ("success", "failure")

SCHEMA: pa.Schema = pa.schema(
    [
        *HEAD,  # host = the machine that was logged into
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_uid", pa.string(), nullable=False),
        pa.field("service", pa.string()),  # ssh, ftp, sudo, su, telnet, windows, rdp, ...
        pa.field("outcome", pa.string(), nullable=False),  # success | failure
        pa.field("user", pa.string()),
        pa.field("invalid_user", pa.bool_()),  # the account does not exist (sshd "invalid user")
        pa.field("src_ip", pa.string()),
        pa.field("src_port", pa.uint16()),
        pa.field("dst_ip", pa.string()),
        pa.field("dst_port", pa.uint16()),
        pa.field("method", pa.string()),  # password, publickey, keyboard-interactive, ntlm, ...
        pa.field("logon_type", pa.int16()),  # Windows logon type (3 network, 10 remote interactive)
        pa.field("reason", pa.string()),  # why it failed, as the log says
    ]
)
