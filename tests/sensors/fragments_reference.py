"""The Python fragment reassembler mamori shipped before the compiled one, kept as the reference
the property tests compare ``mamori.sensors.pcap.fragments`` with (columns and bytes).

Three fixes over the shipped code, each also in the compiled one: a datagram dropped by the byte
bound while taking its own fragment is gone (it raised KeyError when that fragment completed it);
a datagram whose length does not fit its header's 16-bit length field is never completed (it
raised struct.error); the synthetic packets are decoded until every row fits (a deep tunnel in
several of them could lose rows).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from mamori.sensors.pcap.decode import COLUMNS, FRAGMENT, LINK_RAW, PacketColumns, decode_batch

MAX_PENDING = 10_000  # datagrams waiting for fragments; the oldest is dropped beyond this
MAX_PENDING_BYTES = 32 << 20  # and their fragments' bytes: a flood of large never-completed
# datagrams must not grow memory by the count limit times 64 KiB
MAX_DATAGRAM = 65_535 + 40


@dataclass
class _Datagram:
    header: bytes = b""  # IP header of the first fragment (offset 0), rewritten on completion
    parts: dict[int, bytes] = field(default_factory=dict)  # fragment offset -> payload
    total: int = -1  # payload length, known once the last fragment arrived
    size: int = 0  # bytes held in ``parts``


class FragmentReassembler:
    """Keeps partial datagrams between batches; :meth:`apply` returns columns with datagrams added."""

    def __init__(self) -> None:
        self.pending: OrderedDict[tuple[int, ...], _Datagram] = OrderedDict()
        self.pending_bytes = 0
        self.dropped = 0

    def apply(self, buf: np.ndarray, pk: PacketColumns) -> tuple[np.ndarray, PacketColumns]:
        c = pk.cols
        frag_rows = np.nonzero(c["status"] == FRAGMENT)[0]
        if frag_rows.size == 0:
            return buf, pk
        done: list[tuple[int, bytes]] = []  # (completing row, raw IP packet)
        # Columns of the fragment rows as plain lists: indexing NumPy scalars one at a time cost
        # more than the reassembly itself.
        names = ("ip_ver", "src_hi", "src_lo", "dst_hi", "dst_lo", "ip_id", "proto", "frag_off")
        names += ("pay_off", "pay_cap", "ip_off", "more_frags", "pay_len")
        cols = [c[name][frag_rows].tolist() for name in names]
        for r, ver, sh, sl, dh, dl, ident, proto, off, pay_off, pay_cap, ip_off, more, plen in zip(
            frag_rows.tolist(), *cols, strict=True
        ):
            key = (ver, sh, sl, dh, dl, ident, proto)
            dg = self.pending.get(key)
            if dg is None:
                dg = self.pending[key] = _Datagram()
                if len(self.pending) > MAX_PENDING:
                    self._drop_oldest()
            if off not in dg.parts:
                dg.parts[off] = buf[pay_off : pay_off + pay_cap].tobytes()
                dg.size += pay_cap
                self.pending_bytes += pay_cap
                while self.pending_bytes > MAX_PENDING_BYTES and len(self.pending) > 1:
                    self._drop_oldest()
            if off == 0:
                hdr_len = pay_off - ip_off if ver == 4 else 40
                dg.header = buf[ip_off : ip_off + hdr_len].tobytes()
            if not more:
                dg.total = off + plen
            packet = self._complete(dg, ver, proto)
            if packet is not None and self.pending.get(key) is dg:
                self.pending_bytes -= self.pending.pop(key).size
                done.append((r, packet))
        if not done:
            return buf, pk
        return self._merge(buf, pk, done)

    def _drop_oldest(self) -> None:
        _key, dg = self.pending.popitem(last=False)
        self.pending_bytes -= dg.size
        self.dropped += 1

    @staticmethod
    def _complete(dg: _Datagram, version: int, proto: int) -> bytes | None:
        if dg.total < 0 or not dg.header or dg.total > MAX_DATAGRAM:
            return None
        if (len(dg.header) if version == 4 else 0) + dg.total > 0xFFFF:
            return None
        covered = 0  # [0, covered) is present, walking the parts by offset
        for off in sorted(dg.parts):
            if covered >= dg.total:
                break  # parts past the end (bogus offsets) are ignored, as below
            if off > covered:
                return None
            covered = max(covered, off + len(dg.parts[off]))
        if covered < dg.total:
            return None
        data = bytearray(dg.total)
        for off, part in dg.parts.items():  # arrival order: a later overlap overwrites
            end = min(off + len(part), dg.total)
            if end > off:
                data[off:end] = part[: end - off]
        hdr = bytearray(dg.header)
        if version == 4:
            struct.pack_into("!H", hdr, 2, len(hdr) + dg.total)
            struct.pack_into("!H", hdr, 6, 0)
        else:
            hdr = hdr[:40]
            struct.pack_into("!H", hdr, 4, dg.total)
            hdr[6] = proto
        return bytes(hdr) + bytes(data)

    @staticmethod
    def _merge(
        buf: np.ndarray, pk: PacketColumns, done: list[tuple[int, bytes]]
    ) -> tuple[np.ndarray, PacketColumns]:
        c = pk.cols
        blob = b"".join(p for _r, p in done)
        base = buf.shape[0]
        new_buf = np.concatenate([buf, np.frombuffer(blob, np.uint8)])
        starts = np.cumsum([0] + [len(p) for _r, p in done[:-1]]).astype(np.int64) + base
        lens = np.array([len(p) for _r, p in done], np.int32)
        n = len(done)
        cap = 2 * n + 4
        while True:
            extra = {name: np.empty(cap, dtype) for name, dtype in COLUMNS.items()}
            rows = decode_batch(
                new_buf, starts, lens, np.full(n, LINK_RAW, np.int32),
                *(extra[name] for name in COLUMNS),
            )  # fmt: skip
            if rows < cap:
                break
            cap *= 2
        extra = {k: v[:rows] for k, v in extra.items()}
        completing = np.array([r for r, _p in done], np.int64)
        own = extra["rec"].astype(np.int64)  # index into ``done``
        anchor = completing[own]
        # Synthetic rows inherit the record (time, provenance) and the tunnel parent of the fragment
        # that completed them.
        extra["rec"] = c["rec"][anchor]
        outer = extra["parent"] < 0
        local_parent = extra["parent"].astype(np.int64)
        extra["depth"] = extra["depth"] + c["depth"][anchor]
        extra["vlan"] = c["vlan"][anchor]
        n_old = len(pk)
        # Each datagram's row goes right after the fragment that completed it (``done`` is in row
        # order, and a fragment completes at most one datagram): inserting keeps every other row's
        # order without sorting the batch.
        new_pos = np.arange(n_old) + np.searchsorted(anchor, np.arange(n_old), side="left")
        ins_pos = anchor + 1 + np.arange(rows)  # after its anchor and the datagrams before it
        parent_new = np.where(outer, c["parent"][anchor], local_parent + n_old)
        total = n_old + rows
        merged = {}
        for name in COLUMNS:
            col = np.empty(total, c[name].dtype)
            col[new_pos] = c[name]
            col[ins_pos] = extra[name].astype(c[name].dtype)
            merged[name] = col
        inverse = np.concatenate([new_pos, ins_pos])  # old index (then extra index) -> new row
        par = np.empty(total, np.int64)
        par[new_pos] = c["parent"]
        par[ins_pos] = parent_new
        merged["parent"] = np.where(par >= 0, inverse[np.maximum(par, 0)], -1).astype(np.int32)
        return new_buf, PacketColumns(merged)
