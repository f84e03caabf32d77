"""IPv4 and IPv6 fragment reassembly, as Zeek does before any connection sees the packet.

Only the rows the decoder marked ``FRAGMENT`` are looked at, by one compiled pass
(``fragments_kernel``) that keeps the partial datagrams in NumPy arrays across batches. A complete
datagram becomes one synthetic raw-IP packet, decoded by the same compiled decoder and placed in the
row order right after the fragment that completed it: a connection counts it once, with the
reassembled length, as Zeek's conn.log does. Incomplete datagrams wait across batches, bounded in
count and in bytes (the oldest is dropped first). The first fragment at an offset is kept, and
overlapping fragments are laid down in arrival order, so a later overlap overwrites.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from mamori.sensors.pcap import fragments_kernel as K
from mamori.sensors.pcap.decode import COLUMNS, FRAGMENT, LINK_RAW, PacketColumns, decode_batch

MAX_PENDING = 10_000  # datagrams waiting for fragments; the oldest is dropped beyond this
MAX_PENDING_BYTES = 32 << 20  # and their fragments' bytes: a flood of large never-completed
# datagrams must not grow memory by the count limit times 64 KiB
MAX_DATAGRAM = 65_535 + 40

_KEY_COLUMNS = ("ip_ver", "src_hi", "src_lo", "dst_hi", "dst_lo", "ip_id", "proto")
_FRAG_COLUMNS = ("frag_off", "pay_off", "pay_cap", "ip_off", "more_frags", "pay_len")
_MIN_ARENA = 1 << 20


@dataclass(frozen=True, slots=True)
class PendingDatagram:
    """What is known of a datagram still waiting for fragments."""

    size: int  # payload bytes held
    total: int  # payload length, -1 until the last fragment arrived


class PendingView(Mapping[tuple[int, ...], PendingDatagram]):
    """The pending datagrams by key ``(ip_ver, src_hi, src_lo, dst_hi, dst_lo, ip_id, proto)``,
    oldest first; a live view, read-only."""

    def __init__(self, owner: FragmentReassembler) -> None:
        self._r = owner

    def __len__(self) -> int:
        return int(self._r._scal[K.C_COUNT])

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        r = self._r
        s = int(r._scal[K.C_OLDEST])
        while s >= 0:
            si, sk = r._slot_int[s], r._slot_key[s]
            yield (
                int(si[K.S_VER]), int(sk[0]), int(sk[1]), int(sk[2]), int(sk[3]),
                int(si[K.S_IDENT]), int(si[K.S_PROTO]),
            )  # fmt: skip
            s = int(si[K.S_NEXT])

    def _slot(self, key: object) -> int:
        try:
            ver, sh, sl, dh, dl, ident, proto = key  # type: ignore[misc]
            words = [np.uint64(w) for w in (sh, sl, dh, dl)]
            r = self._r
            return int(
                K.find(r._table, r._slot_int, r._slot_key, int(ver), *words, int(ident), int(proto))
            )
        except (TypeError, ValueError, OverflowError):
            return -1

    def __contains__(self, key: object) -> bool:
        return self._slot(key) >= 0

    def __getitem__(self, key: tuple[int, ...]) -> PendingDatagram:
        s = self._slot(key)
        if s < 0:
            raise KeyError(key)
        si = self._r._slot_int[s]
        return PendingDatagram(int(si[K.S_SIZE]), int(si[K.S_TOTAL]))


class FragmentReassembler:
    """Keeps partial datagrams between batches; :meth:`apply` returns columns with datagrams added."""

    def __init__(self) -> None:
        self._scal = np.zeros(K.SCALARS, np.int64)
        self._scal[[K.C_OLDEST, K.C_NEWEST, K.C_FREE_SLOT, K.C_FREE_PART]] = -1
        self._slot_int = np.zeros((0, K.SLOT_INTS), np.int64)
        self._slot_key = np.zeros((0, K.KEY_WORDS), np.uint64)
        self._slot_hdr = np.zeros((0, K.HDR_MAX), np.uint8)
        self._table = np.full(1, -1, np.int64)
        self._part_int = np.zeros((0, K.PART_INTS), np.int64)
        self._arena = np.zeros(0, np.uint8)
        self._out = np.zeros(0, np.uint8)  # the current batch's completed datagrams
        self._buf = np.zeros(0, np.uint8)  # the batch buffer returned with datagrams appended

    @property
    def pending(self) -> PendingView:
        return PendingView(self)

    @property
    def pending_bytes(self) -> int:
        return int(self._scal[K.C_BYTES])

    @property
    def dropped(self) -> int:
        return int(self._scal[K.C_DROPPED])

    def apply(self, buf: np.ndarray, pk: PacketColumns) -> tuple[np.ndarray, PacketColumns]:
        """The batch's buffer and rows with the datagrams its fragments completed added.

        Without a completed datagram, ``buf`` and ``pk`` come back as they are. Otherwise the
        returned buffer, like a batch's, is valid until the next call (this object reuses it), and
        ``buf`` and ``pk`` are consumed: the datagrams are written after ``buf``'s bytes when it
        is the start of a larger array (as the reader's buffer is), and the columns are grown in
        place where they have room (``decode`` leaves it), so the caller uses only what is
        returned, as ``Ingest`` does.
        """
        c = pk.cols
        rows = np.flatnonzero(c["status"] == FRAGMENT)
        if rows.size == 0:
            return buf, pk
        n = rows.shape[0]
        done_row = np.empty(n, np.int64)
        done_start = np.empty(n, np.int64)
        done_len = np.empty(n, np.int64)
        self._scal[K.C_OUT_TOP] = 0
        self._scal[K.C_DONE] = 0
        # The fragment rows' fields gathered first: the pass then reads them in sequence, not one
        # scattered cache line per field and fragment.
        cols = [c[name][rows] for name in _KEY_COLUMNS + _FRAG_COLUMNS]
        at = np.arange(n)
        i = 0
        data = np.ascontiguousarray(buf)
        while True:
            i, need = K.reassemble(
                data, at, i, *cols,
                self._table, self._slot_int, self._slot_key, self._slot_hdr, self._part_int,
                self._arena, self._scal, self._out, done_row, done_start, done_len,
                MAX_PENDING, MAX_PENDING_BYTES, MAX_DATAGRAM,
            )  # fmt: skip
            if need == K.NEED_NOTHING:
                break
            self._grow(need, int(c["pay_cap"][rows[i]]))
        k = int(self._scal[K.C_DONE])
        if k == 0:
            return buf, pk
        top = int(self._scal[K.C_OUT_TOP])
        completing = rows[done_row[:k]]
        return self._merge(buf, pk, completing, self._out[:top], done_start[:k], done_len[:k])

    def _merge(
        self,
        buf: np.ndarray,
        pk: PacketColumns,
        completing: np.ndarray,
        packets: np.ndarray,
        starts: np.ndarray,
        lens: np.ndarray,
    ) -> tuple[np.ndarray, PacketColumns]:
        """The batch with each completed datagram decoded into rows right after ``completing``.

        Ingest runs with a low mmap threshold (``flows.memory``), so every fresh batch-sized array
        is new pages, faulted in one by one: copying the batch into a fresh buffer and its columns
        into fresh arrays cost ten times the reassembly. The datagrams therefore go in place after
        the batch's bytes where the reader left room for them, else into a buffer of this
        object's, reused; and the columns grow in place where ``decode`` left them room.
        """
        c = pk.cols
        base = buf.shape[0]
        size = base + packets.shape[0]
        new_buf = _room(buf, size)  # the reader leaves room after its buffer (reader.py)
        if new_buf is None:
            if self._buf.shape[0] < size:
                self._buf = np.empty(size + size // 8, np.uint8)
            new_buf = self._buf[:size]
            new_buf[:base] = buf
        new_buf[base:] = packets
        n = completing.shape[0]
        cap = 2 * n + 4
        while True:
            extra = {name: np.empty(cap, dtype) for name, dtype in COLUMNS.items()}
            rows = decode_batch(
                new_buf, starts + base, lens.astype(np.int32), np.full(n, LINK_RAW, np.int32),
                *(extra[name] for name in COLUMNS), 0, 1,  # decode's own signature: one cache load
            )  # fmt: skip
            if rows < cap:
                break
            cap *= 2
        extra = {k: v[:rows] for k, v in extra.items()}
        anchor = completing[extra["rec"]]  # ``rec`` of an extra row: its datagram
        # Synthetic rows inherit the record (time, provenance), the tunnel parent and VLAN of the
        # fragment that completed them; ``done`` is in row order and a fragment completes at most
        # one datagram, so the anchors never decrease.
        extra["rec"] = c["rec"][anchor]
        extra["depth"] = extra["depth"] + c["depth"][anchor]
        extra["vlan"] = c["vlan"][anchor]
        n_old = len(pk)
        total = n_old + rows
        merged = {}
        for name in COLUMNS:
            col = _room(c[name], total)
            if col is None:
                col = np.empty(total, c[name].dtype)
                col[:n_old] = c[name]
            more = np.ascontiguousarray(extra[name], col.dtype)
            if name == "parent":
                K.renumber_parents(col, n_old, more, anchor)
            K.insert_rows(col.view(np.uint8), n_old, more.view(np.uint8), anchor, col.itemsize)
            merged[name] = col
        return new_buf, PacketColumns(merged)

    def _grow(self, need: int, payload: int) -> None:
        """Room for the fragment a pass stopped at (see ``fragments_kernel.reassemble``)."""
        if need == K.NEED_SLOT:
            self._grow_slots()
        elif need == K.NEED_PART:
            old = self._part_int
            n = max(256, 2 * old.shape[0])
            self._part_int = np.zeros((n, K.PART_INTS), np.int64)
            self._part_int[: old.shape[0]] = old
            self._chain_free(self._part_int, old.shape[0], K.P_NEXT, K.C_FREE_PART)
        elif need == K.NEED_ARENA:
            # Compacting drops the bytes of completed and dropped datagrams; the pass may then
            # fill up to twice what is live, so moves cost O(1) per byte written and at most
            # twice the live bytes are resident. The arena is reserved once for the byte bound
            # (address space: a page is only resident once the arena reached it) and compacted
            # in place; only a datagram alone past the bound makes a new one.
            want = int(self._scal[K.C_BYTES]) + payload
            end = max(_MIN_ARENA, 2 * want)
            same = end <= self._arena.shape[0]
            arena = self._arena if same else np.empty(max(end, 2 * MAX_PENDING_BYTES), np.uint8)
            K.compact(self._slot_int, self._part_int, self._arena, self._scal, arena, same)
            self._arena = arena
            self._scal[K.C_ARENA_END] = end
        else:
            top = int(self._scal[K.C_OUT_TOP])
            out = np.empty(
                max(2 * self._out.shape[0], top + 2 * (MAX_DATAGRAM + K.HDR_MAX)), np.uint8
            )
            out[:top] = self._out[:top]
            self._out = out

    def _grow_slots(self) -> None:
        old = self._slot_int.shape[0]
        n = max(64, 2 * old)
        for name in ("_slot_int", "_slot_key", "_slot_hdr"):
            a = getattr(self, name)
            b = np.zeros((n, a.shape[1]), a.dtype)
            b[:old] = a
            setattr(self, name, b)
        self._chain_free(self._slot_int, old, K.S_NEXT, K.C_FREE_SLOT)
        self._table = np.full(1 << (2 * n - 1).bit_length(), -1, np.int64)  # at most half full
        K.index_all(self._table, self._slot_int)

    def _chain_free(self, ints: np.ndarray, first: int, link: int, head: int) -> None:
        """Put rows ``first:`` of a grown array on its free list (which is empty when it grows)."""
        n = ints.shape[0]
        ints[first:, link] = np.arange(first + 1, n + 1)
        ints[n - 1, link] = self._scal[head]
        self._scal[head] = first


def _room(col: np.ndarray, total: int) -> np.ndarray | None:
    """``col`` grown to ``total`` rows in place, when it is the start of a larger writable array
    (as ``decode`` returns its columns), else None."""
    b = col.base
    if (
        isinstance(b, np.ndarray)
        and b.ndim == 1
        and b.dtype == col.dtype
        and b.shape[0] >= total
        and b.flags.c_contiguous
        and b.flags.writeable
        and col.flags.c_contiguous
        and col.ctypes.data == b.ctypes.data
    ):
        return b[:total]
    return None
