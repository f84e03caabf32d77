"""SOCKS analyser: recognise a SOCKS4/4a/5 handshake and hand the tunnelled stream on.

Zeek's SOCKS analyser parses the handshake of each side; when both sides are done (SOCKS4: request
and reply; SOCKS5: method negotiation, optional username/password, request and reply) it attaches a
PIA to the rest of the connection, so HTTP or TLS inside the tunnel are logged under the SOCKS
connection's uid with service ``socks,http`` / ``socks,ssl``. The reply confirms SOCKS. This analyser
does the same: it finds where each side's handshake ends and delegates everything after it.

Zeek assumes no payload arrives before both endpoints finished their SOCKS part, and feeds bytes that
arrive earlier to the SOCKS parser; they are lost for the child here too. socks.log itself has no
lake table yet, so this analyser writes no rows of its own.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from mamori.flows.analyzers import handover
from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.conversation import Conversation, Segment


class _Violation(Exception):
    """Not SOCKS (Zeek's binpac parser would raise and the analyser report a violation)."""


def _cstring(buf: bytes | bytearray, pos: int, limit: int = 1024) -> int | None:
    """Offset just past the NUL that ends a string starting at ``pos`` (None: not complete yet)."""
    end = buf.find(b"\x00", pos)
    if end < 0:
        if len(buf) - pos > limit:
            raise _Violation
        return None
    return end + 1


def _socks5_address(buf: bytes | bytearray, pos: int) -> int | None:
    """Length of ATYP, address and port starting at ``pos`` (None: not complete yet)."""
    if len(buf) <= pos:
        return None
    atyp = buf[pos]
    if atyp == 1:
        n = 1 + 4 + 2
    elif atyp == 4:
        n = 1 + 16 + 2
    elif atyp == 3:
        if len(buf) <= pos + 1:
            return None
        n = 1 + 1 + buf[pos + 1] + 2
    else:
        raise _Violation
    return n if len(buf) >= pos + n else None


class _Handshake:
    """Both sides' SOCKS messages, consumed from their streams in delivery order."""

    def __init__(self) -> None:
        self.buf = {True: bytearray(), False: bytearray()}
        self.version = 0
        self.stage = {True: 0, False: 0}  # messages each side completed
        self.auth = False  # SOCKS5 username/password sub-negotiation chosen by the server
        self.done = {True: False, False: False}
        self.confirmed = False

    def feed(self, is_orig: bool, data: bytes) -> None:
        buf = self.buf[is_orig]
        buf += data
        while buf and not self.done[is_orig]:
            n = self._message(is_orig, buf)
            if n is None:
                return
            del buf[:n]
            self.stage[is_orig] += 1
        if self.done[is_orig]:
            buf.clear()  # bytes after the last message went to the SOCKS parser, as in Zeek

    def _message(self, is_orig: bool, b: bytearray) -> int | None:
        """Length of the next complete message of one side, marking progress; None if partial."""
        if not self.version:
            if not is_orig or b[0] not in (4, 5):
                raise _Violation
            self.version = b[0]
        stage = self.stage[is_orig]
        if self.version == 4:
            if is_orig:  # VN CD DSTPORT DSTIP USERID\0 [HOST\0 for 4a]
                if len(b) < 9:
                    return None
                if b[0] != 4 or b[1] not in (1, 2):
                    raise _Violation
                end = _cstring(b, 8)
                if end is None:
                    return None
                if b[4:7] == b"\x00\x00\x00" and b[7] != 0:
                    end = _cstring(b, end)
                    if end is None:
                        return None
                self.done[True] = True
                return end
            if len(b) < 8:  # VN CD DSTPORT DSTIP
                return None
            self.done[False] = self.confirmed = True
            return 8
        if is_orig:
            if stage == 0:  # VER NMETHODS METHODS
                if len(b) < 2 or len(b) < 2 + b[1]:
                    return None
                if b[0] != 5:
                    raise _Violation
                return 2 + b[1]
            if stage == 1 and self.auth:  # VER ULEN UNAME PLEN PASSWD
                if len(b) < 2 or len(b) < 3 + b[1]:
                    return None
                n = 3 + b[1] + b[2 + b[1]]
                return n if len(b) >= n else None
            if len(b) < 4:  # VER CMD RSV ADDR PORT
                return None
            if b[0] != 5:
                raise _Violation
            n = _socks5_address(b, 3)
            if n is None:
                return None
            self.done[True] = True
            return 3 + n
        if stage == 0:  # VER METHOD
            if len(b) < 2:
                return None
            if b[0] != 5:
                raise _Violation
            self.auth = b[1] == 2
            if b[1] == 0xFF:
                raise _Violation  # no acceptable method: nothing will be tunnelled
            return 2
        if stage == 1 and self.auth:  # VER STATUS
            return 2 if len(b) >= 2 else None
        if len(b) < 4:  # VER REP RSV ADDR PORT
            return None
        if b[0] != 5:
            raise _Violation
        n = _socks5_address(b, 3)
        if n is None:
            return None
        self.done[False] = self.confirmed = True
        return 3 + n


class SocksAnalyzer:
    """SOCKS4/4a/5 recognition and hand-over of the tunnelled stream (no socks.log rows yet)."""

    service: ClassVar[str] = "socks"
    table: ClassVar[str] = "socks"
    schema: ClassVar[pa.Schema] = pa.schema([])
    transports: ClassVar[tuple[str, ...]] = ("tcp",)
    views: ClassVar[bool] = True  # segment payload may be a memoryview (see Segment.data)
    prefixes: ClassVar[tuple[bytes, ...]] = (b"\x04\x01", b"\x04\x02", b"\x05")

    @staticmethod
    def opens(orig: int, resp: int) -> bool:
        """The router's gate before ``matches``: can it hold for prefixes whose first bytes are
        these (-1: that direction sent nothing yet)?
        A SOCKS 4 or 5 request, and an answer."""
        return orig in (4, 5) and resp >= 0

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """Zeek's dpd_socks4/5 client and server signatures (both directions are required)."""
        if proto != "tcp" or len(orig) < 3 or len(resp) < 2:
            return False
        if orig[0] == 4:
            client = orig[1] in (1, 2) and b"\x00" in orig[2:35]  # /^\x04[\x01\x02].{0,32}\x00/
            return client and resp[0] == 0 and 0x5A <= resp[1] <= 0x5D
        if orig[0] == 5:
            return orig[2] in (0, 1, 2) and resp[0] == 5 and resp[1] in (0, 1, 2, 0xFF)
        return False

    def analyze(self, conv: Conversation) -> Analysis:
        hs = _Handshake()
        rest: list[Segment] = []
        try:
            segments = iter(conv.segments)
            for seg in segments:
                if hs.done[True] and hs.done[False]:
                    rest.append(seg)  # the tunnel's first segment, then all the others at once
                    rest.extend(segments)
                    break
                if seg.gap:
                    break  # a hole inside the handshake: the tunnel cannot be followed
                hs.feed(seg.is_orig, seg.data)
        except (_Violation, IndexError):
            return Analysis(hs.confirmed)
        res = Analysis(hs.confirmed)
        if hs.confirmed and rest:
            inner = handover.recognise(handover.child(conv, rest), exclude=self.service)
            if inner is not None:
                res.inner.append(inner)
        return res


register(SocksAnalyzer())
