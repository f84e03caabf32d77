"""Drive the compiled tracker batch by batch and turn ended connections into conn.log rows.

The tracker's state arrays grow when more connections are alive at once than they hold; nothing
grows with the capture's length. Ended connections come out as NumPy columns, and every derived
field (``uid``, addresses as text, ``conn_state``, ``local_orig``) is computed vectorised over them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mamori.config import Settings
from mamori.flows import tracker as T
from mamori.flows.keyindex import new_index, rebuild
from mamori.flows.ports import server_port_table
from mamori.sensors.pcap.decode import MAX_DEPTH, PacketColumns

if MAX_DEPTH >= T.NO_PER_RECORD:  # a connection number must name one (record, layer)
    raise ImportError("tracker.NO_PER_RECORD must exceed the decoder's MAX_DEPTH")

_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


@dataclass(slots=True)
class Ended:
    """Columns of connections that have ended (one row each)."""

    state: np.ndarray  # (n, N_COLS) int64
    hist: np.ndarray  # (n, HIST_MAX) uint8
    hist_len: np.ndarray  # (n,) int32
    size: np.ndarray  # (n, 2) int64 orig/resp payload bytes


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
        self.E = np.zeros((self.out_capacity, T.N_COLS), np.int64)
        self.EH = np.zeros((self.out_capacity, T.HIST_MAX), np.uint8)
        self.EHL = np.zeros(self.out_capacity, np.int32)
        self.ESZ = np.zeros((self.out_capacity, 2), np.int64)
        self.ended: list[Ended] = []
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
        self.S = np.zeros((cap, T.N_COLS), np.int64)
        self.H = np.zeros((cap, T.HIST_MAX), np.uint8)
        self.HL = np.zeros(cap, np.int32)
        self.K = np.zeros((cap, 5), np.int64)

    def _grow(self) -> None:
        # 1.5x keeps the transient (old + new arrays during the copy) small on big live sets.
        old = self.S.shape[0]
        new = old + old // 2
        S, H, HL, K = self.S, self.H, self.HL, self.K
        self._alloc_state(new)
        self.S[:old], self.H[:old], self.HL[:old], self.K[:old] = S, H, HL, K
        del S, H, HL, K
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

    def _collect(self, n_out: int) -> None:
        if n_out:
            self.ended.append(
                Ended(
                    self.E[:n_out].copy(),
                    self.EH[:n_out].copy(),
                    self.EHL[:n_out].copy(),
                    self.ESZ[:n_out].copy(),
                )
            )

    def feed(
        self, pk: PacketColumns, ts_ns: np.ndarray, rec_no: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Track one decoded batch; returns per-row (connection number or -1, is_orig)."""
        n = len(pk)
        row_conn = np.full(n, -1, np.int64)
        row_orig = np.zeros(n, np.uint8)
        c = pk.cols
        i = 0
        while i < n:
            i, self.n_free, self.next_no, n_out = T.track(
                ts_ns, rec_no, c["status"], c["tunnel"], c["parent"], c["proto"],
                c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"],
                c["ip_len"], c["sport"], c["dport"], c["flags"], c["seq"], c["ack"], c["win"],
                c["pay_len"], c["pay_cap"],
                row_conn, row_orig,
                self.idx, self.S, self.H, self.HL, self.K, self.free, self.n_free, self.next_no,
                self.E, self.EH, self.EHL, self.ESZ,
                self.ports, *self.timeouts, i,
            )  # fmt: skip
            self._collect(n_out)
            if i < n and self.n_free == 0:
                self._grow()
        if n:
            self.last_now = int(ts_ns[-1])
            # End idle connections so memory follows the live set, not the capture.
            self.sweep(self.last_now, flush_all=False)
        return row_conn, row_orig

    def sweep(self, now: int, flush_all: bool) -> None:
        while True:
            before = self.n_free
            self.n_free, n_out = T.sweep(
                self.idx, self.S, self.H, self.HL, self.K, self.free, self.n_free, now, flush_all,
                self.E, self.EH, self.EHL, self.ESZ,
            )  # fmt: skip
            self._collect(n_out)
            if n_out < self.E.shape[0] or self.n_free == before:
                return

    def finish(self) -> None:
        """End every connection still open (the capture is over)."""
        self.sweep(self.last_now, flush_all=True)

    def take(self) -> Ended | None:
        if not self.ended:
            return None
        out = Ended(
            np.concatenate([e.state for e in self.ended]),
            np.concatenate([e.hist for e in self.ended]),
            np.concatenate([e.hist_len for e in self.ended]),
            np.concatenate([e.size for e in self.ended]),
        )
        self.ended.clear()
        return out


def uids(seed: bytes, numbers: np.ndarray) -> np.ndarray:
    """Zeek-style uids ("C" + 17 base62 characters), deterministic for a run's seed and number."""
    h0 = np.uint64(int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "little"))
    x = numbers.astype(np.uint64) ^ h0
    out = np.empty((numbers.shape[0], 18), np.uint8)
    out[:, 0] = ord("C")
    pos = 1
    for salt in (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03)):
        z = x + salt
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        for _ in range(9 if pos == 1 else 8):
            out[:, pos] = _B62[(z % np.uint64(62)).astype(np.int64)]
            z //= np.uint64(62)
            pos += 1
    return out.view("S18").ravel()


def addr_text(hi: np.ndarray, lo: np.ndarray) -> pl.Series:
    """Addresses as Zeek prints them; IPv4-mapped values become dotted quads, vectorised."""
    hi_u = hi.astype(np.uint64)
    lo_u = lo.astype(np.uint64)
    v4 = (hi_u == 0) & ((lo_u >> np.uint64(32)) == np.uint64(0xFFFF))
    octets = [((lo_u >> np.uint64(sh)) & np.uint64(0xFF)).astype(np.int64) for sh in (24, 16, 8, 0)]
    df = pl.DataFrame({f"o{k}": o for k, o in enumerate(octets)})
    text = df.select(
        pl.concat_str([pl.col("o0"), pl.col("o1"), pl.col("o2"), pl.col("o3")], separator=".")
    ).to_series()
    if not v4.all():
        idx = np.nonzero(~v4)[0]
        cache: dict[tuple[int, int], str] = {}
        six = []
        for h, lw in zip(hi_u[idx].tolist(), lo_u[idx].tolist(), strict=True):
            k = (h, lw)
            if k not in cache:
                cache[k] = str(ipaddress.IPv6Address((h << 64) | lw))
            six.append(cache[k])
        text = text.scatter(idx, pl.Series(six, dtype=pl.String))
    return text.rename("addr")


def in_networks(hi: np.ndarray, lo: np.ndarray, nets: tuple[str, ...]) -> np.ndarray:
    """Membership of each address in any of ``nets`` (IPv4 nets match IPv4-mapped addresses)."""
    hi_u = hi.astype(np.uint64)
    lo_u = lo.astype(np.uint64)
    hit = np.zeros(hi.shape[0], np.bool_)
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        if net.version == 4:
            base = (0xFFFF << 32) | int(net.network_address)
            plen = 96 + net.prefixlen
        else:
            base = int(net.network_address)
            plen = net.prefixlen
        bhi, blo = np.uint64(base >> 64), np.uint64(base & 0xFFFFFFFFFFFFFFFF)
        if plen <= 64:
            m = np.uint64(((1 << plen) - 1) << (64 - plen)) if plen else np.uint64(0)
            hit |= (hi_u & m) == (bhi & m)
        else:
            ml = np.uint64(((1 << (plen - 64)) - 1) << (128 - plen))
            hit |= (hi_u == bhi) & ((lo_u & ml) == (blo & ml))
    return hit


_PROTO_NAME = {0: "tcp", 1: "udp", 2: "icmp", 3: "unknown_transport"}


def conn_frame(ended: Ended, settings: Settings, seed: bytes, source: str) -> pl.DataFrame:
    """conn.log rows (lake names) for ended connections; ``service`` is left for the analysers."""
    S = ended.state
    kind = S[:, T.C_KIND]
    start = S[:, T.C_START]
    dur_ns = S[:, T.C_LAST] - start
    has_dur = dur_ns > 0
    hist = ended.hist
    hl = ended.hist_len
    # History bytes → strings (fixed width, then strip the padding).
    padded = np.where(np.arange(T.HIST_MAX)[None, :] < hl[:, None], hist, 0).astype(np.uint8)
    hist_s = pl.Series("history", np.ascontiguousarray(padded).view(f"S{T.HIST_MAX}").ravel()).cast(
        pl.Binary
    )
    df = pl.DataFrame(
        {
            "ts": start // 1000,
            "conn_no": S[:, T.C_NO],
            "uid": pl.Series(uids(seed, S[:, T.C_NO])).cast(pl.Binary),
            "orig_h": addr_text(S[:, T.C_OHI], S[:, T.C_OLO]),
            "orig_p": S[:, T.C_OP].astype(np.int32),
            "resp_h": addr_text(S[:, T.C_RHI], S[:, T.C_RLO]),
            "resp_p": S[:, T.C_RP].astype(np.int32),
            "kind": kind,
            "duration": np.where(has_dur, dur_ns / 1e9, np.nan),
            "orig_bytes": ended.size[:, 0],
            "resp_bytes": ended.size[:, 1],
            "has_dur": has_dur,
            "ostate": S[:, T.C_OSTATE],
            "rstate": S[:, T.C_RSTATE],
            "osize_raw": S[:, T.C_OSIZE],
            "rsize_raw": S[:, T.C_RSIZE],
            "local_orig": in_networks(S[:, T.C_OHI], S[:, T.C_OLO], settings.local_nets),
            "local_resp": in_networks(S[:, T.C_RHI], S[:, T.C_RLO], settings.local_nets),
            "missed_bytes": S[:, T.C_MISSED],
            "history": hist_s,
            "orig_pkts": S[:, T.C_OPKTS],
            "orig_ip_bytes": S[:, T.C_OIPB],
            "resp_pkts": S[:, T.C_RPKTS],
            "resp_ip_bytes": S[:, T.C_RIPB],
            "parent_no": S[:, T.C_PARENT],
            "ip_proto": S[:, T.C_PROTO].astype(np.int32),
            "first_record": S[:, T.C_FIRST_ROW_FILE],
            "last_record": S[:, T.C_LAST_ROW_FILE],
        }
    )
    o, r = pl.col("ostate"), pl.col("rstate")
    o_in = o.is_in([T.INACTIVE, T.PARTIAL])
    r_in = r.is_in([T.INACTIVE, T.PARTIAL])
    history = pl.col("history").cast(pl.String).str.strip_chars("\x00")
    tcp_state = (
        pl.when(r == T.RESET)
        .then(
            pl.when(
                o.is_in([T.SYN_SENT, T.SYN_ACK_SENT])
                | ((o == T.RESET) & (pl.col("orig_bytes") == 0) & (pl.col("resp_bytes") == 0))
            )
            .then(pl.lit("REJ"))
            .when(o_in)
            .then(pl.lit("RSTRH"))
            .otherwise(pl.lit("RSTR"))
        )
        .when(o == T.RESET)
        .then(
            pl.when(r_in)
            .then(
                pl.when(history.str.contains(r"^\^?S[^HAFGIQ]*R"))
                .then(pl.lit("RSTOS0"))
                .otherwise(pl.lit("OTH"))
            )
            .otherwise(pl.lit("RSTO"))
        )
        .when((r == T.CLOSED) & (o == T.CLOSED))
        .then(pl.lit("SF"))
        .when(o == T.CLOSED)
        .then(pl.when(r_in).then(pl.lit("SH")).otherwise(pl.lit("S2")))
        .when(r == T.CLOSED)
        .then(pl.when(o_in).then(pl.lit("SHR")).otherwise(pl.lit("S3")))
        .when((o == T.SYN_SENT) & (r == T.INACTIVE))
        .then(pl.lit("S0"))
        .when((o == T.ESTABLISHED) & (r == T.ESTABLISHED))
        .then(pl.lit("S1"))
        .otherwise(pl.lit("OTH"))
    )
    o_act = pl.col("osize_raw") >= 0
    r_act = pl.col("rsize_raw") >= 0
    udp_state = (
        pl.when(o_act)
        .then(pl.when(r_act).then(pl.lit("SF")).otherwise(pl.lit("S0")))
        .otherwise(pl.when(r_act).then(pl.lit("SHR")).otherwise(pl.lit("OTH")))
    )
    k = pl.col("kind")
    df = df.with_columns(
        ts=pl.col("ts").cast(pl.Datetime("us", "UTC")),
        uid=pl.col("uid").cast(pl.String),
        proto=k.replace_strict(_PROTO_NAME, return_dtype=pl.String),
        conn_state=pl.when(k == 0)
        .then(tcp_state)
        .when(k == 1)
        .then(udp_state)
        .otherwise(pl.lit("OTH")),
        history=pl.when(history == "").then(None).otherwise(history),
        duration=pl.when(pl.col("has_dur")).then(pl.col("duration")).otherwise(None),
        orig_bytes=pl.when(pl.col("has_dur")).then(pl.col("orig_bytes")).otherwise(None),
        resp_bytes=pl.when(pl.col("has_dur")).then(pl.col("resp_bytes")).otherwise(None),
        source=pl.lit(source),
    )
    return df
