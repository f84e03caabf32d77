"""SMTP analyser: Zeek's smtp.log, one row per mail transaction.

A row opens with the session (carrying HELO), collects MAIL FROM / RCPT TO, the top-level message
headers of DATA and the Received chain, and is written when the server acknowledges the final ``.``
(or at connection end) - but only if the client actually did something (a transaction or STARTTLS),
which is Zeek's ``has_client_activity`` rule that keeps bare probes out of the table. After a
successful STARTTLS the rest is TLS, so parsing stops there with ``tls`` set.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import ClassVar

import pyarrow as pa

from mamori.flows.analyzers import handover
from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.conversation import Conversation, Segment, segment_rows
from mamori.schema.smtp import SCHEMA

_NAMES = tuple(SCHEMA.names)
# The line that ends DATA ("." with any CRs before its LF); a body's other lines are never read.
_DATA_END = re.compile(rb"^\.\r*\n", re.M)
_EMAIL = re.compile(r"[^\s<>,;:\"]+@[^\s<>,;:\"]+")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_WEBMAIL = re.compile(
    r"(?i)(roundcube|squirrelmail|horde|zimbra|outlook web|owa|webmail|yahoo|gmail)"
)
_HEADERS = {
    "MESSAGE-ID": "msg_id",
    "IN-REPLY-TO": "in_reply_to",
    "SUBJECT": "subject",
    "FROM": "from",
    "REPLY-TO": "reply_to",
    "DATE": "date",
    "X-MAILER": "user_agent",
    "USER-AGENT": "user_agent",
    "X-USER-AGENT": "user_agent",
}


def _ips(text: str) -> list[str]:
    """IP addresses in order of appearance (Zeek's extract_ip_addresses)."""
    found: list[tuple[int, str]] = []
    for rx in (_IPV4, _IPV6):
        for m in rx.finditer(text):
            try:
                found.append((m.start(), str(ipaddress.ip_address(m.group()))))
            except ValueError:
                continue
    return [ip for _, ip in sorted(found)]


def _split_addresses(value: str) -> list[str]:
    """Split a To/Cc header on commas outside quotes (Zeek's split_mime_email_addresses)."""
    parts, cur, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


@dataclass(slots=True)
class _State:
    conv: Conversation
    ts: float = 0.0
    helo: str | None = None
    transferred: int = 0
    log: dict[str, object] | None = None
    active: bool = False  # Zeek's has_client_activity
    in_data: bool = False
    in_headers: bool = False
    header_lines: list[str] = field(default_factory=list)
    received_open: bool = True  # Zeek's process_received_from
    pending_cmds: list[str] = field(default_factory=list)
    tls: bool = False
    confirmed: bool = False
    records: list[dict[str, object]] = field(default_factory=list)

    def current(self) -> dict[str, object]:
        if self.log is None:
            c = self.conv
            self.log = {
                "ts": self.ts,
                **c.id_fields(),
                "trans_depth": self.transferred + 1,
                "helo": self.helo,
                "path": [c.resp_h, c.orig_h],
                "tls": False,
                "is_webmail": False,
            }
            self.active = False
            self.received_open = True
        return self.log

    def emit(self) -> None:
        """Write the current transaction if the client did anything, then start a fresh one."""
        if self.log is not None and self.active:
            row = dict(zip(_NAMES, map(self.log.get, _NAMES), strict=True))
            for key in ("rcptto", "to", "cc"):
                if row[key] is not None:
                    row[key] = list(dict.fromkeys(row[key]))  # type: ignore[call-overload]
            ua = row.get("user_agent")
            row["is_webmail"] = bool(ua and _WEBMAIL.search(str(ua)))
            self.records.append(row)
            self.log = None


def _header(st: _State, raw: str) -> None:
    name, sep, value = raw.partition(":")
    if not sep:
        return
    name, value = name.strip().upper(), value.lstrip(" \t")
    log = st.current()
    if name in _HEADERS:
        log[_HEADERS[name]] = value
    elif name == "RECEIVED":
        if log.get("first_received") is not None:
            log["second_received"] = log["first_received"]
        log["first_received"] = value
        ips = _ips(value)
        if st.received_open and ips:
            ip = ips[1] if len(ips) > 1 else ips[0]
            if not ipaddress.ip_address(ip).is_private:
                st.received_open = False
            path = log["path"]
            assert isinstance(path, list)
            if path[-1] != ip:
                path.append(ip)
    elif name in ("TO", "CC"):
        key = name.lower()
        existing = log.get(key) or []
        assert isinstance(existing, list)
        log[key] = existing + _split_addresses(value)
    elif name == "X-ORIGINATING-IP":
        ips = _ips(value)
        if ips:
            log["x_originating_ip"] = ips[0]


def _data_line(st: _State, line: str) -> None:
    if line == ".":
        st.in_data = st.in_headers = False
        _flush_headers(st)
        st.pending_cmds.append(".")
        return
    if not st.in_headers:
        return
    if line == "":
        st.in_headers = False
        _flush_headers(st)
    elif line[:1] in (" ", "\t") and st.header_lines:
        st.header_lines[-1] += line  # folded header: Zeek keeps the leading whitespace
    else:
        st.header_lines.append(line)


def _flush_headers(st: _State) -> None:
    for raw in st.header_lines:
        _header(st, raw)
    st.header_lines = []


def _command(st: _State, line: str) -> None:
    cmd, _, arg = line.partition(" ")
    upper = cmd.upper()
    log = st.current()
    st.pending_cmds.append(upper)
    if upper in ("HELO", "EHLO"):
        st.confirmed = True
        st.helo = arg
        log["helo"] = arg
    elif upper == "RCPT" and arg[:3].upper() == "TO:":
        rcpts = log.get("rcptto") or []
        assert isinstance(rcpts, list)
        log["rcptto"] = rcpts + [re.sub(r"ORCPT=rfc822;?", "", a) for a in _EMAIL.findall(arg)]
        st.active = True
    elif upper == "MAIL" and arg[:5].upper() == "FROM:":
        st.emit()
        log = st.current()
        found = _EMAIL.findall(arg)
        if found:
            log["mailfrom"] = found[0]
        st.active = True
    elif upper == "DATA":
        st.in_data = st.in_headers = True


def _reply(st: _State, line: str) -> None:
    if len(line) < 3 or not line[:3].isdigit():
        return
    code, cont, msg = int(line[:3]), line[3:4] == "-", line[4:]
    log = st.current()
    log["last_reply"] = f"{code} {msg}"
    if cont:
        return
    cmd = st.pending_cmds.pop(0) if st.pending_cmds else ""
    if cmd == ".":
        st.transferred += 1
        st.emit()
        st.current()
    elif cmd == "STARTTLS" and code == 220:
        log["tls"] = True
        st.active = True
        st.tls = True


# First bytes a client's EHLO/HELO can have, whitespace first (see SMTPAnalyzer.opens).
_OPENS = frozenset(b" \t\n\r\x0b\x0cEHeh")


class SMTPAnalyzer:
    """Zeek-compatible smtp.log producer."""

    service: ClassVar[str] = "smtp"
    table: ClassVar[str] = "smtp"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    views: ClassVar[bool] = True  # segment payload may be a memoryview (see Segment.data)
    prefixes: ClassVar[tuple[bytes, ...]] = (b"220", b"EHLO", b"HELO")
    ports: ClassVar[tuple[tuple[str, int], ...]] = (("tcp", 25), ("tcp", 587))

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        EHLO/HELO after optional whitespace, or a greeting alone."""
        if orig < 0:
            return resp == 0x32  # "220"
        return orig in _OPENS

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """A ``220`` greeting answered by EHLO/HELO (either may be missing from a one-sided capture)."""
        if proto != "tcp":
            return False
        hello = orig.lstrip()[:5].upper() in (b"EHLO ", b"HELO ")
        greeting = resp[:4] in (b"220 ", b"220-")
        if not orig:
            return greeting and b"SMTP" in resp.split(b"\n", 1)[0].upper()
        return hello and (not resp or greeting)

    def analyze(self, conv: Conversation) -> Analysis:
        st = _State(conv, ts=conv.ts)
        bufs = {True: bytearray(), False: bytearray()}
        tls: list[Segment] = []  # what follows the server's 220 to STARTTLS
        try:
            for k, (ts, o, data, _gap, _flags) in enumerate(segment_rows(conv.segments)):
                if st.tls:
                    # Zeek's StartTLS(): the line splitter goes, an SSL child gets the rest (bytes
                    # the client had buffered as a partial line are lost, as there).
                    tls = tls + conv.segments[k:]
                    break
                st.ts = ts
                buf = bufs[o]
                buf.extend(data)
                while not st.tls:
                    if o and st.in_data and not st.in_headers:
                        # A message body: only its closing "." line matters, so skip to it.
                        m = _DATA_END.search(buf)
                        if m is None:
                            del buf[: buf.rfind(b"\n") + 1]
                            break
                        del buf[: m.end()]
                        _data_line(st, ".")
                        continue
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line = bytes(buf[:nl]).rstrip(b"\r").decode("utf-8", "replace")
                    del buf[: nl + 1]
                    if not o:
                        _reply(st, line)
                        if st.tls and buf:  # the server's first TLS bytes came with the 220
                            tls = [Segment(ts, False, bytes(buf))]
                    elif st.in_data:
                        _data_line(st, line)
                    elif line:
                        _command(st, line)
        except Exception:  # malformed input must never escape the analyser
            pass
        st.emit()
        res = Analysis(st.confirmed, st.records)
        if st.tls:
            inner = handover.by_service("ssl", handover.child(conv, tls))
            if inner is not None:
                res.inner.append(inner)
        return res


register(SMTPAnalyzer())
