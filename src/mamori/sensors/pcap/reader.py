"""Read classic pcap, pcapng and gzip-compressed captures in bounded batches.

Memory stays flat whatever the capture's size: the walk sees the file through one window of
``batch_bytes`` (its pages mapped, or read into one reusable array: ``window``) and the Numba
walkers fill per-record columns over it; a record cut by the window's end starts the next window.
Damage never loses what came before it: a truncated, corrupt or
unreadable record stops the read with one :class:`CaptureProblem` naming the file, the record number
and the reason, after every good record before it has been yielded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mamori.sensors.gzipstream import GzipStream
from mamori.sensors.pcap import walk
from mamori.sensors.pcap.window import READ_ERRORS, MappedWindow, ReadWindow, open_window

CLASSIC_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 1
BYTE_ORDER_MAGIC = 0x1A2B3C4D
# A record or block never needs a buffer larger than this (see ``walk.MAX_RECORD``).
MAX_BUFFER = walk.MAX_RECORD + 64
INT32_MAX = 0x7FFFFFFF
# Room after the read buffer, as a fraction of it, for datagrams reassembled from a batch's
# fragments. The payload-rich capture completes up to 2.8 MB per 16 MB batch: with an eighth (2
# MB), 15 of its 43 batches were copied whole into a buffer of their own, 0.05 CPU-s of a shard's
# 1.52. The tail is address space: only the pages datagrams are written to become resident.
TAIL_DIVISOR = 4


class CaptureError(Exception):
    """A capture that cannot be read at all (not a capture, unknown format)."""


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """Why reading stopped early or skipped something; carried to the user as one clear line."""

    path: str
    record: int  # 1-based number of the record at fault (the first one not read)
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: record {self.record}: {self.reason}"


@dataclass(slots=True)
class RecordBatch:
    """Consecutive capture records over one buffer: columns only, no object per packet.

    ``buf`` is the reader's window onto the file: the next slide overwrites it, so a batch's packet
    bytes must be used (decoded, copied) before the iteration advances.
    """

    buf: np.ndarray  # uint8; packet bytes live at data_off[i] : data_off[i] + caplen[i]
    data_off: np.ndarray  # int64 offsets into ``buf``
    ts_ns: np.ndarray  # int64 nanoseconds since the epoch
    caplen: np.ndarray  # int32 captured length
    wirelen: np.ndarray  # int32 original length on the wire
    linktype: np.ndarray  # int32 DLT/LINKTYPE of each record
    file_off: np.ndarray  # int64 offset of each record's header in the (uncompressed) file
    first_record: int  # 0-based index of the batch's first record in the file
    snaplen: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def __len__(self) -> int:
        return int(self.data_off.shape[0])


@dataclass(slots=True)
class _Iface:
    linktype: int
    mul: int
    div: int
    snaplen: int


def _open(path: Path) -> BinaryIO:
    fh = open(path, "rb")  # noqa: SIM115  (closed by the caller's context)
    head = fh.read(2)
    fh.seek(0)
    if head == b"\x1f\x8b":
        return GzipStream(fh)  # type: ignore[return-value]
    return fh


def _tsresol(value: int) -> tuple[int, int] | None:
    """(mul, div) turning ticks into nanoseconds for pcapng's ``if_tsresol`` byte.

    The fraction is reduced (10**9 = 2**9 * 1953125) so the kernel's ``(ticks % div) * mul`` stays
    inside int64; ``None`` for a resolution that cannot be converted exactly in 64 bits (finer than
    2**-50 or 10**-27 s, which no capture device produces: such a byte means a corrupt block).
    """
    exp = value & 0x7F
    if value & 0x80:
        # Negative power of two: ticks are 2**-k seconds.
        shift = min(exp, 9)
        if exp - shift + 21 > 62:  # (div - 1) * mul must fit in int64 (mul < 2**21)
            return None
        return 1_000_000_000 >> shift, 1 << (exp - shift)
    if exp <= 9:
        return 10 ** (9 - exp), 1
    if exp > 27:
        return None
    return 1, 10 ** (exp - 9)


class PcapReader:
    """Iterates :class:`RecordBatch` objects over one capture file.

    After iteration, ``problem`` holds the reason reading stopped early (or ``None``) and
    ``records`` the number of records read.
    """

    def __init__(
        self, path: str | Path, batch_bytes: int = 64 * 1024 * 1024, mapped: bool = True
    ) -> None:
        self.path = Path(path)
        self.batch_bytes = max(batch_bytes, 1 << 16)
        self.mapped = mapped  # map the file where it can be (``window``); False: always read
        self.problem: CaptureProblem | None = None
        self.records = 0
        self.bytes_read = 0
        self.format = ""
        self.window = ""  # the kind of window the last iteration read through

    # The walk reads through one window onto the file that slides on (``window``); a read error
    # is reported once the records before it have been walked, so the record number it names is
    # the first record actually lost.
    def __iter__(self) -> Iterator[RecordBatch]:
        try:
            fh = _open(self.path)
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc
        with fh:
            try:
                head = fh.read(4)
            except READ_ERRORS as exc:
                raise CaptureError(f"{self.path}: cannot read: {exc}") from exc
            if len(head) == 0:
                raise CaptureError(f"{self.path}: empty file, not a capture")
            if head in CLASSIC_MAGICS:
                self.format = "pcap"
                yield from self._classic(fh, head)
            elif len(head) == 4 and struct.unpack("<I", head)[0] == PCAPNG_SHB:
                self.format = "pcapng"
                yield from self._pcapng(fh, head)
            else:
                raise CaptureError(
                    f"{self.path}: not a pcap or pcapng capture (starts with {head.hex()})"
                )

    def _window(self, fh: BinaryIO, at: int, keep: bytes = b"") -> ReadWindow | MappedWindow:
        """The window the walk reads through: ``batch_bytes`` of the file, with room after them
        (``TAIL_DIVISOR``) where fragment reassembly appends a batch's completed datagrams
        without copying the batch (``FragmentReassembler.apply``)."""
        window = open_window(
            fh, self.batch_bytes, self.batch_bytes // TAIL_DIVISOR, MAX_BUFFER, at, keep,
            mapped=self.mapped,
        )  # fmt: skip
        self.window = type(window).__name__
        return window

    def _at_eof(self, w: ReadWindow | MappedWindow, pos: int, what: str) -> None:
        """Report why the walk ended at the end of the data: a read error or a cut record."""
        if w.error is not None:
            self._problem_at(self.records + 1, w.error)
        elif pos < w.end:
            self._problem_at(
                self.records + 1, f"capture truncated: last {what} cut after {w.end - pos} bytes"
            )

    def _next(self, w: ReadWindow | MappedWindow, pos: int, what: str) -> int | None:
        """The walk reached the window's end at ``pos``: slide the window on (or grow it, for a
        record larger than the window) and return where the walk resumes; None when the capture
        ends here (``problem`` says why, if it ends early)."""
        self.bytes_read = w.bytes_read
        if w.eof:
            self._at_eof(w, pos, what)
            return None
        try:
            if w.at_start(pos):
                if not w.grow():
                    self._problem_at(self.records + 1, f"{what} larger than the read buffer")
                    return None
                self.bytes_read = w.bytes_read
                return pos
            pos = w.slide(pos)
        except OSError as exc:  # mapping the next stretch failed (out of memory or maps)
            self._problem_at(self.records + 1, f"read error after {w.bytes_read} bytes: {exc}")
            return None
        self.bytes_read = w.bytes_read
        return pos

    def _problem_at(self, record: int, reason: str) -> None:
        if self.problem is None:
            self.problem = CaptureProblem(str(self.path), record, reason)

    def _classic(self, fh: BinaryIO, magic: bytes) -> Iterator[RecordBatch]:
        order, ns_per_frac = CLASSIC_MAGICS[magic]
        try:
            rest = fh.read(20)
        except READ_ERRORS as exc:
            raise CaptureError(f"{self.path}: cannot read the pcap file header: {exc}") from exc
        if len(rest) < 20:
            raise CaptureError(
                f"{self.path}: pcap file header cut short ({4 + len(rest)} of 24 bytes)"
            )
        _vmaj, _vmin, _zone, _sig, snaplen, linktype_field = struct.unpack(order + "HHiIII", rest)
        linktype = linktype_field & 0x0FFFFFFF
        snaplen = min(snaplen, INT32_MAX)  # a u32 field; the column is int32
        swap = order == ">"
        max_caplen = walk.MAX_RECORD
        cols = walk.empty_columns(self.batch_bytes // 64 + 16)  # FULL resumes if packets are tiny
        w = self._window(fh, 24)
        self.bytes_read = w.bytes_read
        pos: int | None = 24 - w.base
        while pos is not None:
            buf = w.buf
            n, pos2, why = walk.walk_classic(
                buf, pos, w.end, swap, ns_per_frac,
                cols["data_off"], cols["ts_ns"], cols["caplen"], cols["wirelen"], max_caplen,
            )  # fmt: skip
            if n:
                data_off = cols["data_off"][:n].copy()
                yield RecordBatch(
                    buf=buf,
                    data_off=data_off,
                    ts_ns=cols["ts_ns"][:n].copy(),
                    caplen=cols["caplen"][:n].copy(),
                    wirelen=cols["wirelen"][:n].copy(),
                    linktype=np.full(n, linktype, np.int32),
                    file_off=data_off - 16 + w.base,
                    first_record=self.records,
                    snaplen=np.full(n, snaplen, np.int32),
                )
                self.records += n
            pos = pos2
            if why == walk.FULL:
                continue
            if why == walk.BAD:
                incl = struct.unpack(order + "I", bytes(buf[pos + 8 : pos + 12]))[0]
                self._problem_at(
                    self.records + 1,
                    f"corrupt record header at byte {w.base + pos} (captured length {incl})",
                )
                return
            # END or PARTIAL: on to the next window, unless this one holds the end of the file.
            pos = self._next(w, pos, "record")

    def _pcapng(self, fh: BinaryIO, head: bytes) -> Iterator[RecordBatch]:
        w = self._window(fh, 4, head)
        self.bytes_read = w.bytes_read
        cols = walk.empty_columns(self.batch_bytes // 64 + 16)  # FULL resumes if packets are tiny
        ifaces: list[_Iface] = []
        swap = False
        pos: int | None = 0 - w.base
        while pos is not None:
            buf, end = w.buf, w.end
            mul = np.array([i.mul for i in ifaces] or [1], np.int64)
            div = np.array([i.div for i in ifaces] or [1], np.int64)
            snaplens = np.array([i.snaplen for i in ifaces] or [0], np.int64)
            n, pos2, why = walk.walk_pcapng(
                buf, pos, end, swap, div, mul, len(ifaces), snaplens,
                cols["data_off"], cols["ts_ns"], cols["caplen"], cols["wirelen"],
                cols["iface"], cols["rec_off"],
            )  # fmt: skip
            if n:
                iface = cols["iface"][:n]
                lt = np.array([i.linktype for i in ifaces], np.int32)[iface]
                snap = np.array([i.snaplen for i in ifaces], np.int32)[iface]
                yield RecordBatch(
                    buf=buf,
                    data_off=cols["data_off"][:n].copy(),
                    ts_ns=cols["ts_ns"][:n].copy(),
                    caplen=cols["caplen"][:n].copy(),
                    wirelen=cols["wirelen"][:n].copy(),
                    linktype=lt,
                    file_off=cols["rec_off"][:n] + w.base,
                    first_record=self.records,
                    snaplen=snap,
                )
                self.records += n
            pos = pos2
            if why == walk.FULL:
                continue
            if why == walk.BLOCK:
                fmt = ">" if swap else "<"
                btype, blen = struct.unpack(fmt + "II", bytes(buf[pos : pos + 8]))
                if btype == PCAPNG_SHB:
                    if pos + 12 > end:
                        why = walk.PARTIAL
                    else:
                        # The walker hands every section header here unchecked (its byte order is
                        # only known from its own magic), so its length is validated here.
                        bom = bytes(buf[pos + 8 : pos + 12])
                        if struct.unpack("<I", bom)[0] == BYTE_ORDER_MAGIC:
                            swap = False
                        elif struct.unpack(">I", bom)[0] == BYTE_ORDER_MAGIC:
                            swap = True
                        else:
                            self._problem_at(
                                self.records + 1, "pcapng section header has a bad byte-order magic"
                            )
                            return
                        fmt = ">" if swap else "<"
                        blen = struct.unpack(fmt + "I", bytes(buf[pos + 4 : pos + 8]))[0]
                        if blen < 28 or blen % 4 or blen > MAX_BUFFER:
                            self._problem_at(
                                self.records + 1,
                                f"corrupt pcapng section header at byte {w.base + pos}"
                                f" (block length {blen})",
                            )
                            return
                        if pos + blen <= end:
                            ifaces = []  # a new section starts a new interface list
                            pos += blen
                            continue
                        why = walk.PARTIAL
                elif pos + blen <= end:
                    if btype == PCAPNG_IDB:
                        iface = self._parse_idb(bytes(buf[pos : pos + blen]), fmt)
                        if iface is None:
                            self._problem_at(
                                self.records + 1,
                                f"corrupt pcapng interface block at byte {w.base + pos}",
                            )
                            return
                        ifaces.append(iface)
                    # Name resolution, statistics, custom and decryption blocks are skipped.
                    pos += blen
                    continue
                else:
                    why = walk.PARTIAL
            if why == walk.BAD:
                self._problem_at(self.records + 1, f"corrupt pcapng block at byte {w.base + pos}")
                return
            pos = self._next(w, pos, "block")

    def _parse_idb(self, block: bytes, fmt: str) -> _Iface | None:
        """The interface an IDB describes, or ``None`` if the block is too short or its
        ``if_tsresol`` is impossible."""
        if len(block) < 20:
            return None
        linktype, _res, snaplen = struct.unpack(fmt + "HHI", block[8:16])
        snaplen = min(snaplen, INT32_MAX)  # a u32 field; the column is int32
        mul, div = 1000, 1  # default resolution: microseconds
        opt = 16
        while opt + 4 <= len(block) - 4:
            code, length = struct.unpack(fmt + "HH", block[opt : opt + 4])
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                resol = _tsresol(block[opt + 4])
                if resol is None:
                    return None
                mul, div = resol
            opt += 4 + ((length + 3) & ~3)
        return _Iface(linktype, mul, div, snaplen)
