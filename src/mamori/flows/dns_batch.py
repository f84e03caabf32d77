"""dns.log rows of many UDP DNS conversations at once, as columns.

The Python analyser (``analyzers.dns``) reproduces Zeek's DNS script message by message; it costs
tens of microseconds per conversation, and DNS lookups are most of the analysed connections. Most
of those conversations have one of a few shapes: queries from the originator, each answered by the
responder with its transaction ID before the session times out (one lookup, or a resolver reusing
its port); queries alone (retried, unanswered); replies alone from the responder. For those shapes
the script's outcome is a fixed function of each query and its reply, so this module parses every
message of a batch with the compiled kernel (``dns_kernel``) and builds the rows as Arrow columns.
Every other conversation (other orders of messages, answer types the kernel does not render,
replies from the originator, malformed or odd messages) is handed back to the Python analyser, which stays the
reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mamori.flows import dns_kernel as K
from mamori.flows.analyzers import dns_wire
from mamori.flows.analyzers.dns import SESSION_TIMEOUT, _netbios_name
from mamori.flows.analyzers.dns_names import qclass_name, qtype_name, rcode_name
from mamori.flows.payload import Payload
from mamori.schema.dns import SCHEMA

# (ts_ns, is_orig, seq, data): the router's parts of one UDP conversation
Parts = list[tuple[int, bool, int, bytes]]


@dataclass
class Batch:
    """UDP DNS conversations of one round of ended connections, in columns."""

    nos: list[int]  # connection numbers
    ts: list[float]  # the connections' starts
    uid: list[str]
    orig_h: list[str]
    orig_p: list[int]
    resp_h: list[str]
    resp_p: list[int]
    parts: list[Parts]  # one list per conversation, unless ``payload`` holds them as columns
    payload: Payload | None = None


def parts(batch: Batch, k: int) -> Parts:
    """The k-th conversation's parts, from whichever form the batch holds them in."""
    if batch.payload is None:
        return batch.parts[k]
    pl = batch.payload
    a, b = int(pl.first[k]), int(pl.first[k + 1])
    data = pl.data
    return [
        (t, o, q, data[x : x + n])
        for t, o, q, x, n in zip(
            pl.ts[a:b].tolist(), pl.orig[a:b].tolist(), pl.seq[a:b].tolist(),
            pl.at[a:b].tolist(), pl.size[a:b].tolist(), strict=True,
        )
    ]  # fmt: skip


def _columns(
    batch: Batch,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(messages per conversation, store, offsets, lengths, ts_ns, is_orig) of every message."""
    pl = batch.payload
    if pl is not None:
        buf = np.frombuffer(pl.data, np.uint8)
        return np.diff(pl.first), buf, pl.at, pl.size, pl.ts, pl.orig
    n = len(batch.nos)
    counts = np.fromiter((len(p) for p in batch.parts), np.int64, n)
    flat = [x for p in batch.parts for x in p]
    m = len(flat)
    lens = np.fromiter((len(x[3]) for x in flat), np.int64, m)
    offs = np.zeros(m, np.int64)
    offs[1:] = np.cumsum(lens)[:-1]
    buf = np.frombuffer(b"".join(x[3] for x in flat), np.uint8)
    ts_ns = np.fromiter((x[0] for x in flat), np.int64, m)
    is_orig = np.fromiter((x[1] for x in flat), np.bool_, m)
    return counts, buf, offs, lens, ts_ns, is_orig


# Per dns_names function, its names of the codes 0..len-1 (grown as larger codes are met).
_NAME_TABLES: dict[object, pa.Array] = {}
# Codes up to this get a cached table; a larger one (rare: odd qtypes) is named per batch.
_TABLE_TOP = 4096


def _names(codes: np.ndarray, valid: np.ndarray, name: object) -> pa.Array:
    """A name column from codes through one of dns_names' functions, once per distinct code."""
    if codes.size and codes.min() >= 0 and codes.max() < _TABLE_TOP:
        # The common case: the names of every code up to the largest one met so far, made once
        # per process; null indices make the invalid rows null in the same take.
        top = int(codes.max())
        table = _NAME_TABLES.get(name)
        if table is None or len(table) <= top:
            size = max(top + 1, 256)
            table = pa.array([name(c) for c in range(size)], pa.string())  # type: ignore[operator]
            _NAME_TABLES[name] = table
        return table.take(pa.array(codes.astype(np.int32), mask=~valid))
    # Codes are 16-bit fields: a lookup table finds the distinct ones without np.unique's sort,
    # and null indices make the invalid rows null in the same take.
    if codes.size and codes.min() >= 0 and codes.max() <= 0xFFFF:
        seen = np.zeros(int(codes.max()) + 1, np.bool_)
        seen[codes] = True
        uniq = np.flatnonzero(seen)
        lut = np.zeros(seen.shape[0], np.int32)
        lut[uniq] = np.arange(uniq.shape[0], dtype=np.int32)
        inv = lut[codes]
    else:
        uniq, inv = np.unique(codes, return_inverse=True)
    table = pa.array([name(int(c)) for c in uniq.tolist()], pa.string())  # type: ignore[operator]
    return table.take(pa.array(inv.astype(np.int32), mask=~valid))


def _strings(text: np.ndarray, at: np.ndarray, size: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A string column of pieces of the kernel's text (null where not ``valid``)."""
    size = np.where(valid, size, 0).astype(np.int64)
    offsets, data = K.gather(text, at.astype(np.int64), size)
    nulls = int((~valid).sum())
    validity = pa.array(valid).buffers()[1] if nulls else None
    return pa.StringArray.from_buffers(
        at.shape[0], pa.py_buffer(offsets), pa.py_buffer(data), validity, nulls
    )


def _netbios_names(
    text: np.ndarray, q_at: np.ndarray, q_len: np.ndarray, netbios: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The query pieces of NetBIOS rows pointed at their decoded names (Zeek's
    decode_netbios_name), which are appended to the text: (q_at, q_len, text).

    Only a 32-byte name can decode (anything else is logged as it is). A few names repeat over
    thousands of queries (7 distinct in 9.5 k on the workload): each distinct one is decoded once.
    """
    rows = np.nonzero(netbios & (q_len == 32))[0]
    if rows.size == 0:
        return q_at, q_len, text
    flat = text[q_at[rows, None] + np.arange(32)].tobytes()
    extra = bytearray()
    placed: dict[bytes, tuple[int, int]] = {}  # name -> (at, length) of its decoding, or (-1, 0)
    got_r: list[tuple[int, int]] = []
    for k in range(rows.shape[0]):
        name = flat[32 * k : 32 * k + 32]
        got = placed.get(name)
        if got is None:
            got = (-1, 0)
            decoded = _netbios_name(name)
            if decoded:  # else the name is logged as it is
                shown = dns_wire.escape(decoded).encode()
                got = (text.shape[0] + len(extra), len(shown))
                extra += shown
            placed[name] = got
        got_r.append(got)
    at_r, len_r = np.array(got_r, np.int64).reshape(-1, 2).T
    new = at_r >= 0
    q_at, q_len = q_at.copy(), q_len.copy()
    q_at[rows[new]] = at_r[new]
    q_len[rows[new]] = len_r[new]
    return q_at, q_len, np.concatenate([text, np.frombuffer(bytes(extra), np.uint8)])


def analyze(batch: Batch) -> tuple[pa.Table | None, np.ndarray, np.ndarray]:
    """Rows of the conversations this path can decide, which ones were confirmed, which not.

    Returns (dns table or None, confirmed mask over ``batch.nos``, mask of conversations left to
    the Python analyser).
    """
    n = len(batch.nos)
    counts, buf, offs, lens, ts_ns, is_orig = _columns(batch)
    m = offs.shape[0]
    if buf.shape[0] == 0:
        buf = np.zeros(1, np.uint8)
    counts_rp = np.repeat(np.array(batch.resp_p, np.int64), counts)
    header, status, nq, question, answers, text = K.parse(buf, offs, lens, counts_rp == 137)

    first = np.zeros(n, np.int64)
    first[1:] = np.cumsum(counts)[:-1]
    if m == 0:
        return None, np.zeros(n, np.bool_), np.ones(n, np.bool_)
    op = np.array(batch.orig_p, np.int64)
    rp = np.array(batch.resp_p, np.int64)
    ts = ts_ns / 1e9
    qr = (header[:, 1] & 0x8000) != 0
    kind = K.shapes(first, counts, is_orig, qr, header[:, 0], status == K.OK, ts, SESSION_TIMEOUT)
    fast = kind != K.OTHER
    rest = ~fast
    if not fast.any():
        return None, np.zeros(n, np.bool_), rest
    msg_conv = np.repeat(np.arange(n), counts)
    confirmed = fast & (np.bincount(msg_conv, weights=header[:, 6], minlength=n) > 0)

    # One row per query (with the reply after it, if any) of an alternating conversation;
    # rows are ordered by message so that answers follow them.
    alt = np.nonzero(kind == K.ALTERNATING)[0]
    per = (counts[alt] + 1) // 2
    conv_a = np.repeat(alt, per)
    k = np.arange(conv_a.shape[0]) - np.repeat(np.cumsum(per) - per, per)
    q_a = first[conv_a] + 2 * k
    r_a = np.where(q_a + 1 < first[conv_a] + counts[conv_a], q_a + 1, -1)
    # Conversations of queries only or replies only: a row per message.
    msg_kind = kind[msg_conv]
    each = np.nonzero((msg_kind == K.QUERIES) | (msg_kind == K.REPLIES))[0]
    single = msg_conv[each]
    asks = kind[single] == K.QUERIES
    rows = np.concatenate([conv_a, single])
    qmsg = np.concatenate([q_a, np.where(asks, each, -1)])
    rmsg = np.concatenate([r_a, np.where(asks, -1, each)])
    order = np.argsort(np.where(qmsg >= 0, qmsg, rmsg), kind="stable")
    rows, qmsg, rmsg = rows[order], qmsg[order], rmsg[order]
    has_q = qmsg >= 0
    has_r = rmsg >= 0
    qi = np.maximum(qmsg, 0)
    ri = np.maximum(rmsg, 0)
    asked = has_q & (nq[qi] > 0)

    # Answers of the reply messages: those with a reply make the row's answers when non-empty,
    # and the first of them gives AA/RA, rtt and (for a lone reply) the query name.
    amsg = answers[:, 0]
    row_of_msg = np.full(max(m, 1), -1, np.int64)
    row_of_msg[rmsg[has_r]] = np.nonzero(has_r)[0]
    arow = row_of_msg[amsg] if answers.shape[0] else np.zeros(0, np.int64)
    with_reply = (arow >= 0) & (answers[:, 4] == 1)
    big = np.iinfo(np.int64).max
    first_reply = np.full(rows.shape[0], big, np.int64)
    wr = np.nonzero(with_reply)[0]
    np.minimum.at(first_reply, arow[wr], wr)
    replied = first_reply != big
    first_reply[~replied] = 0
    kept = with_reply & (answers[:, 6] > 0)

    t0 = ts[np.where(has_q, qi, ri)]
    rtt = ts[ri] - t0
    rtt_valid = replied & (rtt != 0)
    hdr_q = header[qi]
    hdr_r = header[ri]
    flags_q, flags_r = hdr_q[:, 1], hdr_r[:, 1]
    rcode = flags_r & 0xF
    rejected = has_r & (
        ((rcode != 0) & (hdr_r[:, 2] == 0))
        | ((nq[ri] > 0) & (hdr_r[:, 3] == 0) & (hdr_r[:, 4] == 0) & (hdr_r[:, 5] == 0))
    )
    fr = first_reply
    q_at = np.where(asked, question[qi, 0], answers[fr, 1] if answers.shape[0] else 0)
    q_len = np.where(asked, question[qi, 1], answers[fr, 2] if answers.shape[0] else 0)
    netbios = asked & (rp[rows] == 137)
    if netbios.any():  # NetBIOS queries log the decoded name
        q_at, q_len, text = _netbios_names(text, q_at, q_len, netbios)
    query = _strings(text, q_at, q_len, asked | replied)

    ka = np.nonzero(kept)[0]
    values = _strings(text, answers[ka, 5], answers[ka, 6], np.ones(ka.shape[0], np.bool_))
    per_row = (
        np.bincount(arow[ka], minlength=rows.shape[0])
        if ka.size
        else np.zeros(rows.shape[0], np.int64)
    )
    loffs = np.zeros(rows.shape[0] + 1, np.int32)
    np.cumsum(per_row, out=loffs[1:])
    lmask = pa.array(per_row == 0)
    ans = pa.ListArray.from_arrays(pa.array(loffs), values, mask=lmask)
    ttls = pa.ListArray.from_arrays(
        pa.array(loffs), pa.array(answers[ka, 3].astype(np.float64)), mask=lmask
    )

    take = pa.array(rows)
    qtype = question[qi, 2]
    qclass = question[qi, 3]
    micros = np.round(t0 * 1e6).astype(np.int64)

    def pick(values: list[str]) -> pa.Array:
        """A conversation column per row: converted once per conversation, then taken."""
        return pa.array(values, pa.string()).take(take)

    def masked(values: np.ndarray, valid: np.ndarray) -> pa.Array:
        """Nulls where not ``valid``; the values already have the column's NumPy type."""
        return pa.array(values, mask=~valid)

    # The 16-bit columns (ports, header fields) hold values read as 16 bits, so NumPy's cast is
    # exact, and many times cheaper than Arrow's checked one from int64.

    qtype_names = _names(qtype, asked, qtype_name)
    nbstat = netbios & (qtype == 33)  # NetBIOS node status queries
    cols = {
        "ts": pa.array(micros, SCHEMA.field("ts").type),
        "uid": pick(batch.uid),
        "orig_h": pick(batch.orig_h),
        "orig_p": pa.array(op[rows].astype(np.uint16)),
        "resp_h": pick(batch.resp_h),
        "resp_p": pa.array(rp[rows].astype(np.uint16)),
        "proto": pa.repeat(pa.scalar("udp", pa.string()), rows.shape[0]),
        "trans_id": pa.array(header[np.where(has_q, qi, ri), 0].astype(np.uint16)),
        "rtt": masked(rtt, rtt_valid),  # float64, as ts
        "query": query,
        "qclass": masked(qclass.astype(np.uint16), asked),
        "qclass_name": _names(qclass, asked, qclass_name),
        "qtype": masked(qtype.astype(np.uint16), asked),
        "qtype_name": pc.if_else(pa.array(nbstat), "NBSTAT", qtype_names)
        if nbstat.any()
        else qtype_names,
        "rcode": masked(rcode.astype(np.uint16), has_r),
        "rcode_name": _names(rcode, has_r, rcode_name),
        "AA": pa.array(replied & ((flags_r & 0x0400) != 0)),
        "TC": pa.array(asked & ((flags_q & 0x0200) != 0)),
        "RD": pa.array(asked & ((flags_q & 0x0100) != 0)),
        "RA": pa.array(replied & ((flags_r & 0x0080) != 0)),
        "Z": pa.array(np.where(asked, (flags_q >> 4) & 0x7, 0).astype(np.uint8)),
        "answers": ans,
        "TTLs": ttls,
        "rejected": pa.array(rejected),
    }
    table = pa.Table.from_arrays([cols[f.name] for f in SCHEMA], schema=SCHEMA)
    return table, confirmed, rest
