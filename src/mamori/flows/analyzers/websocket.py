"""WebSocket frames (RFC 6455) as Zeek 7.2's WebSocket analyser reads them after an HTTP upgrade.

Zeek unmasks each frame's payload and forwards the data of text and binary messages (continuation
frames included) to a signature-recognition child, which may find another protocol inside - HTTP
carried in WebSocket messages gets rows in the same connection's http.log. Only that forwarding is
reproduced here: a frame reader per direction turning stream bytes into payload chunks, in the
chunk sizes Zeek forwards (at most ``payload_chunk_size`` bytes, each once it has fully arrived).
"""

from __future__ import annotations

CHUNK = 8192  # WebSocket::payload_chunk_size
_TEXT, _BINARY = 0x1, 0x2


class FrameReader:
    """One direction's frames; ``feed`` returns the unmasked text/binary payload chunks."""

    def __init__(self) -> None:
        self.buf = b""
        self.remaining = 0  # payload bytes of the current frame not yet forwarded
        self.in_frame = False
        self.mask = b""
        self.mask_at = 0
        self.first = True  # the next frame starts a message
        self.opcode = 0  # the message's opcode, which its continuation frames inherit
        self.failed = False  # a frame broke the framing rules: Zeek's parser gives up

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self.buf += data
        while not self.failed:
            if not self.in_frame:
                if not self._header():
                    break
                continue
            want = min(self.remaining, CHUNK)
            if len(self.buf) < want:
                break
            chunk, self.buf = self.buf[:want], self.buf[want:]
            self.remaining -= want
            if self.mask:
                key = (self.mask * (want // 4 + 2))[self.mask_at % 4 : self.mask_at % 4 + want]
                chunk = (int.from_bytes(chunk, "big") ^ int.from_bytes(key, "big")).to_bytes(
                    want, "big"
                )
                self.mask_at += want
            if chunk and self.opcode in (_TEXT, _BINARY):
                out.append(chunk)
            if self.remaining == 0:
                self.in_frame = False
        return out

    def _header(self) -> bool:
        """Parse one frame header from the buffer; False when it has not fully arrived yet."""
        b = self.buf
        if len(b) < 2:
            return False
        fin, opcode, masked, n = b[0] & 0x80, b[0] & 0x0F, b[1] & 0x80, b[1] & 0x7F
        size = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if masked else 0)
        if len(b) < size:
            return False
        if (opcode == 0) == self.first:  # a message starts with an opcode, continues without one
            self.failed = True
            return False
        if n == 126:
            n = int.from_bytes(b[2:4], "big")
        elif n == 127:
            n = int.from_bytes(b[2:10], "big")
        self.mask = b[size - 4 : size] if masked else b""
        self.mask_at = 0
        if self.first:
            self.opcode = opcode
        self.first = bool(fin)
        self.buf = b[size:]
        self.remaining, self.in_frame = n, n > 0
        return True
