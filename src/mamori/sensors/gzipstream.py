"""A gzip-compressed capture or log, decompressed as it is read, keeping every byte before any
damage.

``gzip.GzipFile`` raises from inside a read when the stream is cut short or corrupt, and what that
read had already decompressed is lost with it: the reader asked for 64 KiB at a time, so a cut
capture lost up to 64 KiB of good packets before the cut (a small file, all of them). Here the
compressed file is inflated a bounded step at a time (``zlib.decompressobj``), every step's
output is handed out before the error is raised, and a cut stream simply ends: its reads return
everything inflated so far, then the error, once.

Members follow one another (a concatenated ``.gz``, as ``cat a.gz b.gz`` makes); zero bytes
between or after members are padding (as gzip and Python's ``gzip`` read them).
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

IN_STEP = 1 << 16  # compressed bytes read from the file at a time
OUT_STEP = 1 << 16  # decompressed bytes inflated per call: the most a corrupt block can take


class GzipStream:
    """A readable binary stream over a gzip file: ``read`` and ``readinto``, as the reader uses."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._z = zlib.decompressobj(31)  # gzip header and trailer, checked
        self._tail = b""  # compressed bytes not yet inflated
        self._member = False  # inside a member: input ending now cuts it
        self._out = b""
        self._at = 0
        self._ended = False
        self._error: Exception | None = None

    def readinto(self, b: bytearray | memoryview) -> int:
        view = memoryview(b).cast("B")
        while self._at >= len(self._out):
            if self._ended:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                return 0
            self._out, self._at = self._inflate(), 0
        n = min(len(view), len(self._out) - self._at)
        view[:n] = self._out[self._at : self._at + n]
        self._at += n
        return n

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        chunk = bytearray(OUT_STEP)
        while size < 0 or len(out) < size:
            want = OUT_STEP if size < 0 else min(OUT_STEP, size - len(out))
            try:
                n = self.readinto(memoryview(chunk)[:want])
            except (EOFError, zlib.error) as exc:
                if not out:
                    raise
                self._error = exc  # what came before it first; the next read raises it
                break
            if not n:
                break
            out += chunk[:n]
        return bytes(out)

    def _inflate(self) -> bytes:
        if not self._tail:
            self._tail = self._fh.read(IN_STEP)
            if not self._tail:
                self._ended = True
                if self._member:
                    self._error = EOFError(
                        "Compressed file ended before the end-of-stream marker was reached"
                    )
                return b""
        if not self._member:
            self._tail = self._tail.lstrip(b"\0")  # padding between or after members
            if not self._tail:
                return b""
            self._member = True
        try:
            out = self._z.decompress(self._tail, OUT_STEP)
        except zlib.error as exc:
            self._ended, self._error = True, exc
            return b""
        if self._z.eof:  # a member ends: what follows it starts the next (or is padding)
            self._tail = self._z.unused_data
            self._z = zlib.decompressobj(31)
            self._member = False
        else:
            self._tail = self._z.unconsumed_tail
        return out

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> GzipStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
