"""Cut the original packets of chosen connections out of a capture, byte for byte.

Which packets belong to a connection is decided from what the lake recorded about it, not from how
uids are computed (that may change between versions): the capture is read again with the same
reader, decoder and fragment reassembler the patrol used, and a packet belongs to a connection
when it is a packet the patrol's tracker counts (decoded whole, not a tunnel's carrier, ICMP of
at least 8 bytes), its protocol, addresses and key match the connection's in either direction,
and its record number lies in the connection's ``first_record``..``last_record`` span. The key
is the ports for TCP/UDP/SCTP, and for ICMP what Zeek keys it by: the type and its counterpart
for request/reply pairs (echo, timestamp, …), else type and code, one way only. One key has one
connection at a time, so the span separates reuses of a key. The number of packets
found is checked against the connection's ``orig_pkts + resp_pkts``. Every matching record
(tunnelled packets by their inner or outer connection, and every fragment of a datagram that
completed one) is then copied from the source file unchanged: the same record header, timestamp,
lengths and bytes, in file order. Nothing is re-encoded, so tshark shows the same frames as in
the original.

A classic pcap keeps its 24-byte file header; a pcapng keeps its section header and interface
blocks that come before the first packet, and its packet blocks verbatim.
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from mamori.config import Settings
from mamori.sensors.pcap.decode import FRAGMENT, OK, TUN_GRE, TUN_IP, decode
from mamori.sensors.pcap.fragments import FragmentReassembler
from mamori.sensors.pcap.reader import PCAPNG_IDB, PCAPNG_SHB, CaptureError, PcapReader

PCAPNG_EPB = 6
PCAPNG_SPB = 3


class CutError(Exception):
    """Packets could not be cut; the message names the capture and why."""


@dataclass
class Cut:
    """What was cut from one capture: per uid, how many records and their record-number span."""

    source: Path
    out: Path
    packets: int
    bytes: int
    format: str
    per_uid: pl.DataFrame  # uid, packets, first_record, last_record
    records: np.ndarray = field(repr=False)  # 1-based record numbers copied, ascending


def _source_bytes(path: Path) -> np.ndarray:
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:  # compressed captures are cut from their decompressed stream
        with gzip.open(path, "rb") as fh:
            return np.frombuffer(fh.read(), np.uint8)
    return np.memmap(path, np.uint8, mode="r")


def _gather(data: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """data[s:s+l] for every (s, l), concatenated, without a Python loop."""
    if starts.size == 0:
        return np.empty(0, np.uint8)
    ends = np.cumsum(lens)
    idx = np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]), dtype=np.int64)
    return np.asarray(data[idx])


# TCP, UDP, SCTP: a connection is its 5-tuple; ICMP is keyed by types (below); others by addresses.
PORTED = (6, 17, 132, 1, 58)
# Zeek's ICMP request/reply pairs: a message and its counterpart are one connection, keyed
# (type, counterpart type); any other message is one-way, keyed (type, code), never reversed.
_PAIRS = {
    1: {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17},
    58: {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
         139: 140, 140: 139, 144: 145, 145: 144, 146: 147, 147: 146},
}  # fmt: skip
_COUNTERPART = np.full((2, 256), -1, np.int64)
for _row, _proto in enumerate((1, 58)):
    for _t, _c in _PAIRS[_proto].items():
        _COUNTERPART[_row, _t] = _c
ICMP_MINLEN = 8  # shorter ICMP messages are dropped, by Zeek and by the patrol's tracker


def _addr(text: str) -> tuple[int, int]:
    """An address as the decoder's two 64-bit halves (IPv4 mapped into ::ffff:0:0/96)."""
    ip = ipaddress.ip_address(text)
    value = int(ip) | (0xFFFF << 32) if ip.version == 4 else int(ip)
    return value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF


def _wanted(conns: pl.DataFrame) -> pl.DataFrame:
    """Both directions of every wanted connection, keyed as decoded rows are."""
    o = [_addr(h) for h in conns["orig_h"].to_list()]
    r = [_addr(h) for h in conns["resp_h"].to_list()]
    base = pl.DataFrame(
        {
            "uid": conns["uid"],
            "proto": conns["ip_proto"].cast(pl.Int64),
            "ohi": pl.Series([a for a, _ in o], dtype=pl.UInt64),
            "olo": pl.Series([b for _, b in o], dtype=pl.UInt64),
            "rhi": pl.Series([a for a, _ in r], dtype=pl.UInt64),
            "rlo": pl.Series([b for _, b in r], dtype=pl.UInt64),
            "op": conns["orig_p"].cast(pl.Int64),
            "rp": conns["resp_p"].cast(pl.Int64),
            "first": conns["first_record"].cast(pl.Int64),
            "last": conns["last_record"].cast(pl.Int64),
        }
    )
    fwd = base.rename(
        {"ohi": "shi", "olo": "slo", "rhi": "dhi", "rlo": "dlo", "op": "sp", "rp": "dp"}
    )
    rev = base.rename(
        {"rhi": "shi", "rlo": "slo", "ohi": "dhi", "olo": "dlo", "rp": "sp", "op": "dp"}
    )
    # A one-way ICMP connection (not a request/reply pair) is only ever seen from its originator.
    paired = ((pl.col("proto") == 1) & pl.col("dp").is_in(list(_PAIRS[1]))) | (
        (pl.col("proto") == 58) & pl.col("dp").is_in(list(_PAIRS[58]))
    )
    rev = rev.filter(~pl.col("proto").is_in([1, 58]) | paired)
    return pl.concat([fwd, rev.select(fwd.columns)]).unique()


def select_records(
    source: Path, conns: pl.DataFrame, settings: Settings | None = None
) -> tuple[pl.DataFrame, str, int]:
    """Records of the wanted connections (lake ``conn`` rows: uid, ip_proto, orig_h, orig_p,
    resp_h, resp_p, first_record, last_record): ``(rec_no, file_off, caplen, uid, fragment)``
    rows, the capture's format and the file offset of its first packet.

    A decoded packet (outer or tunnelled) belongs to a connection when its protocol and
    addresses, and for TCP/UDP/SCTP its ports, match in either direction and its record number
    lies in the connection's ``first_record``..``last_record``: one 5-tuple has one connection
    at a time, so that span separates reuses of a tuple. Fragments are matched through the
    datagram they completed, as the patrol's reassembler rebuilt it.
    """
    settings = settings or Settings()
    want = _wanted(conns)
    ported = want.filter(pl.col("proto").is_in(PORTED))
    by_addr = want.filter(~pl.col("proto").is_in(PORTED)).drop("sp", "dp").unique()
    reader = PcapReader(source, settings.batch_bytes)
    fragments = FragmentReassembler()
    parts: dict[tuple[int, ...], list[tuple[int, int, int]]] = {}
    completed: dict[int, list[tuple[int, int, int]]] = {}
    found: list[pl.DataFrame] = []
    first_off = -1
    try:
        for batch in reader:
            if first_off < 0 and len(batch):
                first_off = int(batch.file_off[0])
            pk0 = decode(batch)
            _note_fragments(batch, pk0, parts)
            _buf, pk = fragments.apply(batch.buf, pk0)
            for key in [k for k in parts if k not in fragments.pending]:
                done = parts.pop(key)
                completed[done[-1][0]] = done
            c = pk.cols
            # The rows the tracker counts: decoded whole, not the carrier of an IP-in-IP or GRE
            # tunnel (its inner packet is a row of its own), ICMP no shorter than its minimum.
            proto = c["proto"].astype(np.int64)
            is_icmp = (proto == 1) | (proto == 58)
            usable = (c["status"] == OK) & (c["tunnel"] != TUN_IP) & (c["tunnel"] != TUN_GRE)
            usable &= ~is_icmp | (c["pay_len"].astype(np.int64) + 4 >= ICMP_MINLEN)
            rows = np.flatnonzero(usable)
            rec = c["rec"][rows].astype(np.int64)
            sp = c["sport"][rows].astype(np.int64)
            dp = c["dport"][rows].astype(np.int64)
            icmp_rows = np.flatnonzero(is_icmp[rows])
            if icmp_rows.size:
                kind = (proto[rows][icmp_rows] == 58).astype(np.int64)
                partner = _COUNTERPART[kind, np.clip(sp[icmp_rows], 0, 255)]
                dp[icmp_rows] = np.where(partner >= 0, partner, dp[icmp_rows])
            frame = pl.DataFrame(
                {
                    "proto": c["proto"][rows].astype(np.int64),
                    "shi": c["src_hi"][rows],
                    "slo": c["src_lo"][rows],
                    "dhi": c["dst_hi"][rows],
                    "dlo": c["dst_lo"][rows],
                    "sp": sp,
                    "dp": dp,
                    "rec_no": batch.first_record + rec + 1,
                    "file_off": batch.file_off[rec],
                    "caplen": batch.caplen[rec].astype(np.int64),
                }
            )
            keys5 = ["proto", "shi", "slo", "dhi", "dlo", "sp", "dp"]
            hits = pl.concat(
                [
                    frame.join(ported, on=keys5),
                    frame.join(by_addr, on=keys5[:5]),
                ],
                how="diagonal",
            ).filter(pl.col("rec_no").is_between(pl.col("first"), pl.col("last")))
            if hits.height:
                found.append(hits.select("rec_no", "file_off", "caplen", "uid"))
    except CaptureError as exc:
        raise CutError(str(exc)) from None
    schema = {"rec_no": pl.Int64, "file_off": pl.Int64, "caplen": pl.Int64, "uid": pl.String}
    frame = pl.concat(found) if found else pl.DataFrame(schema=schema)
    frame = frame.with_columns(fragment=pl.lit(False))
    # Earlier fragments of a datagram that completed a wanted packet belong to its connection.
    extra = [
        (rec_no, off, cap, uid, True)
        for done_at, uid in frame.select("rec_no", "uid").unique().iter_rows()
        for rec_no, off, cap in completed.get(done_at, [])
        if rec_no != done_at
    ]
    if extra:
        frame = pl.concat(
            [frame, pl.DataFrame(extra, schema=frame.schema, orient="row")], how="vertical"
        )
    return frame, reader.format, first_off


def _note_fragments(batch: object, pk: object, parts: dict) -> None:  # type: ignore[type-arg]
    """Mirror the reassembler's pending datagrams with the records of their fragments (fragment
    rows are rare and already handled one by one by the reassembler)."""
    c = pk.cols  # type: ignore[attr-defined]
    rows = np.flatnonzero(c["status"] == FRAGMENT)
    for r in rows.tolist():
        key = (
            int(c["ip_ver"][r]), int(c["src_hi"][r]), int(c["src_lo"][r]),
            int(c["dst_hi"][r]), int(c["dst_lo"][r]), int(c["ip_id"][r]), int(c["proto"][r]),
        )  # fmt: skip
        i = int(c["rec"][r])
        parts.setdefault(key, []).append(
            (
                batch.first_record + i + 1,  # type: ignore[attr-defined]
                int(batch.file_off[i]),  # type: ignore[attr-defined]
                int(batch.caplen[i]),  # type: ignore[attr-defined]
            )
        )


def cut_capture(
    source: Path, conns: pl.DataFrame, out: Path, settings: Settings | None = None
) -> Cut:
    """Write the records of the connections ``conns`` (lake ``conn`` rows) of ``source`` into
    ``out``, in the source's format."""
    rows, fmt, first_off = select_records(source, conns, settings)
    records = rows.select("rec_no", "file_off", "caplen").unique().sort("rec_no")
    per_uid = (
        rows.group_by("uid")
        .agg(
            packets=pl.col("rec_no").filter(~pl.col("fragment")).len(),
            fragments=pl.col("rec_no").filter(pl.col("fragment")).len(),
            first_record=pl.col("rec_no").min(),
            last_record=pl.col("rec_no").max(),
        )
        .sort("uid")
    )
    data = _source_bytes(source)
    offs = records["file_off"].to_numpy()
    if fmt == "pcap":
        header = np.asarray(data[:24])
        lens = records["caplen"].to_numpy() + 16
    else:
        header, lens = _pcapng_blocks(source, data, offs, first_off)
    body = _gather(data, offs, lens)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        fh.write(header.tobytes())
        fh.write(body.tobytes())
    return Cut(
        source,
        out,
        records.height,
        int(header.size + body.size),
        fmt,
        per_uid,
        records["rec_no"].to_numpy(),
    )


def _pcapng_blocks(
    source: Path, data: np.ndarray, offs: np.ndarray, first_off: int
) -> tuple[np.ndarray, np.ndarray]:
    """The blocks before the first packet (section header, interfaces) and each packet block's
    length; refuses captures whose packets name an interface declared later, which the copied
    header would not describe."""
    if first_off < 0:
        first_off = int(data.shape[0])
    head = bytes(np.asarray(data[:first_off]))
    order = "<" if struct.unpack("<I", head[8:12])[0] == 0x1A2B3C4D else ">"
    n_idb, pos = 0, 0
    while pos + 12 <= len(head):
        btype, blen = struct.unpack(order + "II", head[pos : pos + 8])
        if blen < 12:
            break
        n_idb += btype == PCAPNG_IDB
        if btype == PCAPNG_SHB and pos:
            raise CutError(f"{source}: several pcapng sections before the first packet")
        pos += blen
    if offs.size == 0:
        return np.frombuffer(head, np.uint8), np.empty(0, np.int64)
    hdr = _gather(data, offs, np.full(offs.size, 12, np.int64)).reshape(-1, 12)
    dt = np.dtype(np.uint32).newbyteorder(order)
    btype = hdr[:, 0:4].copy().view(dt).ravel()
    lens = hdr[:, 4:8].copy().view(dt).ravel().astype(np.int64)
    iface = np.where(btype == PCAPNG_EPB, hdr[:, 8:12].copy().view(dt).ravel(), 0)
    if (iface >= max(n_idb, 1)).any():
        raise CutError(
            f"{source}: packets name a pcapng interface declared after the first packet; "
            "cutting such captures is not supported"
        )
    return np.frombuffer(head, np.uint8), lens
