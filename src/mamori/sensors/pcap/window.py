"""Where the capture reader's bytes live: a window onto the file that slides forward.

The reader walks records in ``buf[pos:end]``; when the walk reaches the end of the window it asks
for the window to *slide* so that the record at ``pos`` (possibly cut by the window's end) comes
first. Two kinds of window do that:

- :class:`ReadWindow` reads into one reusable array. It serves every source, gzip streams
  included.
- :class:`MappedWindow` maps the file's pages instead (Linux, an uncompressed regular file). Two
  ingest processes walk the same capture side by side, and reading made each copy all of it
  from the page cache: with both cores busy, that copy was ~10 % of all samples of a
  ``mamori ingest`` of the benchmark workload (``perf``). A mapping shares the page cache's
  pages, so the copy goes.

The mapped window is an address range reserved once (an anonymous private mapping owned by a
Python ``mmap`` object, so it lives as long as any array viewing it) over which each slide maps the
next stretch of the file with ``MAP_FIXED``: the buffer stays at one address, as the read
window's array does, and "the next slide overwrites it" holds for both. The mapping is private
and writable: a write into the file's pages (no stage makes one) would copy the page, never reach
the file. After the window's file bytes the range stays anonymous memory: fragment reassembly
writes the datagrams a batch completes there (``reader.TAIL_DIVISOR``), and no access past the
file's end can fault. A file that grows is read to its new end. One that is *shortened* while
mapped would raise SIGBUS on its lost pages (as for any reader that maps files), so a file written
to in the last minute, which may still be, is read rather than mapped (``_plain_fd``).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import stat
import sys
import time
import zlib
from typing import BinaryIO

import numpy as np

from mamori.sensors.gzipstream import GzipStream

# Decompression of a damaged gzip file fails with any of these.
READ_ERRORS = (OSError, EOFError, zlib.error)
PAGE = mmap.PAGESIZE
_MADV_WILLNEED = 3  # Linux: start reading the window's pages that are not cached yet
LIVE_SECONDS = 60.0  # a file written to more recently than this is read, not mapped


class ReadWindow:
    """The file read into one array; a slide moves the kept bytes to its front and reads on.

    ``buf[:end]`` holds the file's bytes from offset ``base``. ``eof`` says the last read reached
    the end of the file; ``error`` holds a read error that stopped it (reported by the reader once
    the bytes before it are walked).
    """

    def __init__(
        self, fh: BinaryIO, span: int, tail: int, max_span: int, at: int, keep: bytes
    ) -> None:
        self._fh = fh
        self._max = max_span
        # ``span`` bytes at the start of a larger array whose tail the reader never uses (see
        # module docstring). Tail pages are only resident once written.
        self.buf: np.ndarray = np.empty(span + tail, np.uint8)[:span]
        self.buf[: len(keep)] = np.frombuffer(keep, np.uint8)
        self.base = at - len(keep)
        self.end = len(keep)
        self.eof = False
        self.error: str | None = None
        self.bytes_read = at
        self._read()

    def slide(self, pos: int) -> int:
        """Keep ``buf[pos:end]``, read more after it; returns where the kept bytes now start."""
        rest = self.end - pos
        if rest and pos:
            self.buf[:rest] = self.buf[pos : self.end]
        self.base += pos
        self.end = rest
        self._read()
        return 0

    def at_start(self, pos: int) -> bool:
        """Whether sliding could not move ``pos`` any nearer the window's start."""
        return pos == 0

    def grow(self) -> bool:
        """A larger array holding the same bytes and more of the file, for a record that does not
        fit; False once the window is as large as a record can need."""
        if self.buf.shape[0] >= self._max:
            return False
        bigger = np.empty(min(self.buf.shape[0] * 2, self._max), np.uint8)
        bigger[: self.end] = self.buf[: self.end]
        self.buf = bigger
        self._read()
        return True

    def _read(self) -> None:
        view = memoryview(self.buf)[self.end :]
        got = 0
        # A damaged gzip stream raises only from a readinto that returns nothing: what came before
        # the damage has all been counted here first (gzipstream).
        try:
            while got < len(view):
                chunk = self._fh.readinto(view[got:])  # type: ignore[attr-defined]
                if not chunk:
                    break
                got += chunk
        except READ_ERRORS as exc:
            self.error = f"read error after {self.bytes_read + got} bytes: {exc}"
        self.bytes_read += got
        self.end += got
        self.eof = self.end < self.buf.shape[0]


class MappedWindow:
    """The file's pages mapped at one reserved address; a slide maps the next stretch there.

    Same attributes and methods as :class:`ReadWindow` (``error`` stays None: there is no read
    to fail). A window starts on a page boundary, so after a slide the kept record starts up to a
    page past ``buf[0]``.
    """

    def __init__(self, fd: int, span: int, tail: int, max_span: int, libc: _Libc) -> None:
        self._fd = fd
        self._libc = libc
        # Room for the largest window: a record as large as ``max_span`` may start up to a page
        # past the window's start.
        self._max = _pages(max(span, max_span)) + PAGE
        self._mem = mmap.mmap(-1, self._max + tail, flags=mmap.MAP_PRIVATE)
        whole = np.frombuffer(self._mem, np.uint8)
        self._whole = whole
        self._addr = whole.ctypes.data
        self._mapped = 0  # bytes at the start of the range currently mapped from the file
        self.buf: np.ndarray = whole[:span]
        self.base = 0
        self.end = 0
        self.eof = False
        self.error: str | None = None
        self._map(0)

    @property
    def bytes_read(self) -> int:
        return self.base + self.end

    def slide(self, pos: int) -> int:
        at = self.base + pos
        start = at - at % PAGE
        self._map(start)
        return at - start

    def at_start(self, pos: int) -> bool:
        return pos < PAGE

    def grow(self) -> bool:
        if self.buf.shape[0] >= self._max:
            return False
        self.buf = self._whole[: min(self.buf.shape[0] * 2, self._max)]
        self._map(self.base)
        return True

    def _map(self, start: int) -> None:
        """Map the file from ``start`` (a page boundary) over the window's first bytes."""
        size = os.fstat(self._fd).st_size  # a file still being written is read to its new end
        length = max(0, min(self.buf.shape[0], size - start))
        mapped = _pages(length)
        if mapped:
            self._libc.map(self._addr, mapped, self._fd, start)
            self._libc.willneed(self._addr, mapped)
        if self._mapped > mapped:
            # What the last window mapped beyond this one goes back to anonymous memory, so
            # nothing after this window's file bytes can touch the file (or fault past its end).
            self._libc.map(self._addr + mapped, self._mapped - mapped, -1, 0)
        self._mapped = mapped
        self.base = start
        self.end = length
        self.eof = start + length >= size


def _pages(n: int) -> int:
    return -(-n // PAGE) * PAGE


class _Libc:
    """``mmap(2)`` with ``MAP_FIXED`` and ``madvise(2)``, which Python's mmap module lacks."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap = libc.mmap
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_int64,
        ]  # fmt: skip
        self._madvise = libc.madvise
        self._madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

    def map(self, addr: int, length: int, fd: int, offset: int) -> None:
        flags = mmap.MAP_PRIVATE | _MAP_FIXED | (mmap.MAP_ANONYMOUS if fd < 0 else 0)
        got = self._mmap(addr, length, mmap.PROT_READ | mmap.PROT_WRITE, flags, fd, offset)
        if got != addr:
            err = ctypes.get_errno()
            # The range may now be partly unmapped: whatever views it must not be read. Put
            # anonymous memory back before raising (a fresh anonymous map never fails for want
            # of a file).
            self._mmap(
                addr, length, mmap.PROT_READ | mmap.PROT_WRITE,
                mmap.MAP_PRIVATE | _MAP_FIXED | mmap.MAP_ANONYMOUS, -1, 0,
            )  # fmt: skip
            raise OSError(err, f"mmap of the capture failed: {os.strerror(err)}")

    def willneed(self, addr: int, length: int) -> None:
        self._madvise(addr, length, _MADV_WILLNEED)  # advice only: its failure changes nothing


_MAP_FIXED = 0x10  # Linux, every architecture
_LIBC: _Libc | None = None


def open_window(
    fh: BinaryIO, span: int, tail: int, max_span: int, at: int, keep: bytes, mapped: bool = True
) -> ReadWindow | MappedWindow:
    """A mapped window where the file allows one, else a read window.

    ``fh`` has been read up to offset ``at``; a read window starts with ``keep`` (the bytes just
    before ``at`` that the walk still needs) and reads on from there, a mapped one maps the file
    from its start. Either way the walk starts at its file offset minus the window's ``base``.
    """
    global _LIBC
    fd = _plain_fd(fh) if mapped else None
    if fd is not None:
        try:
            if _LIBC is None:
                _LIBC = _Libc()
            return MappedWindow(fd, span, tail, max_span, _LIBC)
        except (OSError, AttributeError, ValueError):
            pass  # no mapping here: read instead
    return ReadWindow(fh, span, tail, max_span, at, keep)


def _plain_fd(fh: BinaryIO) -> int | None:
    """The descriptor of an uncompressed regular file on Linux that nothing wrote to lately.

    A capture still being written (a sensor's current file, a log rotated by copy-and-truncate)
    may also be *shortened* under the reader, and a mapped page past the new end faults with
    SIGBUS, which no Python code can catch: such a file is read instead, which only sees a short
    read. ``LIVE_SECONDS`` after its last write a file counts as finished.
    """
    if not sys.platform.startswith("linux") or isinstance(fh, GzipStream):
        return None
    try:
        fd = fh.fileno()
        st = os.fstat(fd)
    except (OSError, AttributeError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or time.time() - st.st_mtime < LIVE_SECONDS:
        return None
    return fd
