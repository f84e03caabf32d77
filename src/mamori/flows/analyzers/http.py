"""HTTP analyser: http.log rows from one TCP conversation, with Zeek 7.2's pairing and quirks.

Two layers, as in Zeek. ``_Protocol`` is the C++ analyser: it splits each direction into lines (CRLF,
LF or CR), parses request and status lines, and frames bodies (``http_wire``). ``_Script`` is
``base/protocols/http/main.zeek``: it turns the protocol events into rows, pairing requests and
replies through ``current_request``/``current_response`` counters so that pipelining, replies
before requests and 1xx interim replies land in the same rows Zeek writes. Both directions are
processed in delivery order because that pairing depends on the interleaving.

Zeek's HTTP analyser also reacts to TCP control events: a RST interrupts both messages where they
are (a body stops counting), a FIN ends that side's message after flushing a partial line, and a
connection seen without its handshake is not analysed at all. A reassembler passes these as
zero-length segments with ``Segment.flags`` (FIN, RST) and ``Conversation.partial``; both are read
with ``getattr`` so a reassembler without them still works (each side is then taken to have closed
at its end). After an upgrade or a CONNECT, ``_Tunnel`` is Zeek's PIA (behind the WebSocket frame
reader for WebSocket) looking for HTTP inside the tunnelled stream.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import deque
from typing import ClassVar

import pyarrow as pa

from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.analyzers.dns_wire import escape
from mamori.flows.analyzers.http_wire import (
    BODY_EXPECTED,
    BODY_MAYBE,
    BODY_NOT_EXPECTED,
    ENTITY_HEADERS,
    HEAD_BYTES,
    Message,
    token,
)
from mamori.flows.analyzers.mime import sniff
from mamori.flows.analyzers.websocket import FrameReader
from mamori.flows.conversation import Conversation, segment_rows
from mamori.schema.http import SCHEMA

_TOKEN = re.compile(rb"[^\x00-\x20\x7f-\xff()<>@,;:\\\"/\[\]?={}]+")
# A run of URI characters (RFC 3986's unreserved and reserved, and %), the version after the URI,
# and the status line's parts.
_URI_RUN = re.compile(rb"[A-Za-z0-9:/?#\[\]@!$&'()*+,;=\-_.~%]*")
_VERSION_AT = re.compile(rb"[ \t]*HTTP/", re.I)
_VERSION_NUM = re.compile(rb"\d\.\d")
_TO_CODE = re.compile(rb"[^ \t]*[ \t]+")
_REASON = re.compile(rb"[^ \t]*[ \t]+(.*)", re.S)
# The common request and status lines whole ("GET /x HTTP/1.1", "HTTP/1.1 200 OK"): one match
# gives what the general parse of ``request_line``/``reply_line`` gives for them (a token method,
# one space, a URI run, " HTTP/d.d"; the version, one blank run after three digits, the reason).
_PLAIN_REQUEST = re.compile(rb"([A-Z]+) ([A-Za-z0-9:/?#\[\]@!$&'()*+,;=\-_.~%]+) HTTP/(\d)\.(\d)")
_PLAIN_REPLY = re.compile(rb"HTTP/(\d)\.(\d) (\d\d\d)[ \t]+(.*)", re.S)
_EOL = re.compile(rb"\r\n|\n|\r(?!$)")
_CRLF = re.compile(rb"\r\n")
# Request headers the script reads, by lower-case name (the parser hands it that form).
_SIMPLE = {b"referer": "referrer", b"host": "host", b"origin": "origin", b"user-agent": "user_agent"}  # fmt: skip
_PROXY = {b"forwarded", b"x-forwarded-for", b"x-forwarded-from", b"client-ip", b"via", b"xroxy-connection", b"proxy-connection"}  # fmt: skip
_AUTHORIZATION = (b"authorization", b"proxy-authorization")
# Every header name this analyser or its script reads (any other only makes the message's state).
_WANTED = ENTITY_HEADERS | {b"connection", b"upgrade", *_SIMPLE, *_PROXY, *_AUTHORIZATION}
_METHODS = (b"PRI", b"OPTIONS", b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"TRACE", b"CONNECT", b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"VERSION-CONTROL", b"REPORT", b"CHECKOUT", b"CHECKIN", b"UNCHECKOUT", b"MKWORKSPACE", b"UPDATE", b"LABEL", b"MERGE", b"BASELINE-CONTROL", b"MKACTIVITY", b"ORDERPATCH", b"ACL", b"PATCH", b"SEARCH", b"BCOPY", b"BDELETE", b"BMOVE", b"BPROPFIND", b"BPROPPATCH", b"NOTIFY", b"POLL", b"SUBSCRIBE", b"UNSUBSCRIBE", b"X-MS-ENUMATTS", b"RPC_OUT_DATA", b"RPC_IN_DATA")  # fmt: skip
_SIGNATURE = re.compile(rb"^\s*(" + b"|".join(_METHODS) + rb")\s*\S+\s+HTTP/\d\.\d", re.I)
IGNORE_VIOLATIONS_AFTER = 10 * 1024  # DPD::ignore_violations_after
DPD_BUFFER, DPD_MAX_PACKETS = 1024, 100  # dpd_buffer_size, dpd_max_packets
# Zeek's HTTP signatures (base/protocols/http/dpd.sig), each side matched on its own.
_DPD_CLIENT = re.compile(rb"\s*(" + b"|".join(_METHODS[1:]) + rb")")
_DPD_SERVER = re.compile(rb"[hH][tT][tT][pP]/[0-9]")
FIN, RST = 0x01, 0x04  # control marks a reassembler may put in the segment list (Segment.flags)
MAX_PENDING = 100  # HTTP::max_pending_requests

Info = dict[str, object]
_NONE_FIELDS: dict[str, object] = dict.fromkeys(SCHEMA.names[7:])


def unescape_uri(uri: bytes) -> bytes:
    """Zeek's ``unescape_URI``: %XX and %uXXXX decoded, malformed escapes kept as they are."""
    if b"%" not in uri:
        return bytes(uri)  # nothing to decode: the common case, without a loop per byte
    out, i, n = bytearray(), 0, len(uri)
    hexd = b"0123456789abcdefABCDEF"
    while i < n:
        c = uri[i]
        if c != 0x25 or i + 1 == n:
            out.append(c)
        elif i + 2 == n:
            out += uri[i : i + 2]
            break
        elif uri[i + 1] == 0x25:
            pass  # a doubled % drops the first one
        elif uri[i + 1] in hexd and uri[i + 2] in hexd:
            out.append(int(uri[i + 1 : i + 3], 16))
            i += 2
        elif n - (i + 1) >= 5 and uri[i + 1] == 0x75 and all(b in hexd for b in uri[i + 2 : i + 6]):
            if uri[i + 2 : i + 4] != b"00":
                out.append(int(uri[i + 2 : i + 4], 16))
            out.append(int(uri[i + 4 : i + 6], 16))
            i += 5
        else:
            out += uri[i : i + 2]
            i += 1
        i += 1
    return bytes(out)


_VERSION_STRS: dict[tuple[int, int], str] = {}


def _version_str(v: tuple[int, int]) -> str:
    """The version as http.log writes it ("1.1"), made once per version seen."""
    out = _VERSION_STRS.get(v)
    if out is None:
        out = _VERSION_STRS[v] = f"{v[0] + v[1] * 0.1:.1f}"
    return out


class _Script:
    """``HTTP::State`` and the event handlers of Zeek's http/main.zeek."""

    def __init__(self) -> None:
        self.pending: dict[int, Info] = {}
        self.cur_req = self.cur_resp = self.depth = 0
        self.logged: list[Info] = []

    def _state(self, ts: float, is_orig: bool) -> Info:
        idx = self.cur_req if is_orig else self.cur_resp
        info = self.pending.get(idx)
        if info is None:
            self.depth += 1
            info = self.pending[idx] = {"ts": ts, "trans_depth": self.depth, "request_body_len": 0, "response_body_len": 0, "tags": []}  # fmt: skip
        return info

    def request(self, ts: float, method: bytes, uri: bytes) -> None:
        self.cur_req = max(self.cur_req, self.cur_resp)
        if len(self.pending) > MAX_PENDING:
            self.cur_resp = max(self.cur_resp, 1)
            while self.cur_resp < self.cur_req:
                if self.cur_resp in self.pending:
                    self.logged.append(self.pending.pop(self.cur_resp))
                self.cur_resp += 1
        self.cur_req += 1
        info = self._state(ts, True)
        info["method"], info["uri"] = escape(method), escape(uri)

    def reply(self, ts: float, version: str, code: int, reason: bytes) -> None:
        cur = self.pending.get(self.cur_resp)
        if cur is None or (
            cur.get("status_code") is not None and not 100 <= int(cur["status_code"]) <= 199
        ):  # type: ignore[call-overload]
            self.cur_resp += 1
        info = self._state(ts, False)
        info.update(status_code=code, status_msg=escape(reason), version=version)
        if 100 <= code <= 199:
            info["info_code"], info["info_msg"] = code, escape(reason)

    def header(self, ts: float, is_orig: bool, lname: bytes, value: bytes) -> None:
        self.headers(ts, is_orig, [(lname, value)])

    def headers(self, ts: float, is_orig: bool, hdrs: list[tuple[bytes, bytes]]) -> None:
        """``http_header`` for each of a message's headers in order (one ``_state`` for all: no
        handler between them changes which state is current)."""
        info = self._state(ts, is_orig)
        if not is_orig:
            return
        simple = _SIMPLE
        for lname, value in hdrs:
            field = simple.get(lname)
            if field is not None:
                info[field] = escape(value)
            elif lname in _PROXY or lname in _AUTHORIZATION:
                self._rare_header(info, lname, value)

    @staticmethod
    def _rare_header(info: Info, lname: bytes, value: bytes) -> None:
        if lname in _PROXY:
            proxied = info.setdefault("proxied", [])
            entry = escape(lname.upper() + b" -> " + value)
            if entry not in proxied:  # type: ignore[operator]
                proxied.append(entry)  # type: ignore[union-attr]
        elif lname in _AUTHORIZATION and value[:6].lower() == b"basic ":
            encoded = re.sub(rb"^[bB][aA][sS][iI][cC][ \t]+", b"", value, count=1)
            try:
                userpass = base64.b64decode(encoded + b"===", validate=False)
            except (binascii.Error, ValueError):
                userpass = b""
            if b":" in userpass:
                info["username"] = escape(
                    userpass.split(b":", 1)[0]
                )  # password: never (Zeek default)
            else:
                info["username"] = escape(b"<problem-decoding> (" + value + b")")

    def message_done(self, ts: float, is_orig: bool, body_length: int, head: bytes = b"") -> None:
        info = self._state(ts, is_orig)
        info["request_body_len" if is_orig else "response_body_len"] = body_length
        mime = sniff(head) if head else None
        if mime is not None:  # Zeek's file analysis names a body's type by its content
            info["orig_mime_types" if is_orig else "resp_mime_types"] = [mime]
        code = info.get("status_code")
        if not is_orig and not (code is not None and 100 <= int(code) <= 199):  # type: ignore[call-overload]
            self.logged.append(info)
            self.pending.pop(self.cur_resp, None)

    def finish(self) -> list[Info]:
        self.logged.extend(info for idx, info in self.pending.items() if idx != 0)
        self.pending.clear()
        return self.logged


class _Protocol:
    """Zeek's HTTP_Analyzer: request/status lines, message lifecycle, upgrades and violations."""

    def __init__(self, script: _Script) -> None:
        self.s = script
        self.ts = 0.0
        self.req_state, self.rep_state = "line", "line"
        self.req: Message | None = None
        self.rep: Message | None = None
        self.req_ongoing = self.rep_ongoing = False
        self.unanswered: deque[bytes] = deque()
        self.req_version = self.rep_version = (0, 0)
        self.keep_alive = self.conn_close = self.upgrade_conn = self.connect_req = False
        self.upgrade_proto = b""
        self.reply_code = 0
        self.num_requests = 0
        self.stopped = False  # upgraded, tunnelled (CONNECT) or disabled after a violation
        self.tunnel: _Tunnel | None = None  # what reads the stream after an upgrade or CONNECT
        self.seen = 0
        self.confirmed = False

    def _set_version(self, is_orig: bool, v: tuple[int, int]) -> None:
        """Zeek's SetVersion: the latest version wins (even an unparsable one, 0.0)."""
        if is_orig:
            self.req_version = v
        else:
            self.rep_version = v
        if v > (1, 0):
            self.keep_alive = True

    def _violation(self) -> None:
        if self.seen <= IGNORE_VIOLATIONS_AFTER:
            self.done()
            self.stopped = True

    def _header(self, is_orig: bool, name: bytes, lname: bytes, value: bytes) -> None:
        if lname == b"connection" or lname == b"upgrade":
            self._connection_header(is_orig, lname, value)
        self.s.header(self.ts, is_orig, lname, value)

    def headers(self, is_orig: bool, hdrs: list[tuple[bytes, bytes]]) -> None:
        """``_header`` for each of a header block's headers, in order, with one call (at least one
        header: ``_state`` runs; any header not in ``_WANTED`` may be left out, it changes nothing)."""
        for lname, value in hdrs:
            if lname == b"connection" or lname == b"upgrade":
                self._connection_header(is_orig, lname, value)
        self.s.headers(self.ts, is_orig, hdrs)

    def _connection_header(self, is_orig: bool, lname: bytes, value: bytes) -> None:
        if lname == b"connection":
            tok = token(value).lower()
            if is_orig and tok == b"keep-alive":
                self.keep_alive = True
            elif not is_orig and tok == b"close":
                self.conn_close = True
                if self.rep is not None:  # read again when this reply's headers end
                    self.rep.connection_close = True
            elif not is_orig and tok == b"upgrade":
                self.upgrade_conn = True
        if not is_orig and lname == b"upgrade":
            self.upgrade_proto = token(value)

    def _new_message(self, is_orig: bool, expect: int) -> Message:
        msg = Message(
            is_orig,
            expect,
            self.req_version if is_orig else self.rep_version,
            self._req_header if is_orig else self._rep_header,
            self._req_done if is_orig else self._rep_done,
        )
        msg.connection_close = self.conn_close
        msg.reply_code = 0 if is_orig else self.reply_code
        return msg

    # The callbacks a message gets: bound methods instead of a new ``partial`` per message.
    def _req_header(self, name: bytes, lname: bytes, value: bytes) -> None:
        self._header(True, name, lname, value)

    def _rep_header(self, name: bytes, lname: bytes, value: bytes) -> None:
        self._header(False, name, lname, value)

    def _req_done(self, body_length: int) -> None:
        self._message_done(True, body_length)

    def _rep_done(self, body_length: int) -> None:
        self._message_done(False, body_length)

    def _message_done(self, is_orig: bool, body_length: int) -> None:
        msg = self.req if is_orig else self.rep
        self.s.message_done(self.ts, is_orig, body_length, msg.head if msg is not None else b"")
        if is_orig:
            self.request_made(False)
        else:
            self.reply_made(False)

    def request_made(self, interrupted: bool) -> None:
        if not self.req_ongoing:
            return
        self.req_ongoing = False
        if self.req is not None:
            self.req.end()
        self.req_state = "nothing" if interrupted else "line"

    def reply_made(self, interrupted: bool) -> None:
        if not self.rep_ongoing:
            return
        self.rep_ongoing = False
        if self.rep is not None:
            self.rep.end()
        if not 100 <= self.reply_code < 200 and self.unanswered:
            self.unanswered.popleft()
        upgraded = self.reply_code == 101 and len(self.unanswered) == 1 and self.upgrade_conn and bool(self.upgrade_proto)  # fmt: skip
        if upgraded:  # HTTP::upgrade_analyzers knows WebSocket; anything else gets a plain PIA
            self.tunnel = _Tunnel(self, self.upgrade_proto.lower() == b"websocket")
        self.reply_code, self.upgrade_conn, self.upgrade_proto = 0, False, b""
        self.rep_state = "nothing" if interrupted or upgraded else "line"
        self.stopped = self.stopped or upgraded

    def done(self) -> None:
        self.request_made(True)
        self.reply_made(True)

    def request_line(self, line: bytes) -> None:
        plain = _PLAIN_REQUEST.fullmatch(line)
        if plain is not None:  # what the general steps below find in such a line, in one match
            method, uri, major, minor = plain.groups()
            version = (major[0] - 48, minor[0] - 48)
        else:
            m = _TOKEN.match(line)
            rest = line[m.end() :] if m else b""
            if not m or rest[:1] not in (b" ", b"\t"):
                self._bad_request(line)
                return
            method, rest = m.group(0), rest.lstrip(b" \t")
            end = _URI_RUN.match(rest).end()  # type: ignore[union-attr]
            if end >= len(rest) and rest.startswith(b"HTTP/"):
                end = 0
            vm = _VERSION_AT.search(rest, end) if end < len(rest) else None
            if vm is None:
                version, uri = (0, 9), rest
                if len(method) < 3 or not uri:
                    self._bad_request(line)
                    return
            else:
                uri, vstr = rest[: vm.start()], rest[vm.end() :]
                version = (vstr[0] - 48, vstr[2] - 48) if _VERSION_NUM.match(vstr) else (0, 0)
        self._set_version(True, version)
        self.num_requests += 1
        self.req_state, self.req_ongoing = "message", True
        self.unanswered.append(method)
        self.confirmed = True
        self.connect_req = self.connect_req or b"CONNECT".startswith(method.upper())
        self.s.request(self.ts, method, unescape_uri(uri))
        self.req = self._new_message(True, BODY_MAYBE)
        if version == (0, 9):
            if self.rep is not None and not self.rep.finished:
                self.rep.end()
            self.rep_state = "http09"

    def _bad_request(self, line: bytes) -> None:
        if self.num_requests > 0 and not self.keep_alive:
            return  # crud after the request: ignored
        if line:
            self._violation()
            self.req_state = "nothing"

    def reply_line(self, line: bytes) -> None:
        plain = _PLAIN_REPLY.fullmatch(line)
        if plain is not None:  # what the general steps below find in such a line, in one match
            major, minor, code_s, reason = plain.groups()
            self._set_version(False, (major[0] - 48, minor[0] - 48))
            code = int(code_s)
        else:
            if line[:5].upper() != b"HTTP/":
                if line:
                    self._violation()
                    self.rep_state = "nothing"
                return
            rest = line[5:]
            self._set_version(
                False, (rest[0] - 48, rest[2] - 48) if _VERSION_NUM.match(rest) else (0, 0)
            )
            m = _TO_CODE.match(rest)
            if m is None or len(rest) - m.end() < 3:  # no status code: not a reply line
                self._violation()
                self.rep_state = "nothing"
                return
            code_s = rest[m.end() : m.end() + 3]
            code = int(code_s) if code_s.isdigit() else 0
            r = _REASON.match(rest, m.end() + 3)
            reason = r.group(1) if r else b"<empty>"
        if self.unanswered:
            self.confirmed = True
        self.rep_state, self.rep_ongoing, self.reply_code = "message", True, code
        self.s.reply(self.ts, _version_str(self.rep_version), code, reason)
        if self.connect_req and code != 200:
            self.connect_req = False
        method = self.unanswered[0] if self.unanswered else None
        no_body = (method is not None and b"HEAD".startswith(method.upper())) or 100 <= code < 200 or code in (204, 304)  # fmt: skip
        self.rep = self._new_message(False, BODY_NOT_EXPECTED if no_body else BODY_EXPECTED)

    def http09_data(self, data: bytes) -> None:
        if self.rep is None or self.rep.finished:
            self._set_version(False, (0, 9))
            if self.unanswered:
                self.confirmed = True
                self.unanswered.popleft()
            self.conn_close = self.rep_ongoing = True
            self.s.reply(self.ts, "0.9", 0, b"<empty>")
            self.rep = self._new_message(False, BODY_EXPECTED)
            self.rep.deliver(b"", True)
        self.rep.deliver(data, False)

    def line(self, is_orig: bool, line: bytes) -> None:
        if is_orig:
            if self.req_state == "line":
                self.request_line(line)
            elif self.req_state == "message" and self.req is not None:
                self.req.deliver(line, True)
        elif self.rep_state == "line":
            self.reply_line(line)
        elif self.rep_state == "message" and self.rep is not None:
            self.rep.deliver(line, True)
            if self.connect_req and not line:
                self.stopped = True
                self.tunnel = _Tunnel(self, False)


def _header_block(data: bytes, pos: int) -> int:
    """Where the header block starting at ``pos`` ends (the CRLF of its empty line), or -1 when it
    is not whole in ``data`` or not plain: the fast path of ``_Side._run`` takes a block only if
    cutting it at each CRLF gives the lines ContentLine gives (no bare CR or LF) and each line is
    a new header for ``Message.deliver`` (none empty, none starting with a space, tab or NUL).
    """
    end = data.find(b"\r\n\r\n", pos)
    if end <= pos:
        return -1
    block = data[pos:end]
    crlf = block.count(b"\r\n")
    if (
        block.count(b"\r") != crlf
        or block.count(b"\n") != crlf
        or b"\x00" in block
        or b"\r\n " in block
        or b"\r\n\t" in block
        or block[0] in b" \t\r"
    ):
        return -1
    return end + 2


class _Side:
    """One direction's byte stream, cut into lines or plain runs the way ContentLine cuts it.

    The buffer is a bytearray with a resume point for the end-of-line search, so a long line that
    arrives over many segments (an uploaded file inside a multipart part) costs linear time.
    """

    def __init__(self, proto: _Protocol, is_orig: bool) -> None:
        self.p, self.is_orig = proto, is_orig
        self.buf = bytearray()
        self.scan = 0  # where the next end-of-line search starts
        self.skip = False  # a content gap outside a body: Zeek stops delivering this direction
        self.delivery = -1  # ContentLine's delivery size: bytes until a partial line is forced out
        self.eof_seen = False

    def _msg(self) -> Message | None:
        return self.p.req if self.is_orig else self.p.rep

    def feed(self, data: bytes) -> None:
        """One delivery (a segment's payload): lines and plain runs, then the delivery-size check."""
        p = self.p
        if p.tunnel is not None:
            p.tunnel.feed(self.is_orig, bytes(data))
            return
        n = len(data)
        if self.delivery > 0:
            self.delivery -= n
        msg = p.req if self.is_orig else p.rep
        if (
            msg is not None
            and msg.plain >= n > 0
            and not self.buf
            and not msg.finished
            and not msg.gzip
            and not msg.chunk_state
            and not msg.in_header
            and msg.boundary is None
            and not p.stopped
            and not self.skip
            and (self.is_orig or p.rep_state != "http09")
        ):  # a delivery wholly inside a counted body: ``_run``'s body run, without the loop
            head = msg.head
            if len(head) < HEAD_BYTES:
                msg.head = head + bytes(data[: HEAD_BYTES - len(head)])
            msg.body_length += n
            msg.expect -= n
            msg.plain -= n
            self.scan = 0
            if msg.expect <= 0:
                msg.delivery = -1
                msg.end()
            if msg.delivery is not None:
                self.delivery, msg.delivery = msg.delivery, None
        else:
            self._run(data)
        if p.tunnel is not None:  # this delivery switched protocols: its rest is the tunnel's
            rest = bytes(self.buf)
            self.buf.clear()
            if rest:
                p.tunnel.feed(self.is_orig, rest)
            return
        if self.delivery == 0:
            self.delivery = -1
            msg = self._msg()
            crlf_only = msg is not None and msg.crlf_only
            if self.buf and not self.skip and not p.stopped and (crlf_only or self.buf[-1] != 13):
                line = bytes(self.buf)  # Zeek ends the partial line as if CRLF had followed
                self.buf.clear()
                self.scan = 0
                p.line(self.is_orig, line)
                msg = self._msg()
                if msg is not None and msg.delivery is not None:
                    self.delivery, msg.delivery = msg.delivery, None

    def _run(self, data: bytes) -> None:
        """Cut ``data``, after what the buffer still holds, into lines and plain runs.

        The pieces are sliced from one ``bytes`` with a moving offset (one copy each); only an
        unfinished line goes back to the buffer, which is searched in place while it grows.
        """
        p, buf, is_orig = self.p, self.buf, self.is_orig
        if p.stopped or self.skip or p.tunnel is not None:
            buf += data
            return
        view = type(data) is not bytes  # a view of the capture (``views``): only bodies stay one
        if buf:
            buf += data
            msg = p.req if is_orig else p.rep
            line_mode = (is_orig or p.rep_state != "http09") and not (
                msg is not None and msg.plain and not msg.finished
            )
            if (
                line_mode
                and (_CRLF if msg is not None and msg.crlf_only else _EOL).search(buf, self.scan)
                is None
            ):
                self.scan = max(0, len(buf) - 1)  # still no end of line: wait for more
                return
            data = bytes(buf)
            buf.clear()
            view = False
        pos, n, scan = 0, len(data), self.scan
        try:
            while pos < n and not p.stopped and not self.skip and p.tunnel is None:
                if not is_orig and p.rep_state == "http09":
                    chunk = bytes(data[pos:]) if view else data[pos:]
                    pos, scan = n, 0
                    p.http09_data(chunk)
                    continue
                msg = p.req if is_orig else p.rep
                if msg is not None and msg.plain and not msg.finished:
                    end = min(n, pos + msg.plain)
                    if (
                        not msg.gzip
                        and not msg.chunk_state
                        and not msg.in_header
                        and msg.boundary is None
                    ):
                        # The common body run (a length or until close, not compressed): what
                        # ``Message.deliver`` does with it, without copying the bytes it only counts.
                        size = end - pos
                        head = msg.head
                        if len(head) < HEAD_BYTES:
                            msg.head = head + bytes(
                                data[pos : min(end, pos + HEAD_BYTES - len(head))]
                            )
                        pos, scan = end, 0
                        msg.body_length += size
                        msg.expect -= size
                        msg.plain = max(0, msg.plain - size)
                        if msg.expect <= 0:
                            msg.delivery = -1
                            msg.end()
                    else:
                        chunk = data[pos:end]
                        pos, scan = end, 0
                        if view and msg.in_header:
                            chunk = bytes(chunk)
                        msg.deliver(chunk, False)
                else:
                    if view:  # lines are parsed: from here on, this delivery's rest as bytes
                        data, n, pos, view = bytes(data[pos:]), n - pos, 0, False
                    if msg is not None and msg.in_header and not msg.finished:
                        end = _header_block(data, pos)
                        if end >= 0 and (p.req_state if is_orig else p.rep_state) == "message":
                            # The whole header block and its empty line, as ``line`` would take
                            # them one by one (the block's lines end in CRLF, none is special).
                            matched, hdrs = msg.header_block(data[pos : end - 2], _WANTED)
                            pos, scan = end + 2, 0
                            if matched:
                                p.headers(is_orig, hdrs)
                            msg.all_headers()
                            if not is_orig and p.connect_req:  # ``line``'s empty-line step
                                p.stopped = True
                                p.tunnel = _Tunnel(p, False)
                            msg = p.req if is_orig else p.rep
                            if msg is not None and msg.delivery is not None:
                                self.delivery, msg.delivery = msg.delivery, None
                            continue
                    start = pos + scan
                    if msg is not None and msg.crlf_only:
                        cut = data.find(b"\r\n", start)
                        nxt = cut + 2
                    else:  # _EOL's match, from two plain finds (a bare CR is bounded by the LF)
                        cut = data.find(b"\n", start)
                        if cut < 0:
                            cut = data.find(b"\r", start)
                            if cut == n - 1:
                                cut = -1  # a CR at the very end may be half of a CRLF
                            nxt = cut + 1
                        else:
                            nxt = cut + 1
                            cr = data.find(b"\r", start, cut)
                            if cr >= 0:
                                nxt = cut + 1 if cr == cut - 1 else cr + 1
                                cut = cr
                    if cut < 0:
                        scan = max(0, n - pos - 1)
                        return
                    line = data[pos:cut]
                    pos, scan = nxt, 0
                    p.line(is_orig, line)
                    msg = p.req if is_orig else p.rep
                if msg is not None and msg.delivery is not None:  # a new ContentLine delivery size
                    self.delivery, msg.delivery = msg.delivery, None
        finally:
            self.scan = scan
            if pos < n:
                buf += memoryview(data)[pos:]

    def eof(self) -> None:
        """This direction's FIN, once all its data is delivered (Zeek's EndpointEOF)."""
        if self.eof_seen:
            return
        self.eof_seen = True
        p = self.p
        if self.buf and p.tunnel is None and not p.stopped and not self.skip:
            self.feed(b"\n")  # ContentLine ends a partial line with a bare LF
        if self.is_orig:
            p.request_made(False)
        else:
            p.reply_made(False)

    def gap(self, n: int) -> None:
        if self.p.tunnel is not None:
            self.p.tunnel.gap(self.is_orig, n)
            return
        msg = self._msg()
        if msg is not None and msg.gap(n):
            return
        self.buf.clear()
        self.scan = 0
        if self.is_orig:
            self.p.done()
        else:
            self.p.reply_made(True)
        self.skip = True


class _Tunnel:
    """What Zeek attaches after an upgrade or a CONNECT: a PIA, behind a WebSocket reader if the
    upgrade was to WebSocket. Only HTTP is looked for inside; its rows share the connection's
    ``_Script`` state, so they continue the outer trans_depth as Zeek's do.
    """

    def __init__(self, outer: _Protocol, websocket: bool) -> None:
        self.outer = outer
        self.frames = {True: FrameReader(), False: FrameReader()} if websocket else None
        self.buffer: list[tuple[bool, bytes]] = []
        self.size = self.chunks = 0
        self.heads = {True: b"", False: b""}
        self.matching = True  # PIA buffers and matches only the beginning of the stream
        self.inner: _Protocol | None = None
        self.sides: dict[bool, _Side] = {}
        self.broken = False

    def feed(self, is_orig: bool, data: bytes) -> None:
        if self.broken:
            return
        chunks = self.frames[is_orig].feed(data) if self.frames is not None else [data]
        for chunk in chunks:
            self._deliver(is_orig, chunk)

    def gap(self, is_orig: bool, n: int) -> None:
        """A content gap: Zeek's WebSocket analyser skips everything after one (both sides); a
        plain PIA stops matching, and an HTTP analyser found inside sees the gap itself."""
        if self.frames is not None:
            self.broken = True
        elif self.inner is not None:
            self.sides[is_orig].gap(n)
        else:
            self.matching = False
            self.buffer = []

    def _deliver(self, is_orig: bool, data: bytes) -> None:
        if self.inner is not None:
            self.inner.ts, self.inner.seen = self.outer.ts, self.outer.seen
            self.sides[is_orig].feed(data)
            return
        if not self.matching:
            return
        self.buffer.append((is_orig, data))
        self.size += len(data)
        self.chunks += 1
        full = self.size > DPD_BUFFER or self.chunks > DPD_MAX_PACKETS
        self.heads[is_orig] += data
        sig = _DPD_CLIENT if is_orig else _DPD_SERVER
        if sig.match(self.heads[is_orig][:DPD_BUFFER]):
            self.inner = _Protocol(self.outer.s)
            self.sides = {True: _Side(self.inner, True), False: _Side(self.inner, False)}
            for o, d in self.buffer:  # PIA replays what it buffered, in arrival order
                self._deliver(o, d)
            self.buffer = []
        elif full:
            self.matching = False
            self.buffer = []

    def done(self) -> None:
        if self.inner is not None:
            self.inner.done()


# First bytes a request line can have: whitespace or a method's first letter, either case.
_OPENS = frozenset(
    b" \t\n\r\x0b\x0c" + bytes({m[0] for m in _METHODS}) + bytes({m[0] for m in _METHODS}).lower()
)


class HttpAnalyzer:
    """Zeek-faithful HTTP/1.x: pipelining, 1xx, chunked, until-close and compressed bodies."""

    service: ClassVar[str] = "http"
    table: ClassVar[str] = "http"
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    control_marks: ClassVar[bool] = True
    views: ClassVar[bool] = True  # segment payload may be a memoryview (bodies are only counted)
    prefixes: ClassVar[tuple[bytes, ...]] = (*(m + b" " for m in _METHODS), b"HTTP/")
    # Zeek also attaches HTTP by port, so odd methods on these ports still reach ``matches``.
    ports: ClassVar[tuple[tuple[str, int], ...]] = tuple(
        ("tcp", p) for p in (80, 81, 631, 1080, 3128, 8000, 8080, 8888)
    )

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        A method after optional whitespace, or a status line."""
        return orig in _OPENS or resp == 0x48  # "HTTP/"

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """A request line with a known method and HTTP/x.y, or a status line ``HTTP/1.x NNN``."""
        if proto != "tcp":
            return False
        if _SIGNATURE.match(orig[:4096]):
            return True
        return re.match(rb"HTTP/\d\.\d[ \t]+\d{3}", resp[:64]) is not None

    def analyze(self, conv: Conversation) -> Analysis:
        try:
            return self._analyze(conv)
        except Exception:  # defensive: malformed payload must never escape as an exception
            return Analysis(False, [])

    def _analyze(self, conv: Conversation) -> Analysis:
        if getattr(conv, "partial", False):
            return Analysis(False, [])  # Zeek's HTTP ignores connections seen without a handshake
        script = _Script()
        proto = _Protocol(script)
        sides = {True: _Side(proto, True), False: _Side(proto, False)}
        # A conversation with control marks (``marks``): a side without a FIN mark never closed.
        # Without marks (a conversation built by hand, a tunnel's inner stream), both sides did.
        marked = getattr(conv, "marks", False)
        for ts, is_orig, data, gap, flags in segment_rows(conv.segments):
            proto.ts = ts
            if gap:  # a FIN mark may carry the hole before it (Zeek reports it at close)
                sides[is_orig].gap(gap)
            if flags:  # a control mark: no data of its own
                marked = True
                if flags & RST:  # PacketWithRST: both messages end, interrupted
                    proto.done()
                if flags & (RST | FIN):
                    sides[is_orig].eof()
                continue
            proto.seen += len(data)
            sides[is_orig].feed(data)
        if not marked:
            for is_orig in (True, False):
                sides[is_orig].eof()
        proto.done()  # the connection's end: Zeek's Done, where a partial line no longer counts
        if proto.tunnel is not None:
            proto.tunnel.done()
        rows = []
        base = {"ts": None, **conv.id_fields(), **_NONE_FIELDS}  # each row: a copy, then its info
        for info in script.finish():
            row = base.copy()
            row["ts"] = info.pop("ts")
            row.update(info)
            rows.append(row)
        return Analysis(proto.confirmed, rows)


register(HttpAnalyzer())
