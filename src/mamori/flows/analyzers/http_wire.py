"""HTTP/1.x message framing as Zeek 7.2 frames it: header lines, then a body of some length.

Only *lengths* of bodies are kept, never their bytes. The rules are Zeek's, since ``request_body_len``
and ``response_body_len`` are compared against Zeek's logs:

* Content-Length, chunked transfer coding (only when the message's HTTP version is exactly 1.1),
  bodies until the connection closes (``Connection: close`` seen from the server, or a compressed body
  without a length), and line-by-line bodies (each line counts two bytes for its end of line).
* gzip/deflate bodies count their *decompressed* size, as Zeek's ``DeliverBodyClear`` does.
* multipart bodies are read line by line and end at the closing boundary only (never by their
  Content-Length). Inside a part's body only CRLF ends a line (Zeek switches its line splitter so a
  bare CR or LF in an uploaded file does not count as a line end): ``crlf_only`` tells the splitter.
* a Content-Length also sets a *delivery size*: the splitter ends a pending partial line once that
  many bytes have arrived after the segment that ended the headers (``delivery``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

UNTIL_CLOSE = 1 << 62
BODY_NOT_EXPECTED, BODY_EXPECTED, BODY_MAYBE = 0, 1, 2
# A MIME token: printable ASCII without tspecials (space and tab are not printable here).
_TOKEN = re.compile(rb"[ \t]*([!#-\'*+\-.0-9A-Z^-z|~{}]*)")
_FIELD = re.compile(rb"([^\s:]+)[ \t]*:")
_RANGE = re.compile(rb"\s*bytes\s*(\d+)\s*-\s*(\d+)\s*/")
# The headers ``_entity_header`` reads (lower case); any other skips its chain of comparisons.
ENTITY_HEADERS = frozenset(
    (
        b"content-length",
        b"content-range",
        b"transfer-encoding",
        b"content-encoding",
        b"content-type",
    )
)
_BOUNDARY = re.compile(rb'boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^;\s]+))', re.I)


def token(value: bytes) -> bytes:
    """The first MIME token of a header value (Zeek's ``get_value_token``)."""
    m = _TOKEN.match(value)
    return m.group(1) if m else b""


_DIGITS = {10: re.compile(rb"[0-9]*"), 16: re.compile(rb"[0-9a-fA-F]*")}


def atoi(data: bytes, base: int) -> int | None:
    """Zeek's ``atoi_n``: an optional sign and leading digits; None when no digit comes first."""
    neg = data.startswith(b"-")
    digits = data[1:] if neg else data
    run = _DIGITS[base].match(digits).group()  # type: ignore[union-attr]
    if not run:
        return None if digits else 0
    n = int(run, base)
    return -n if neg else n


# Bytes of a body kept for telling its file type by its magic number (``mime.sniff``).
HEAD_BYTES = 32


class _Inflater:
    """Counts decompressed bytes, falling back to raw deflate like Zeek's ZIP analyser."""

    def __init__(self) -> None:
        self.obj = zlib.decompressobj(zlib.MAX_WBITS + 32)
        self.restarted = False
        self.failed = False

    def feed(self, data: bytes) -> int:
        if self.failed or self.obj.eof:
            return 0
        total = 0
        try:
            out = self.obj.decompress(data, 1 << 16)
            while True:
                total += len(out)
                if not self.obj.unconsumed_tail or self.obj.eof:
                    break
                out = self.obj.decompress(self.obj.unconsumed_tail, 1 << 16)
        except zlib.error:
            if self.restarted or total:
                self.failed = True
                return total
            self.restarted = True
            self.obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data)
        return total


class Message:
    """One request or reply: header parsing and body accounting (Zeek's HTTP_Message/Entity)."""

    # Slots: a message is made per request and reply, and its fields are read per line and body
    # run; slots make both cheaper than an instance dict.
    __slots__ = (
        "body_length",
        "boundary",
        "chunk_state",
        "connection_close",
        "content_length",
        "crlf_only",
        "delivery",
        "expect",
        "expect_body",
        "finished",
        "gzip",
        "head",
        "header_line",
        "in_header",
        "inflater",
        "is_orig",
        "on_done",
        "on_header",
        "part",
        "plain",
        "reply_code",
        "version",
    )

    def __init__(
        self,
        is_orig: bool,
        expect_body: int,
        version: tuple[int, int],
        on_header: Callable[[bytes, bytes, bytes], None],  # (name, lower-case name, value)
        on_done: Callable[[int], None],
    ) -> None:
        self.is_orig = is_orig
        self.expect_body = expect_body
        self.version = version
        self.on_header = on_header
        self.on_done = on_done
        self.in_header = True
        self.header_line: bytes | None = None
        self.content_length = -1
        self.chunk_state = ""  # "", "before", "size", "data", "crlf", "trailer"
        self.expect = 0
        self.boundary: bytes | None = None
        self.inflater: _Inflater | None = None
        self.gzip = False
        self.body_length = 0
        self.head = b""  # the body's first ``HEAD_BYTES`` bytes: its file type (``mime.sniff``)
        self.finished = False
        self.plain = 0  # bytes the side should hand over unsplit (UNTIL_CLOSE: all of them)
        self.connection_close = False  # set by the analyser before headers end
        self.reply_code = 0
        self.part = ""  # multipart: "" (preamble/epilogue), "head" or "body" of the current part
        self.crlf_only = False  # inside a part's body, where only CRLF ends a line
        self.delivery: int | None = None  # a new delivery size for the line splitter, once

    # -- headers -------------------------------------------------------------------------------
    def _finish_header(self) -> None:
        line, self.header_line = self.header_line, None
        if line is None:
            return
        m = _FIELD.match(line)
        if not m:
            return
        name = m.group(1)
        value = line[m.end() :].lstrip(b" \t\r\n\v\f")
        lname = name.lower()
        if lname in ENTITY_HEADERS:
            self._entity_header(lname, value)
        self.on_header(name, lname, value)

    def _entity_header(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            tok = token(value)
            if tok:
                n = atoi(tok, 10)
                self.content_length = n if n is not None else 0
        elif name == b"content-range" and self.reply_code == 206:
            m = _RANGE.match(value)
            if m and int(m.group(2)) - int(m.group(1)) + 1 > 0:
                rlen = int(m.group(2)) - int(m.group(1)) + 1
                self.content_length = (
                    max(self.content_length, rlen) if self.content_length > 0 else rlen
                )
        elif name == b"transfer-encoding":
            if token(value).lower() == b"chunked" and self.version == (1, 1):
                self.chunk_state = "before"
        elif name == b"content-encoding":
            if token(value).lower() in (b"gzip", b"x-gzip", b"deflate"):
                self.gzip = True
        elif name == b"content-type":
            tok = token(value).lower()
            m = _BOUNDARY.search(value)
            if tok == b"multipart" and m:
                self.boundary = b"--" + (m.group(1) if m.group(1) is not None else m.group(2))

    def header_block(
        self, block: bytes, wanted: frozenset[bytes]
    ) -> tuple[bool, list[tuple[bytes, bytes]]]:
        """``deliver`` of a whole header block at once, up to (not including) ``all_headers``.

        ``block`` is the block's lines before the empty one that ends it, each ended by CRLF but
        the last, none holding another CR or LF, each a line ``deliver`` would take as a new
        header (not empty, not starting with a space, tab or NUL). The header still open before
        them is completed first, as the first of them would complete it. Returns whether any line
        was a header, and the (lower-case name, value) in order of the headers named in
        ``wanted`` (which must hold ``ENTITY_HEADERS``): the caller reports them (the work of
        ``on_header``, one call for all instead of a chain per line; the others change nothing)
        and then calls ``all_headers``, which is what the empty line does next in ``deliver``.
        """
        out: list[tuple[bytes, bytes]] = []
        matched = False
        line, self.header_line = self.header_line, None
        if line is not None:
            m = _FIELD.match(line)
            if m:
                matched = True
                lname = m.group(1).lower()
                if lname in wanted:
                    out.append((lname, line[m.end() :].lstrip(b" \t\r\n\v\f")))
        # _FIELD per line without the regex: its name is what precedes the first colon, less
        # trailing blanks, when that holds no whitespace (true of every wanted name; lowering
        # changes no byte's class nor position). Other lines only say whether any was a header.
        for low, line in zip(block.lower().split(b"\r\n"), block.split(b"\r\n"), strict=True):
            colon = low.find(b":")
            if colon > 0:
                lname = low[:colon].rstrip(b" \t")
                if lname in wanted:
                    matched = True
                    out.append((lname, line[colon + 1 :].lstrip(b" \t\r\n\v\f")))
                elif not matched and _FIELD.match(line):
                    matched = True
        entity = ENTITY_HEADERS
        for lname, value in out:
            if lname in entity:
                self._entity_header(lname, value)
        self.in_header = False
        return matched, out

    def all_headers(self) -> None:
        """The headers are over: what the body will be (Zeek's all-headers step)."""
        if self.content_length >= 0:
            self.delivery = self.content_length
        if self.chunk_state == "trailer":
            self.end()
            return
        if self.expect_body == BODY_NOT_EXPECTED:
            self.end()
        elif self.boundary is not None:
            pass  # line mode until the closing boundary, whatever the Content-Length says
        elif self.chunk_state:
            self.chunk_state = "size"
        elif self.content_length > 0:
            self.expect = self.plain = self.content_length
        elif self.content_length == 0:
            self.end()
        elif self.connection_close or self.gzip:
            self.expect = self.plain = UNTIL_CLOSE
        elif self.expect_body != BODY_EXPECTED:
            self.end()

    # -- body ----------------------------------------------------------------------------------
    def _body(self, data: bytes, crlf: bool) -> None:
        if len(self.head) < HEAD_BYTES and self.boundary is None and not self.gzip:
            self.head += bytes(data[: HEAD_BYTES - len(self.head)])
        if self.gzip:
            if self.inflater is None:
                self.inflater = _Inflater()
            self.body_length += self.inflater.feed(data)
        else:
            self.body_length += len(data) + (2 if crlf else 0)

    def deliver(self, data: bytes, crlf: bool) -> None:
        """One line (``crlf``) or a run of plain bytes, as Zeek's ContentLine analyser hands them."""
        if self.finished:
            return
        if self.in_header:
            if not data or data[0] == 0:
                self._finish_header()
                self.in_header = False
                self.all_headers()
            elif data[0] in b" \t":
                if self.header_line is None:
                    self.header_line = data.lstrip(b" \t")
                else:
                    self.header_line += data
            else:
                line = self.header_line
                self.header_line = data
                if line is not None:  # the previous header is complete: _finish_header, inline
                    m = _FIELD.match(line)
                    if m:
                        name = m.group(1)
                        value = line[m.end() :].lstrip(b" \t\r\n\v\f")
                        lname = name.lower()
                        if lname in ENTITY_HEADERS:
                            self._entity_header(lname, value)
                        self.on_header(name, lname, value)
            return
        if self.boundary is not None:
            self._body(data, crlf)
            if data.startswith(self.boundary):
                self.crlf_only = False
                if data[len(self.boundary) :].startswith(b"--"):
                    self.part = ""
                    self.end()
                else:
                    self.part = "head"  # a new part begins with its own headers
            elif self.part == "head" and (not data or data[0] == 0):
                self.part = "body"
                self.crlf_only = True
        elif self.chunk_state:
            self._chunked(data, crlf)
        elif self.content_length >= 0 or self.plain:
            self._body(data, False)
            self.expect -= len(data)
            self.plain = max(0, self.plain - len(data))
            if self.expect <= 0:
                self.delivery = -1
                self.end()
        else:
            self._body(data, crlf)

    def _chunked(self, data: bytes, crlf: bool) -> None:
        if self.chunk_state == "size":
            n = atoi(data, 16)
            if n is not None and n > 0:
                self.chunk_state, self.expect = "data", n
                self.plain = n
            else:
                self.in_header, self.chunk_state = True, "trailer"
        elif self.chunk_state == "data":
            self.expect -= len(data)
            self.plain = max(0, self.expect)
            if self.expect <= 0:
                self.chunk_state = "crlf"
            self._body(data, False)
        elif self.chunk_state == "crlf":
            self.chunk_state = "size"

    def gap(self, n: int) -> bool:
        """A content gap of n bytes: True when it falls wholly inside a counted body."""
        in_body = not self.in_header and self.body_length > 0 and not self.finished
        if (
            in_body
            and (self.chunk_state == "data" or self.content_length >= 0)
            and self.expect >= n
        ):
            if len(self.head) < HEAD_BYTES:  # missing bytes stay in place, unreadable
                self.head += bytes(min(n, HEAD_BYTES - len(self.head)))
            self.body_length += n
            self.expect -= n
            self.plain = max(0, self.expect)
            if self.chunk_state == "data" and self.expect == 0:
                self.chunk_state = "crlf"
            elif not self.chunk_state and self.expect <= 0:
                self.end()
            return True
        return False

    def end(self) -> None:
        """End of the message (Zeek's EndOfData/Done): reports the body length once."""
        if self.finished:
            return
        if self.in_header:
            self._finish_header()
            self.in_header = False
        self.finished = True
        self.plain = 0
        self.crlf_only = False
        self.on_done(self.body_length)
