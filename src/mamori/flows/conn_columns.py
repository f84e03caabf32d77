"""Ended connections to conn.log columns: compiled text, straight into Arrow buffers.

A flow-heavy capture ends about as many connections as it has packets, so what is computed per
ended connection costs as much as what is computed per packet. Building the text columns (uid,
addresses, history, conn_state) through Polars expressions and Python fallbacks cost more than
tracking the connections; here each is one Numba pass writing the bytes and offsets of an Arrow
string array, with no Python object per connection.
"""

from __future__ import annotations

import hashlib
import ipaddress

import numba as nb
import numpy as np
import pyarrow as pa

from mamori.flows import tracker as T
from mamori.jitcache import depends_on

_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
UID_LEN = 18
# _DEC[b]: the decimal text of byte value b, zero-padded to three bytes, then its length.
_DEC = np.array([[*str(b).ljust(3, "\0").encode(), len(str(b))] for b in range(256)], np.uint8)

# conn_state codes; the names are indexed by code.
STATE_NAMES = (
    "S0",
    "S1",
    "SF",
    "REJ",
    "S2",
    "S3",
    "RSTO",
    "RSTR",
    "RSTOS0",
    "RSTRH",
    "SH",
    "SHR",
    "OTH",
)
S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH = range(len(STATE_NAMES))
PROTO_NAMES = ("tcp", "udp", "icmp", "unknown_transport")  # indexed by the tracker's kind


def uid_seed(seed: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest(), "little"))


@nb.njit(cache=True)
def _uid_bytes(h0: np.uint64, numbers: np.ndarray, b62: np.ndarray) -> np.ndarray:
    """ "C" + 17 base62 digits from two splitmix64 rounds of (number ^ seed hash)."""
    n = numbers.shape[0]
    out = np.empty(n * UID_LEN, np.uint8)
    salts = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD1B54A32D192ED03))
    for i in range(n):
        x = np.uint64(numbers[i]) ^ h0
        o = i * UID_LEN
        out[o] = 67  # "C"
        pos = 1
        for r in range(2):
            z = x + salts[r]
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            for _ in range(9 if r == 0 else 8):
                out[o + pos] = b62[np.int64(z % np.uint64(62))]
                z //= np.uint64(62)
                pos += 1
    return out


def uid_array(seed: bytes, numbers: np.ndarray) -> pa.Array:
    """Zeek-style uids for connection numbers, deterministic for a capture's seed."""
    n = numbers.shape[0]
    # Contiguous always: a strided column (conn's own numbers) and a gathered one (tunnel
    # parents) would be two signatures, two cache loads per process.
    data = _uid_bytes(uid_seed(seed), np.ascontiguousarray(numbers, np.int64), _B62)
    offsets = np.arange(0, (n + 1) * UID_LEN, UID_LEN, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


@nb.njit(cache=True, inline="always")
def _hextet(out: np.ndarray, p: int, v: int, hx: np.ndarray) -> int:
    started = False
    for sh in (12, 8, 4, 0):
        d = (v >> sh) & 0xF
        if d or started or sh == 0:
            out[p] = hx[d]
            p += 1
            started = True
    return p


@nb.njit(cache=True)
def _addr_bytes(
    hi: np.ndarray, lo: np.ndarray, hx: np.ndarray, dec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dotted quads for IPv4-mapped values, RFC 5952 text (as Python prints it) for the rest."""
    n = hi.shape[0]
    out = np.empty(n * 39 + 2, np.uint8)  # +2: an octet's three-byte copy may run past the end
    offsets = np.empty(n + 1, np.int32)
    groups = np.empty(8, np.int64)
    p = 0
    for i in range(n):
        offsets[i] = p
        h = np.uint64(hi[i])
        lw = np.uint64(lo[i])
        if h == 0 and (lw >> np.uint64(32)) == np.uint64(0xFFFF):
            for k in range(4):
                b = np.int64((lw >> np.uint64(24 - 8 * k)) & np.uint64(0xFF))
                # Three bytes copied whatever the octet's length: the next write overlaps.
                out[p] = dec[b, 0]
                out[p + 1] = dec[b, 1]
                out[p + 2] = dec[b, 2]
                p += dec[b, 3]
                if k < 3:
                    out[p] = 46  # "."
                    p += 1
            continue
        for k in range(4):
            groups[k] = np.int64((h >> np.uint64(48 - 16 * k)) & np.uint64(0xFFFF))
            groups[4 + k] = np.int64((lw >> np.uint64(48 - 16 * k)) & np.uint64(0xFFFF))
        # The first longest run of zero groups, if longer than one, becomes "::".
        best_s, best_n, run_s, run_n = -1, 0, -1, 0
        for k in range(8):
            if groups[k] == 0:
                if run_s < 0:
                    run_s = k
                run_n += 1
                if run_n > best_n:
                    best_s, best_n = run_s, run_n
            else:
                run_s, run_n = -1, 0
        if best_n < 2:
            best_s = -1
        k = 0
        first = True
        while k < 8:
            if k == best_s:
                out[p] = 58
                out[p + 1] = 58
                p += 2
                k += best_n
                first = True  # the next group follows "::" directly
                continue
            if not first:
                out[p] = 58  # ":"
                p += 1
            p = _hextet(out, p, groups[k], hx)
            first = False
            k += 1
    offsets[n] = p
    return out, offsets


def addr_array(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Addresses as Zeek prints them (IPv4-mapped values as dotted quads)."""
    data, offsets = _addr_bytes(np.asarray(hi, np.int64), np.asarray(lo, np.int64), _HEX, _DEC)
    # The data buffer is sized for the longest text; Arrow reads only up to the last offset.
    return _strings(hi.shape[0], offsets, data)


def network_table(nets: tuple[str, ...]) -> np.ndarray:
    """Networks as rows of (base hi, base lo, mask hi, mask lo), IPv4 as IPv4-mapped ranges."""
    out = np.zeros((len(nets), 4), np.uint64)
    low = (1 << 64) - 1
    for k, text in enumerate(nets):
        net = ipaddress.ip_network(text, strict=False)
        if net.version == 4:
            base, plen = (0xFFFF << 32) | int(net.network_address), 96 + net.prefixlen
        else:
            base, plen = int(net.network_address), net.prefixlen
        mask = ((1 << plen) - 1) << (128 - plen)
        base &= mask
        out[k] = (base >> 64, base & low, mask >> 64, mask & low)
    return out


_V4_HI_MASK = np.uint64(0xFFFFFFFF00000000)
_V4_PREFIX = np.uint64(0xFFFF) << np.uint64(32)
_blocks: dict[bytes, np.ndarray] = {}


def _v4_blocks(nets: np.ndarray) -> np.ndarray:
    """For each IPv4 /16: 0 if no network holds any of its addresses, 1 if one holds all of them,
    2 if the addresses must be tested one by one.

    A private-space table has some forty networks and almost every address is in none of them:
    testing each address against all of them cost more than formatting it, while one look-up in
    a 64 KiB table settles nearly every IPv4 address.
    """
    key = nets.tobytes()
    got = _blocks.get(key)
    if got is not None:
        return got
    block = _V4_PREFIX | (np.arange(65536, dtype=np.uint64) << np.uint64(16))
    low16 = np.uint64(0xFFFF)
    some = np.zeros(65536, np.bool_)
    full = np.zeros(65536, np.bool_)
    for base_hi, base_lo, _mask_hi, mask_lo in nets:
        if base_hi != 0:  # (the base is masked: a nonzero high half excludes IPv4-mapped space)
            continue
        above = mask_lo & ~low16  # the mask's bits that name a /16
        hits = (block & above) == (base_lo & above)
        some |= hits
        if (mask_lo & low16) == 0:
            full |= hits
    got = np.where(full, 1, np.where(some, 2, 0)).astype(np.uint8)
    _blocks[key] = got
    return got


@nb.njit(cache=True)
def _in_nets(hi: np.ndarray, lo: np.ndarray, nets: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    n = hi.shape[0]
    out = np.zeros(n, np.bool_)
    for i in range(n):
        h = np.uint64(hi[i])
        lw = np.uint64(lo[i])
        if h == 0 and (lw & _V4_HI_MASK) == _V4_PREFIX:
            b = blocks[np.int64((lw >> np.uint64(16)) & np.uint64(0xFFFF))]
            if b != 2:
                out[i] = b == 1
                continue
        for k in range(nets.shape[0]):
            if (h & nets[k, 2]) == nets[k, 0] and (lw & nets[k, 3]) == nets[k, 1]:
                out[i] = True
                break
    return out


def in_table(hi: np.ndarray, lo: np.ndarray, nets: np.ndarray) -> np.ndarray:
    """Membership of each address in any network of ``network_table``."""
    return _in_nets(hi, lo, nets, _v4_blocks(nets))


@nb.njit(cache=True)
def _states(
    S: np.ndarray, size: np.ndarray, hist: np.ndarray, hist_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conn_state codes, and the history column's bytes and offsets (empty: no history)."""
    n = S.shape[0]
    state = np.empty(n, np.int8)
    offsets = np.empty(n + 1, np.int32)
    total = 0
    for i in range(n):
        total += hist_len[i]
    data = np.empty(max(total, 1), np.uint8)
    p = 0
    for i in range(n):
        offsets[i] = p
        hl = hist_len[i]
        for k in range(hl):
            data[p + k] = hist[i, k]
        p += hl
        kind = S[i, T.C_KIND]
        o = S[i, T.C_OSTATE]
        r = S[i, T.C_RSTATE]
        if kind == T.K_TCP:
            o_in = o == T.INACTIVE or o == T.PARTIAL
            r_in = r == T.INACTIVE or r == T.PARTIAL
            if r == T.RESET:
                unanswered = o == T.SYN_SENT or o == T.SYN_ACK_SENT
                if unanswered or (o == T.RESET and size[i, 0] == 0 and size[i, 1] == 0):
                    st = REJ
                elif o_in:
                    st = RSTRH
                else:
                    st = RSTR
            elif o == T.RESET:
                if r_in:
                    # History "^?S", then no H/A/F/G/I/Q before an "R": a SYN answered by nothing
                    # but the originator's own reset.
                    st = OTH
                    k = 1 if hl > 0 and hist[i, 0] == 94 else 0
                    if k < hl and hist[i, k] == 83:
                        for j in range(k + 1, hl):
                            c = hist[i, j]
                            if c == 82:
                                st = RSTOS0
                                break
                            if c == 72 or c == 65 or c == 70 or c == 71 or c == 73 or c == 81:
                                break
                else:
                    st = RSTO
            elif r == T.CLOSED and o == T.CLOSED:
                st = SF
            elif o == T.CLOSED:
                st = SH if r_in else S2
            elif r == T.CLOSED:
                st = SHR if o_in else S3
            elif o == T.SYN_SENT and r == T.INACTIVE:
                st = S0
            elif o == T.ESTABLISHED and r == T.ESTABLISHED:
                st = S1
            else:
                st = OTH
        elif kind == T.K_UDP:
            o_act = S[i, T.C_OSIZE] >= 0
            r_act = S[i, T.C_RSIZE] >= 0
            st = (SF if r_act else S0) if o_act else (SHR if r_act else OTH)
        else:
            st = OTH
        state[i] = st
    offsets[n] = p
    return state, data, offsets


@nb.njit(cache=True)
def _pick(codes: np.ndarray, data: np.ndarray, offs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and bytes of a string column whose row i is name ``codes[i]`` of a small table."""
    n = codes.shape[0]
    offsets = np.empty(n + 1, np.int32)
    total = 0
    for i in range(n):
        offsets[i] = total
        c = codes[i]
        total += offs[c + 1] - offs[c]
    offsets[n] = total
    out = np.empty(max(total, 1), np.uint8)
    for i in range(n):
        c = codes[i]
        p = offsets[i]
        for k in range(offs[c], offs[c + 1]):
            out[p] = data[k]
            p += 1
    return offsets, out


def _strings(n: int, offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _names(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Row i is ``names[codes[i]]``, built straight into Arrow buffers (a dictionary array cast
    to strings cost as much as the uid column)."""
    raw = [t.encode() for t in names]
    offs = np.zeros(len(raw) + 1, np.int64)
    np.cumsum([len(b) for b in raw], out=offs[1:])
    data = np.frombuffer(b"".join(raw) or b"\0", np.uint8)
    offsets, out = _pick(np.ascontiguousarray(codes, np.int64), data, offs)  # one signature
    return _strings(codes.shape[0], offsets, out)


def _build_constant(text: str, n: int) -> pa.Array:
    raw = text.encode()
    offsets = np.arange(0, (n + 1) * len(raw), len(raw) or 1, dtype=np.int32)[: n + 1]
    if not raw:
        offsets = np.zeros(n + 1, np.int32)
    data = np.frombuffer(raw * n or b"\0", np.uint8)
    return _strings(n, offsets, data)


_last_constant: list[tuple[str, pa.Array]] = []


def _constant(text: str, n: int) -> pa.Array:
    """``n`` rows of ``text``, sliced from one array kept for the capture being ingested: every
    batch writing its own copy of the capture's path cost as much as a numeric column."""
    if _last_constant and _last_constant[0][0] == text and len(_last_constant[0][1]) >= n:
        return _last_constant[0][1].slice(0, n)
    have = len(_last_constant[0][1]) if _last_constant and _last_constant[0][0] == text else 0
    got = _build_constant(text, max(n, 2 * have, 1024))
    _last_constant[:] = [(text, got)]
    return got.slice(0, n)


def _nullable(values: np.ndarray, validity: pa.Buffer, type_: pa.DataType) -> pa.Array:
    """A column over ``values`` (no copy) whose nulls are the zero bits of ``validity``."""
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(type_, values.shape[0], [validity, data])


# State columns that become conn.log's unsigned 64-bit columns as they are.
_U64_NAMES = ("missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes")
_U64_NAMES += ("first_record", "last_record")
_U64_COLS = np.array(
    [T.C_MISSED, T.C_OPKTS, T.C_OIPB, T.C_RPKTS, T.C_RIPB, T.C_FIRST_ROW_FILE, T.C_LAST_ROW_FILE],
    np.int64,
)


@nb.njit(cache=True)
def _unpack(
    S: np.ndarray, size: np.ndarray, u64_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The numeric columns in one pass over the ended rows (a NumPy cast per column read the
    rows once per column): ts (us), duration (s), has a duration, ports, sizes, the u64 columns,
    ip_proto. Each is a fresh array, so the tracker may reuse its buffers."""
    n = S.shape[0]
    ts = np.empty(n, np.int64)
    dur = np.empty(n, np.float64)
    has = np.empty(n, np.bool_)
    ports = np.empty((2, n), np.uint16)
    sizes = np.empty((2, n), np.uint64)
    u64 = np.empty((u64_cols.shape[0], n), np.uint64)
    ip_proto = np.empty(n, np.uint8)
    for i in range(n):
        start = S[i, T.C_START]
        d = S[i, T.C_LAST] - start
        ts[i] = start // 1000
        dur[i] = d / 1e9
        has[i] = d > 0
        ports[0, i] = S[i, T.C_OP]
        ports[1, i] = S[i, T.C_RP]
        sizes[0, i] = size[i, 0]
        sizes[1, i] = size[i, 1]
        for k in range(u64_cols.shape[0]):
            u64[k, i] = S[i, u64_cols[k]]
        ip_proto[i] = S[i, T.C_PROTO]
    return ts, dur, has, ports, sizes, u64, ip_proto


def conn_columns(
    state: np.ndarray,
    size: np.ndarray,
    hist: np.ndarray,
    hist_len: np.ndarray,
    seed: bytes,
    nets: np.ndarray,
    source: str,
) -> dict[str, pa.Array]:
    """Every conn.log column but ``service`` and ``tunnel_parents``, lake names and types."""
    S = state
    n = S.shape[0]
    ts, dur, has_dur, ports, sizes, u64, ip_proto = _unpack(S, size, _U64_COLS)
    codes, hdata, hoffsets = _states(S, size, hist, hist_len)
    history = pa.StringArray.from_buffers(
        n,
        pa.py_buffer(hoffsets),
        pa.py_buffer(hdata),
        pa.py_buffer(np.packbits(hist_len > 0, bitorder="little")),
    )
    has_bits = pa.py_buffer(np.packbits(has_dur, bitorder="little"))
    plain = dict(zip(_U64_NAMES, (pa.array(u64[k]) for k in range(len(_U64_NAMES))), strict=True))
    return {
        "ts": pa.array(ts, pa.timestamp("us", "UTC")),
        "uid": uid_array(seed, S[:, T.C_NO]),
        "orig_h": addr_array(S[:, T.C_OHI], S[:, T.C_OLO]),
        "orig_p": pa.array(ports[0]),
        "resp_h": addr_array(S[:, T.C_RHI], S[:, T.C_RLO]),
        "resp_p": pa.array(ports[1]),
        "proto": _names(S[:, T.C_KIND], PROTO_NAMES),
        "duration": _nullable(dur, has_bits, pa.float64()),
        "orig_bytes": _nullable(sizes[0], has_bits, pa.uint64()),
        "resp_bytes": _nullable(sizes[1], has_bits, pa.uint64()),
        "conn_state": _names(codes, STATE_NAMES),
        "local_orig": pa.array(in_table(S[:, T.C_OHI], S[:, T.C_OLO], nets)),
        "local_resp": pa.array(in_table(S[:, T.C_RHI], S[:, T.C_RLO], nets)),
        "missed_bytes": plain["missed_bytes"],
        "history": history,
        "orig_pkts": plain["orig_pkts"],
        "orig_ip_bytes": plain["orig_ip_bytes"],
        "resp_pkts": plain["resp_pkts"],
        "resp_ip_bytes": plain["resp_ip_bytes"],
        "ip_proto": pa.array(ip_proto),
        "source": _constant(source, n),
        "first_record": plain["first_record"],
        "last_record": plain["last_record"],
    }


def tunnel_parents(seed: bytes, parents: np.ndarray) -> pa.Array:
    """``tunnel_parents``: a one-element list with the carrying connection's uid, else null."""
    has = parents >= 0
    n = parents.shape[0]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(has, out=offsets[1:])
    values = uid_array(seed, parents[has])
    validity = pa.py_buffer(np.packbits(has, bitorder="little"))
    return pa.Array.from_buffers(
        pa.list_(pa.string()), n, [validity, pa.py_buffer(offsets)], children=[values]
    )


# Helpers and constants of tracker compile into these kernels: a change there must
# recompile them too (Numba's cache sees only this file).
depends_on(__name__, "mamori.flows.tracker")
