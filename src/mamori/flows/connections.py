"""Drive the compiled tracker batch by batch and collect the connections that ended.

The tracker's state arrays grow when more connections are alive at once than they hold; nothing
grows with the capture's length. Ended connections come out as NumPy columns; ``conn_columns``
turns them into conn.log's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mamori.config import Settings
from mamori.flows import tracker as T
from mamori.flows.keyindex import new_index, rebuild
from mamori.flows.ports import server_port_table
from mamori.sensors.pcap.decode import MAX_DEPTH, PacketColumns

if MAX_DEPTH >= T.NO_PER_RECORD:  # a connection number must name one (record, layer)
    raise ImportError("tracker.NO_PER_RECORD must exceed the decoder's MAX_DEPTH")


@dataclass(slots=True)
class Ended:
    """Columns of connections that have ended (one row each)."""

    state: np.ndarray  # (n, C_EP) int64: the connection columns (not the endpoints')
    hist: np.ndarray  # (n, HIST_MAX) uint8, valid up to hist_len
    hist_len: np.ndarray  # (n,) int32
    size: np.ndarray  # (n, 2) int64 orig/resp payload bytes

    def head(self, n: int) -> Ended | None:
        """The first n rows (views), or None for none."""
        if n == self.state.shape[0]:
            return self
        if n == 0:
            return None
        return Ended(self.state[:n], self.hist[:n], self.hist_len[:n], self.size[:n])


@dataclass
class ConnTracker:
    settings: Settings
    capacity: int = 1 << 14
    out_capacity: int = 1 << 14
    idx: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._alloc_state(self.capacity)
        self.idx = new_index(self.capacity)
        self.free = np.arange(self.capacity - 1, -1, -1, dtype=np.int64)
        self.n_free = self.capacity
        self.next_no = 0
        self.E = np.zeros((self.out_capacity, T.C_EP), np.int64)
        self.EH = np.zeros((self.out_capacity, T.HIST_MAX), np.uint8)
        self.EHL = np.zeros(self.out_capacity, np.int32)
        self.ESZ = np.zeros((self.out_capacity, 2), np.int64)
        self.n_out = 0  # rows of the output buffers holding ended connections not yet taken
        self.ports = server_port_table()
        s = self.settings
        self.timeouts = (
            int(s.tcp_inactivity_timeout * T.NS),
            int(s.udp_inactivity_timeout * T.NS),
            int(s.icmp_inactivity_timeout * T.NS),
            int(s.unknown_ip_inactivity_timeout * T.NS),
        )
        self.last_now = 0

    def _alloc_state(self, cap: int) -> None:
        # One row per slot holds its state, key and history (see tracker.ROW_W), rows aligned
        # on cache lines.
        raw = np.zeros(cap * T.ROW_W + 8, np.int64)
        off = (-raw.ctypes.data % 64) // 8
        self.S = raw[off : off + cap * T.ROW_W].reshape(cap, T.ROW_W)
        self.K = self.S[:, T.C_KEY : T.C_KEY + 5]
        self.HL = self.S[:, T.C_HL]
        self.H = self.S.view(np.uint8)[:, 8 * T.C_HIST : 8 * T.C_HIST + T.HIST_MAX]
        self.NX = np.full(cap, T.NEVER, np.int64)
        self.scratch = np.empty(cap, np.int64)  # the sweep's

    def _grow(self) -> None:
        # 1.5x keeps the transient (old + new arrays during the copy) small on big live sets.
        old = self.S.shape[0]
        new = old + max(old // 2, 1)
        S, NX = self.S, self.NX
        self._alloc_state(new)
        self.S[:old], self.NX[:old] = S, NX
        del S, NX
        added = new - old
        free = np.empty(new, np.int64)
        free[: self.n_free] = self.free[: self.n_free]
        free[self.n_free : self.n_free + added] = np.arange(new - 1, old - 1, -1, dtype=np.int64)
        self.free = free
        self.n_free += added
        used = np.ones(new, np.bool_)
        used[self.free[: self.n_free]] = False
        self.idx = new_index(new)
        rebuild(self.idx, self.K, used)

    def _grow_out(self) -> None:
        """Double the output buffers, keeping the ended connections not yet taken."""
        n, cap = self.n_out, 2 * self.E.shape[0]
        for name in ("E", "EH", "EHL", "ESZ"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)

    def feed(
        self, pk: PacketColumns, ts_ns: np.ndarray, rec_no: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track one decoded batch; returns per-row (connection number or -1, is_orig)."""
        n = len(pk)
        row_conn = np.full(n, -1, np.int64)
        row_orig = np.zeros(n, np.uint8)
        tags = np.empty(n, np.int64)
        c = pk.cols
        i = 0
        while i < n:
            i, self.n_free, self.next_no, n_out = T.track(
                ts_ns, rec_no, c["status"], c["tunnel"], c["parent"], c["proto"],
                c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"],
                c["ip_len"], c["sport"], c["dport"], c["flags"], c["seq"], c["ack"], c["win"],
                c["pay_len"], c["pay_cap"],
                row_conn, row_orig,
                self.idx, self.S, self.H, self.HL, self.K, self.NX, self.free, self.n_free,
                self.next_no,
                self.E, self.EH, self.EHL, self.ESZ,
                self.ports, *self.timeouts, i, self.n_out, tags,
            )  # fmt: skip
            self.n_out = n_out
            if i < n and self.n_free == 0:
                self._grow()
            if i < n and n_out + 2 > self.E.shape[0]:
                self._grow_out()
        if n:
            self.last_now = int(ts_ns[-1])
            # End idle connections so memory follows the live set, not the capture.
            self.sweep(self.last_now, flush_all=False)
        return row_conn, row_orig

    def sweep(self, now: int, flush_all: bool) -> None:
        while True:
            self.n_free, self.n_out = T.sweep(
                self.idx, self.S, self.H, self.HL, self.K, self.NX, self.free, self.n_free, now,
                flush_all,
                self.n_out, self.E, self.EH, self.EHL, self.ESZ, self.scratch,
            )  # fmt: skip
            if self.n_out < self.E.shape[0]:
                return
            self._grow_out()  # stopped because the output was full: make room, go on

    def finish(self) -> None:
        """End every connection still open (the capture is over)."""
        self.sweep(self.last_now, flush_all=True)

    def take(self) -> Ended | None:
        """The connections ended since the last take, as views of the output buffers: valid
        until the next ``feed`` or ``sweep`` (copying them out cost as much as tracking)."""
        n = self.n_out
        if n == 0:
            return None
        self.n_out = 0
        return Ended(self.E[:n], self.EH[:n], self.EHL[:n], self.ESZ[:n])
