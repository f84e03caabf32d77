"""Connection tracking with Zeek's conn.log semantics, as one compiled pass over decoded packets.

A TCP state machine is inherently sequential per connection, so this is a small Numba kernel over the
decoder's columns rather than Python per packet. It follows the rules of Zeek's TCP, UDP and ICMP
session analysers: which side is the originator (first packet, flipped by ``likely_server_ports`` or
a SYN/SYN-ACK reversal), endpoint states and the ``conn_state`` they imply, ``history`` letters
(once per direction, repeats for new SYN/FIN/RST sequence numbers, scaled repeats for
retransmissions, zero windows and gaps), payload sizes from sequence numbers, and the timers that end
a connection (attempt, close, expire, inactivity) so the same 5-tuple later starts a new one.

Connections live in fixed-width state arrays indexed by slot; an open-addressing index
(``keyindex``) maps the canonical 5-tuple to its slot. Ended connections are copied to an output buffer, so memory is bounded by the
connections alive at once, not by the capture's length.

Speed on captures of scans and floods (about one connection per packet) comes from memory and
call overhead, not arithmetic: a slot's state, key and history share one cache-line-aligned row;
the kernels prefetch the index entries and rows of the packets and due slots a few ahead; and the
helpers a packet passes through are inlined (``inline="always"``) and the kernels compile
without Numba's reference counting (``_NRT``): each call of a compiled function that takes arrays,
and each array an inlined helper aliases, paid an atomic reference count increment and decrement,
which profiled (perf) at almost half of tracking. ``_tcp_packet`` and ``_flip`` stay calls: one
per TCP packet, or rare, and inlining them too only multiplied the compile time.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from mamori.flows.keyindex import (
    find_tagged,
    key_hash,
    put,
    remove_at,
    remove_slot,
    slot_at,
    tag_of,
)
from mamori.jitcache import depends_on
from mamori.prefetch import prefetch

# Endpoint states, numbered as Zeek numbers them.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)

# Transport kinds (column KIND).
K_TCP, K_UDP, K_ICMP, K_OTHER = 0, 1, 2, 3

# TCP flag bits.
F_FIN, F_SYN, F_RST, F_PSH, F_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# History mask bits (shifted by 16 for the responder).
H_SYN, H_FIN, H_RST, H_FINRST, H_DATA, H_ACK, H_MULTI = 1, 2, 4, 8, 16, 32, 64

NS = 1_000_000_000
HIST_MAX = 48
DNS_SESSION_TIMEOUT = 10 * NS

# --- per-connection integer state (columns of S) ---
C_NO = 0  # connection number: opening record * NO_PER_RECORD + tunnel depth (uid seed)
C_OHI, C_OLO, C_RHI, C_RLO, C_OP, C_RP, C_PROTO, C_KIND = 1, 2, 3, 4, 5, 6, 7, 8
C_START, C_LAST = 9, 10
C_OSTATE, C_RSTATE, C_OPREV, C_RPREV = 11, 12, 13, 14
C_OPKTS, C_RPKTS, C_OIPB, C_RIPB = 15, 16, 17, 18
C_OSIZE, C_RSIZE = 19, 20  # UDP/ICMP payload totals, -1 while the side is silent
C_HSEEN = 21
C_FLAGS = 22
C_ATTEMPT, C_DELETE, C_EXPIRE, C_INACT_NEXT, C_INACT_TO = 23, 24, 25, 26, 27
C_MISSED = 28
NO_PER_RECORD = 8  # > the decoder's MAX_DEPTH: one number per (record, tunnel layer)
C_PARENT = 29  # connection number of the tunnel that carried it, -1 if none
C_FIRST_ROW_FILE = 30  # batch-independent: record number of the first packet
C_LAST_ROW_FILE = 31
C_ONEWAY = 32
C_EP = 33  # first endpoint column; endpoint e uses C_EP + e * EP_W
EP_W = 17
E_START, E_LAST, E_ACK, E_SWRAP, E_AWRAP, E_FINCNT, E_RSTCNT = 0, 1, 2, 3, 4, 5, 6
E_HSYN, E_HFIN, E_HRST, E_FINSEQ = 7, 8, 9, 10
E_RXMT, E_WIN0, E_GAP = 11, 12, 13  # counters; thresholds derived (powers of ten)
E_NEXT = 14  # reassembly: relative seq up to which data was delivered or declared missing
E_ALO = 15  # reassembly: data buffered above a hole spans [E_ALO, E_AHI) (E_AHI == 0: none)
E_AHI = 16
N_COLS = C_EP + 2 * EP_W  # the state columns a new connection starts from zero
# A slot's key, history length and history letters live in the same row as its state (``K``,
# ``HL`` and ``H`` are views of ``S``): a capture of scans and floods opens and ends a connection
# per packet, and each separate array was one more cache line missed per connection.
C_KEY = N_COLS  # five columns: the canonical key (``keyindex``)
C_HL = C_KEY + 5  # history length
C_HIST = C_HL + 1  # HIST_MAX bytes of history letters
ROW_W = 80  # columns per row: 640 bytes, ten whole cache lines
if (C_HIST + HIST_MAX // 8) > ROW_W:  # pragma: no cover - a layout error
    raise ImportError("tracker row layout overflows ROW_W")

_FLIP_PAIRS = np.array(
    [(C_OHI, C_RHI), (C_OLO, C_RLO), (C_OP, C_RP), (C_OSTATE, C_RSTATE), (C_OPREV, C_RPREV),
     (C_OPKTS, C_RPKTS), (C_OIPB, C_RIPB), (C_OSIZE, C_RSIZE)], np.int64)  # fmt: skip
_TIMER_COLS = np.array([C_ATTEMPT, C_DELETE, C_EXPIRE, C_INACT_NEXT], np.int64)
NEVER = np.iinfo(np.int64).max  # deadline of a free slot or of one with no timer pending

# Flag bits in C_FLAGS.
FL_PARTIAL, FL_SEEN_O, FL_SEEN_R, FL_OCLOSE, FL_RCLOSE, FL_FIRSTACK, FL_ACTIVE = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
)


# The kernels that run per packet allocate nothing (their scratch arrays come from the caller),
# so they compile without Numba's reference counting (njit's ``_nrt`` option off): with it, every
# array passed to or aliased in an (even inlined) helper cost an atomic increment and decrement,
# half of tracking's time.
_NRT = False

_AHEAD = 8  # slots or rows a kernel asks for ahead of the one it works on


@nb.njit(cache=True, inline="always")
def _prefetch_row(S: np.ndarray, s: int) -> None:
    """Ask for every cache line of slot ``s``'s row."""
    base = s * ROW_W
    for c in range(0, ROW_W, 8):
        prefetch(S, base + c)


@nb.njit(cache=True, inline="always")
def _seq_delta(a: int, b: int) -> int:
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


@nb.njit(cache=True, inline="always")
def _u32(x: int) -> int:
    return x & 0xFFFFFFFF


@nb.njit(cache=True, inline="always")
def _add_hist(H: np.ndarray, HL: np.ndarray, s: int, code: int) -> None:
    n = HL[s]
    if n < HIST_MAX:
        H[s, n] = code
        HL[s] = n + 1


@nb.njit(cache=True, inline="always")
def _check_hist(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, mask: int, code: int) -> bool:
    """Zeek's CheckHistory: add ``code`` the first time ``mask`` is seen; True if seen before."""
    if S[s, C_HSEEN] & mask:
        return True
    S[s, C_HSEEN] |= mask
    _add_hist(H, HL, s, code)
    return False


@nb.njit(cache=True, inline="always")
def _scaled(H: np.ndarray, HL: np.ndarray, S: np.ndarray, s: int, col: int, code: int) -> None:
    """Zeek's ScaledHistoryEntry: the letter again at the 1st, 10th, 100th, … occurrence."""
    S[s, col] += 1
    c = S[s, col]
    t = 1
    while t < c:
        t *= 10
    if t == c:
        _add_hist(H, HL, s, code)


@nb.njit(cache=True, _nrt=_NRT)
def _flip(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int) -> None:
    """Swap originator and responder (Zeek's Connection::FlipRoles), adding '^' to the history."""
    for k in range(_FLIP_PAIRS.shape[0]):
        a = _FLIP_PAIRS[k, 0]
        b = _FLIP_PAIRS[k, 1]
        t = S[s, a]
        S[s, a] = S[s, b]
        S[s, b] = t
    for k in range(EP_W):
        t = S[s, C_EP + k]
        S[s, C_EP + k] = S[s, C_EP + EP_W + k]
        S[s, C_EP + EP_W + k] = t
    f = S[s, C_FLAGS]
    seen_o = (f & FL_SEEN_O) != 0
    seen_r = (f & FL_SEEN_R) != 0
    cl_o = (f & FL_OCLOSE) != 0
    cl_r = (f & FL_RCLOSE) != 0
    f &= ~(FL_SEEN_O | FL_SEEN_R | FL_OCLOSE | FL_RCLOSE | FL_PARTIAL)
    if seen_o:
        f |= FL_SEEN_R
    if seen_r:
        f |= FL_SEEN_O
    if cl_o:
        f |= FL_RCLOSE
    if cl_r:
        f |= FL_OCLOSE
    S[s, C_FLAGS] = f
    _add_hist(H, HL, s, 94)  # '^'


@nb.njit(cache=True, inline="always")
def _st(S: np.ndarray, s: int, e: int) -> int:
    return S[s, C_OSTATE + e]


@nb.njit(cache=True, inline="always")
def _set_state(S: np.ndarray, s: int, e: int, new: int, tcp_timeout: int) -> None:
    old = S[s, C_OSTATE + e]
    if new == old:
        return
    peer = S[s, C_OSTATE + (1 - e)]
    hs_new = new == INACTIVE or new == SYN_SENT or new == SYN_ACK_SENT
    hs_old = old == INACTIVE or old == SYN_SENT or old == SYN_ACK_SENT
    hs_peer = peer == INACTIVE or peer == SYN_SENT or peer == SYN_ACK_SENT
    if not hs_new and hs_old and hs_peer and S[s, C_INACT_TO] != tcp_timeout:
        S[s, C_INACT_TO] = tcp_timeout
        S[s, C_INACT_NEXT] = S[s, C_LAST] + tcp_timeout
    S[s, C_OPREV + e] = old
    S[s, C_OSTATE + e] = new


@nb.njit(cache=True, inline="always")
def _rel_seq(S: np.ndarray, s: int, e: int, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    """Zeek's get_relative_seq: (relative sequence number, underflow)."""
    ep = C_EP + e * EP_W
    delta = _seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d2 = _seq_delta(cur, S[s, ep + E_START])
        return d2, d2 < 0
    return (wraps << 32) + cur - S[s, ep + E_START], False


@nb.njit(cache=True, inline="always")
def _size(S: np.ndarray, s: int, e: int) -> int:
    """Zeek's TCP_Endpoint::Size: bytes of sequence space used, less SYN and FIN."""
    ep = C_EP + e * EP_W
    state = S[s, C_OSTATE + e]
    prev = S[s, C_OPREV + e]
    peer = S[s, C_OSTATE + (1 - e)]
    ack64 = (S[s, ep + E_AWRAP] << 32) + S[s, ep + E_ACK]
    start = S[s, ep + E_START]
    if prev == SYN_SENT and state == RESET and peer == INACTIVE:
        if not (ack64 == start or ack64 == start + 1):
            return 0
    last64 = (S[s, ep + E_SWRAP] << 32) + S[s, ep + E_LAST]
    size = (last64 - start) if last64 > ack64 else (ack64 - start)
    if size != 0:
        size -= 1
    if S[s, ep + E_FINCNT] > 0 and size != 0:
        size -= 1
    return size


@nb.njit(cache=True, inline="always")
def _is_clean(S: np.ndarray, s: int, e: int) -> bool:
    st = S[s, C_OSTATE + e]
    return st == ESTABLISHED or (st == CLOSED and S[s, C_OPREV + e] == ESTABLISHED)


@nb.njit(cache=True, inline="always")
def _undelivered(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, e: int, upto: int) -> None:
    """Acked data never seen: Zeek's content gap ('G' history, missed_bytes) when both sides are clean.

    The reassembler keeps one range of data buffered above the first hole; that is enough for the
    gap accounting conn.log needs without a block list per connection.
    """
    ep = C_EP + e * EP_W
    nxt = S[s, ep + E_NEXT]
    if upto <= 2 and (S[s, C_FLAGS] & FL_PARTIAL):
        return
    if upto <= nxt:
        return
    alo = S[s, ep + E_ALO]
    ahi = S[s, ep + E_AHI]
    if ahi > 0 and alo < upto:
        gap = alo - nxt
        if upto > ahi:
            gap += upto - ahi
        nxt = max(upto, ahi)
        S[s, ep + E_ALO] = 0
        S[s, ep + E_AHI] = 0
    else:
        gap = upto - nxt
        nxt = upto
    if gap > 0 and _is_clean(S, s, e) and _is_clean(S, s, 1 - e):
        _scaled(H, HL, S, s, ep + E_GAP, 71 if e == 0 else 103)  # 'G' / 'g'
        S[s, C_MISSED] += gap
    S[s, ep + E_NEXT] = nxt


@nb.njit(cache=True, inline="always")
def _ack_received(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, e: int, seq: int) -> None:
    ep = C_EP + e * EP_W
    if S[s, ep + E_FINCNT] > 0 and seq >= S[s, ep + E_FINSEQ]:
        seq = S[s, ep + E_FINSEQ] - 1
    if seq <= S[s, ep + E_NEXT]:
        return
    _undelivered(S, H, HL, s, e, seq)


@nb.njit(cache=True, inline="always")
def _data_sent(S: np.ndarray, s: int, e: int, seq: int, length: int) -> None:
    """In-order delivery bookkeeping: advance over contiguous data, remember data above a hole."""
    ep = C_EP + e * EP_W
    nxt = S[s, ep + E_NEXT]
    upper = seq + length
    if upper <= nxt:
        return
    if seq <= nxt:
        nxt = upper
        if S[s, ep + E_AHI] > 0 and S[s, ep + E_ALO] <= nxt:
            nxt = max(nxt, S[s, ep + E_AHI])
            S[s, ep + E_ALO] = 0
            S[s, ep + E_AHI] = 0
        S[s, ep + E_NEXT] = nxt
    elif S[s, ep + E_AHI] == 0:
        S[s, ep + E_ALO] = seq
        S[s, ep + E_AHI] = upper
    else:
        S[s, ep + E_ALO] = min(S[s, ep + E_ALO], seq)
        S[s, ep + E_AHI] = max(S[s, ep + E_AHI], upper)


@nb.njit(cache=True, inline="always")
def _conn_closed(S: np.ndarray, s: int, e: int, close_delay: int, session_timer: int) -> None:
    """Zeek's ConnectionClosed: arm the delete or expire timer."""
    fl = FL_OCLOSE if e == 0 else FL_RCLOSE
    pfl = FL_RCLOSE if e == 0 else FL_OCLOSE
    if S[s, C_FLAGS] & fl:
        return
    S[s, C_FLAGS] |= fl
    peer_state = S[s, C_OSTATE + (1 - e)]
    complete = S[s, C_OSTATE + e] == RESET or (S[s, C_FLAGS] & pfl) != 0 or peer_state == INACTIVE
    if complete:
        S[s, C_FLAGS] &= ~FL_ACTIVE
        S[s, C_DELETE] = S[s, C_LAST] + close_delay
        S[s, C_ATTEMPT] = 0
        S[s, C_EXPIRE] = 0
    elif S[s, C_OPREV + e] != INACTIVE:
        S[s, C_EXPIRE] = S[s, C_LAST] + session_timer


@nb.njit(cache=True, inline="always")
def _timers(S: np.ndarray, s: int, now: int, linger: int, session_timer: int) -> bool:
    """Run the connection's timers up to ``now``; True if one of them ends the connection."""
    while True:
        # Earliest pending deadline.
        best = 0
        kind = -1
        for k in range(_TIMER_COLS.shape[0]):
            col = _TIMER_COLS[k]
            d = S[s, col]
            if d > 0 and d <= now and (kind < 0 or d < best):
                best = d
                kind = col
        if kind < 0:
            return False
        if kind == C_ATTEMPT:
            S[s, C_ATTEMPT] = 0
            if S[s, C_FLAGS] & FL_ACTIVE:
                o = S[s, C_OSTATE]
                if (o == SYN_SENT or o == SYN_ACK_SENT) and S[s, C_RSTATE] == INACTIVE:
                    return True
        elif kind == C_DELETE:
            return True
        elif kind == C_EXPIRE and S[s, C_KIND] == K_UDP:
            # Zeek's DNS analyser (UDP 53, 137, 5353, 5355) ends its session after
            # dns_session_timeout (10 s) without packets, checked every 10 s.
            # Zeek dispatches a timer at the first packet *after* its deadline, so its strict
            # comparison already holds at the deadline itself.
            if S[s, C_LAST] + DNS_SESSION_TIMEOUT <= best:
                return True
            S[s, C_EXPIRE] = best + DNS_SESSION_TIMEOUT
        elif kind == C_EXPIRE:
            S[s, C_EXPIRE] = 0
            if S[s, C_LAST] + linger <= best:  # dispatched just after the deadline, as above
                f = S[s, C_FLAGS]
                oc = (f & FL_OCLOSE) != 0
                rc = (f & FL_RCLOSE) != 0
                o = S[s, C_OSTATE]
                r = S[s, C_RSTATE]
                if oc or rc:
                    if (oc and rc) or o == RESET or r == RESET or o == INACTIVE or r == INACTIVE:
                        return True
                if r == INACTIVE and o == INACTIVE:
                    return True
                # Nothing will change without packets: Zeek would reschedule forever; stop here.
            else:
                S[s, C_EXPIRE] = best + session_timer
        else:
            to = S[s, C_INACT_TO]
            if S[s, C_LAST] + to <= best:
                return True
            S[s, C_INACT_NEXT] = S[s, C_LAST] + to


@nb.njit(cache=True, inline="always")
def _deadline(S: np.ndarray, s: int) -> int:
    """The earliest pending timer of slot ``s`` (NEVER if none): a sweep skips the slot before it."""
    best = NEVER
    for k in range(_TIMER_COLS.shape[0]):
        d = S[s, _TIMER_COLS[k]]
        if d > 0 and d < best:
            best = d
    return best


@nb.njit(cache=True, inline="always")
def _emit(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, E: np.ndarray, EH: np.ndarray,
          EHL: np.ndarray, ESZ: np.ndarray, n_out: int) -> int:  # fmt: skip
    """Append slot ``s`` to the output: its connection columns (those below ``C_EP``), history
    and sizes. The endpoint columns stay behind: ``ESZ`` sums up all conn.log needs of them.
    (Rows, not columns: one output stream costs less than thirty-three.)"""
    for k in range(C_EP):
        E[n_out, k] = S[s, k]
    hl = HL[s]
    for k in range(hl):
        EH[n_out, k] = H[s, k]
    EHL[n_out] = hl
    if S[s, C_KIND] == K_TCP:
        ESZ[n_out, 0] = _size(S, s, 0)
        ESZ[n_out, 1] = _size(S, s, 1)
    else:
        ESZ[n_out, 0] = max(S[s, C_OSIZE], 0)
        ESZ[n_out, 1] = max(S[s, C_RSIZE], 0)
    return n_out + 1


@nb.njit(cache=True, inline="always")
def _canon(i: int, proto: np.ndarray, sport: np.ndarray, dport: np.ndarray, pay_len: np.ndarray,
           src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray,
           dst_lo: np.ndarray) -> tuple[bool, int, int, int, bool, int, int, int, int, int]:  # fmt: skip
    """Row ``i``'s transport kind, ports (ICMP: type and the type it pairs with), whether it is
    one-way ICMP, and its canonical key: the smaller (address, port) first, unless ICMP one-way.
    False first if Zeek drops the row."""
    pr = proto[i]
    one_way = False
    if pr == 6:
        kind = K_TCP
        sp = sport[i]
        dp = dport[i]
    elif pr == 17:
        kind = K_UDP
        sp = sport[i]
        dp = dport[i]
    elif pr == 1 or pr == 58:
        kind = K_ICMP
        if pay_len[i] + 4 < 8:  # shorter than ICMP_MINLEN: Zeek drops it
            return False, kind, 0, 0, False, 0, 0, 0, 0, 0
        t = sport[i]
        sp = t
        if pr == 1:
            if t == 8:
                dp = 0
            elif t == 0:
                dp = 8
            elif t == 13:
                dp = 14
            elif t == 14:
                dp = 13
            elif t == 15:
                dp = 16
            elif t == 16:
                dp = 15
            elif t == 10:
                dp = 9
            elif t == 9:
                dp = 10
            elif t == 17:
                dp = 18
            elif t == 18:
                dp = 17
            else:
                dp = dport[i]
                one_way = True
        else:
            if t == 128:
                dp = 129
            elif t == 129:
                dp = 128
            elif t == 133:
                dp = 134
            elif t == 134:
                dp = 133
            elif t == 135:
                dp = 136
            elif t == 136:
                dp = 135
            elif t == 130:
                dp = 131
            elif t == 131:
                dp = 130
            elif t == 139:
                dp = 140
            elif t == 140:
                dp = 139
            elif t == 144:
                dp = 145
            elif t == 145:
                dp = 144
            elif t == 146:
                dp = 147
            elif t == 147:
                dp = 146
            else:
                dp = dport[i]
                one_way = True
    else:
        kind = K_OTHER
        sp = 0
        dp = 0
    a_hi = np.int64(src_hi[i])
    a_lo = np.int64(src_lo[i])
    b_hi = np.int64(dst_hi[i])
    b_lo = np.int64(dst_lo[i])
    ow = kind == K_ICMP and one_way
    swap = False
    if not ow:
        ua_hi = src_hi[i]
        ua_lo = src_lo[i]
        ub_hi = dst_hi[i]
        ub_lo = dst_lo[i]
        if ua_hi > ub_hi or (ua_hi == ub_hi and (ua_lo > ub_lo or (ua_lo == ub_lo and sp > dp))):
            swap = True
    if swap:
        k0, k1, k2, k3 = b_hi, b_lo, a_hi, a_lo
        k4 = (dp << 40) | (sp << 24) | (pr << 8) | (2 if ow else 0)
    else:
        k0, k1, k2, k3 = a_hi, a_lo, b_hi, b_lo
        k4 = (sp << 40) | (dp << 24) | (pr << 8) | (2 if ow else 0)
    k4 = np.int64(k4)
    return True, kind, np.int64(sp), np.int64(dp), ow, k0, k1, k2, k3, k4


@nb.njit(cache=True, _nrt=_NRT)
def track(
    # decoded packet columns
    ts_ns: np.ndarray, rec_no: np.ndarray, status: np.ndarray, tunnel: np.ndarray,
    parent: np.ndarray, proto: np.ndarray,
    src_hi: np.ndarray, src_lo: np.ndarray, dst_hi: np.ndarray, dst_lo: np.ndarray,
    ip_len: np.ndarray, sport: np.ndarray, dport: np.ndarray, flags: np.ndarray,
    seq: np.ndarray, ack: np.ndarray, win: np.ndarray, pay_len: np.ndarray, pay_cap: np.ndarray,
    # per-row outputs
    row_conn: np.ndarray, row_orig: np.ndarray,
    # connection state
    idx: np.ndarray, S: np.ndarray, H: np.ndarray, HL: np.ndarray, K: np.ndarray,
    NX: np.ndarray, free: np.ndarray, n_free: int, next_no: int,
    # ended connections
    E: np.ndarray, EH: np.ndarray, EHL: np.ndarray, ESZ: np.ndarray,
    # settings (nanoseconds) and the server-port table
    server_ports: np.ndarray, tcp_to: int, udp_to: int, icmp_to: int, other_to: int,
    start_row: int, out_start: int,
    # scratch: a row's key tag (at least as many as the rows)
    tags: np.ndarray,
) -> tuple[int, int, int, int]:  # fmt: skip
    """Process rows from ``start_row``; returns (next row, free slots, next conn number, rows of
    the output buffer in use). Ended connections are appended after ``out_start``.

    Stops early when no slot is free or the output buffer is full; the caller grows and resumes.
    """
    attempt = 5 * NS
    close_delay = 5 * NS
    linger = 5 * NS
    session_timer = 6 * NS
    n_out = out_start
    n = ts_ns.shape[0]
    cap_out = E.shape[0]
    # Each row's key tag first (-1: no connection), so the loop can ask for the index entry and
    # the state row of the packets a few rows ahead while it works on this one.
    mask = idx.shape[0] - 1
    for r in range(start_row, n):
        tags[r] = -1
        if status[r] != 0 or tunnel[r] == 1 or tunnel[r] == 2:
            continue
        ok, _, _, _, _, k0, k1, k2, k3, k4 = _canon(
            r, proto, sport, dport, pay_len, src_hi, src_lo, dst_hi, dst_lo
        )
        if ok:
            tags[r] = tag_of(key_hash(k0, k1, k2, k3, k4))
    i = start_row
    while i < n:
        ahead = i + _AHEAD
        if ahead < n and tags[ahead] >= 0:
            prefetch(idx, tags[ahead] & mask)
        ahead = i + _AHEAD // 2
        if ahead < n and tags[ahead] >= 0:
            v = idx[tags[ahead] & mask]
            if v != -1 and (v >> 32) & 0xFFFFFFFF == tags[ahead]:
                _prefetch_row(S, v & 0xFFFFFFFF)
        row_conn[i] = -1
        row_orig[i] = 0
        if status[i] != 0 or tunnel[i] == 1 or tunnel[i] == 2:
            i += 1
            continue
        if n_out + 2 > cap_out or n_free == 0:
            break
        now = ts_ns[i]
        ok, kind, sp, dp, ow, k0, k1, k2, k3, k4 = _canon(
            i, proto, sport, dport, pay_len, src_hi, src_lo, dst_hi, dst_lo
        )
        if not ok:
            i += 1
            continue
        pr = proto[i]
        a_hi = np.int64(src_hi[i])
        a_lo = np.int64(src_lo[i])
        b_hi = np.int64(dst_hi[i])
        b_lo = np.int64(dst_lo[i])

        tag = tags[i]
        pos = find_tagged(idx, K, tag, k0, k1, k2, k3, k4)
        s = slot_at(idx, pos) if pos >= 0 else np.int64(-1)
        if s >= 0:
            # NX[s] is the slot's earliest deadline: most packets have none due.
            if NX[s] <= now and _timers(S, s, now, linger, session_timer):
                n_out = _emit(S, H, HL, s, E, EH, EHL, ESZ, n_out)
                remove_at(idx, K, pos)
                NX[s] = NEVER
                free[n_free] = s
                n_free += 1
                s = -1
        if s >= 0 and kind == K_TCP and (flags[i] & F_SYN):
            # Zeek's IsReuse: a new SYN (new ISN, or after a close) starts a new connection.
            reuse = True
            fl = flags[i]
            conn_orig = 0
            if fl & F_ACK:
                if S[s, C_OSTATE] != INACTIVE:
                    reuse = False
                conn_orig = 1
            if reuse and not (S[s, C_FLAGS] & (FL_OCLOSE | FL_RCLOSE)):
                bs = seq[i]
                if bs == S[s, C_EP + conn_orig * EP_W + E_START] or (
                    (not (fl & F_ACK))
                    and S[s, C_OSTATE + conn_orig] == SYN_ACK_SENT
                    and S[s, C_RSTATE] == INACTIVE
                    and bs == S[s, C_EP + EP_W + E_START]
                ):
                    reuse = False
            if reuse:
                n_out = _emit(S, H, HL, s, E, EH, EHL, ESZ, n_out)
                remove_at(idx, K, pos)
                NX[s] = NEVER
                free[n_free] = s
                n_free += 1
                s = -1
        if s < 0:
            n_free -= 1
            s = free[n_free]
            if n_free > _AHEAD:
                _prefetch_row(S, free[n_free - _AHEAD])
            for k in range(N_COLS):
                S[s, k] = 0
            HL[s] = 0
            K[s, 0] = k0
            K[s, 1] = k1
            K[s, 2] = k2
            K[s, 3] = k3
            K[s, 4] = k4
            # After a removal the free position may have moved: probe again.
            if pos >= 0:
                pos = find_tagged(idx, K, tag, k0, k1, k2, k3, k4)
            put(idx, -1 - pos, tag, s)
            # The number (and so the uid) comes from the packet that opened the connection and
            # its tunnel depth, not from a counter: the same capture names its connections alike
            # however its flows are split across workers.
            depth = 0
            up = parent[i]
            while up >= 0:
                depth += 1
                up = parent[up]
            S[s, C_NO] = rec_no[i] * NO_PER_RECORD + depth
            next_no += 1
            S[s, C_OHI] = a_hi
            S[s, C_OLO] = a_lo
            S[s, C_RHI] = b_hi
            S[s, C_RLO] = b_lo
            S[s, C_OP] = sp
            S[s, C_RP] = dp
            S[s, C_PROTO] = pr
            S[s, C_KIND] = kind
            S[s, C_START] = now
            S[s, C_LAST] = now
            S[s, C_OSIZE] = -1
            S[s, C_RSIZE] = -1
            S[s, C_FLAGS] = FL_ACTIVE
            S[s, C_ONEWAY] = 1 if ow else 0
            S[s, C_FIRST_ROW_FILE] = rec_no[i]
            S[s, C_PARENT] = row_conn[parent[i]] if parent[i] >= 0 else -1
            for e in range(2):
                S[s, C_EP + e * EP_W + E_NEXT] = 1
            if kind == K_TCP:
                to = udp_to  # Zeek starts TCP sessions on the UDP timeout until established
            elif kind == K_UDP:
                to = udp_to
            elif kind == K_ICMP:
                to = icmp_to
            else:
                to = other_to
            S[s, C_INACT_TO] = to
            S[s, C_INACT_NEXT] = now + to
            # Role flip for a connection first seen from its server side.
            flip = False
            if kind == K_TCP:
                fl = flags[i]
                if (not (fl & F_SYN)) or (fl & F_ACK):
                    if server_ports[0, sp]:
                        if server_ports[0, dp]:
                            flip = (not (fl & F_SYN)) and sp < dp
                        else:
                            flip = True
            elif kind == K_UDP:
                flip = server_ports[1, sp] and not server_ports[1, dp]
            if flip:
                is_bcast = b_hi == 0 and b_lo == 0xFFFFFFFFFFFF
                if not is_bcast:
                    _flip(S, H, HL, s)
            if kind == K_UDP:
                rp = S[s, C_RP]
                if rp == 53 or rp == 137 or rp == 5353 or rp == 5355:
                    S[s, C_EXPIRE] = now + DNS_SESSION_TIMEOUT

        S[s, C_LAST_ROW_FILE] = rec_no[i]
        is_orig = S[s, C_OHI] == a_hi and S[s, C_OLO] == a_lo and S[s, C_OP] == sp
        if kind == K_ICMP and S[s, C_OHI] == S[s, C_RHI] and S[s, C_OLO] == S[s, C_RLO]:
            is_orig = S[s, C_OP] == sp
        e = 0 if is_orig else 1
        # Packet and IP byte counts (Zeek's ConnSize analyser sees every packet).
        S[s, C_OPKTS + e] += 1
        S[s, C_OIPB + e] += ip_len[i]

        if kind == K_UDP:
            S[s, C_LAST] = now
            _check_hist(S, H, HL, s, (1 << 20) if e == 0 else (1 << 21), 68 if e == 0 else 100)
            ulen = pay_len[i]
            if S[s, C_OSIZE + e] < 0:
                S[s, C_OSIZE + e] = ulen
            else:
                S[s, C_OSIZE + e] += ulen
        elif kind == K_ICMP:
            S[s, C_LAST] = now
            ln = pay_len[i] - 4
            if S[s, C_OSIZE + e] < 0:
                S[s, C_OSIZE + e] = ln
            else:
                S[s, C_OSIZE + e] += ln
        elif kind == K_OTHER:
            S[s, C_LAST] = now
        else:
            e = _tcp_packet(S, H, HL, s, e, now, flags[i], seq[i], ack[i], win[i], pay_len[i],
                            pay_cap[i], tcp_to, attempt, close_delay, session_timer)  # fmt: skip
            is_orig = e == 0
        NX[s] = _deadline(S, s)
        row_conn[i] = S[s, C_NO]
        row_orig[i] = 1 if is_orig else 0
        i += 1
    return i, n_free, next_no, n_out


@nb.njit(cache=True, _nrt=_NRT)
def _tcp_packet(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, e: int, now: int, fl: int,
                base_seq: int, ack_seq: int, window: int, length: int, caplen: int, tcp_to: int,
                attempt: int, close_delay: int, session_timer: int) -> int:  # fmt: skip
    """One TCP segment through Zeek's TCPSessionAdapter::Process; returns the (possibly flipped) side."""
    syn = (fl & F_SYN) != 0
    fin = (fl & F_FIN) != 0
    rst = (fl & F_RST) != 0
    ackf = (fl & F_ACK) != 0

    # SetPartialStatus
    f = S[s, C_FLAGS]
    if e == 0:
        if not (f & FL_SEEN_O):
            if (not syn) or ackf:
                S[s, C_FLAGS] |= FL_PARTIAL
            else:
                S[s, C_FLAGS] &= ~FL_PARTIAL
    else:
        if not (f & FL_SEEN_R) and not (f & FL_PARTIAL):
            if not syn:
                S[s, C_FLAGS] |= FL_PARTIAL

    seg_len = length + (1 if syn else 0) + (1 if fin else 0)
    if rst:
        seg_len -= length
    past = _u32(base_seq + seg_len)

    # init_endpoint
    ep = C_EP + e * EP_W
    st = S[s, C_OSTATE + e]
    if st == INACTIVE:
        if syn:
            S[s, ep + E_ACK] = base_seq
            S[s, ep + E_START] = base_seq
            S[s, ep + E_LAST] = past
        else:
            S[s, ep + E_ACK] = _u32(base_seq - 1)
            S[s, ep + E_START] = _u32(base_seq - 1)
            S[s, ep + E_LAST] = base_seq
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if syn and base_seq != S[s, ep + E_START]:
            S[s, ep + E_START] = base_seq
            S[s, ep + E_ACK] = base_seq
            S[s, ep + E_LAST] = past
    elif st == ESTABLISHED or st == PARTIAL:
        if syn:
            S[s, ep + E_START] = base_seq
            S[s, ep + E_ACK] = base_seq
            S[s, ep + E_LAST] = past
    elif st == RESET:
        if syn and S[s, C_OPREV + e] == INACTIVE:
            S[s, ep + E_START] = base_seq
            S[s, ep + E_ACK] = base_seq
            S[s, ep + E_LAST] = past

    rel_seq, underflow = _rel_seq(S, s, e, base_seq, S[s, ep + E_LAST], S[s, ep + E_SWRAP])

    # update_history (CheckHistory may flip a connection whose history is just "H")
    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            e = _hist_check(S, H, HL, s, e, H_FINRST, 73)  # 'I'
        else:
            e = _hist_check(S, H, HL, s, e, H_MULTI, 81)  # 'Q'
    elif bits == 1:
        if syn:
            code = 72 if ackf else 83  # 'H' / 'S'
            seen = _hist_check_flag(S, H, HL, s, e, H_SYN, code)
            ep = C_EP + e * EP_W
            if seen and rel_seq != S[s, ep + E_HSYN]:
                _add_hist(H, HL, s, code if e == 0 else code + 32)
            S[s, ep + E_HSYN] = rel_seq
        if fin:
            seen = _hist_check_flag(S, H, HL, s, e, H_FIN, 70)  # 'F'
            ep = C_EP + e * EP_W
            if seen and rel_seq + length != S[s, ep + E_HFIN]:
                _add_hist(H, HL, s, 70 if e == 0 else 102)
            S[s, ep + E_HFIN] = rel_seq + length
        if rst:
            seen = _hist_check_flag(S, H, HL, s, e, H_RST, 82)  # 'R'
            ep = C_EP + e * EP_W
            if seen and rel_seq != S[s, ep + E_HRST]:
                _add_hist(H, HL, s, 82 if e == 0 else 114)
            S[s, ep + E_HRST] = rel_seq
    else:
        if length:
            e = _hist_check(S, H, HL, s, e, H_DATA, 68)  # 'D'
        elif ackf:
            e = _hist_check(S, H, HL, s, e, H_ACK, 65)  # 'A'
    ep = C_EP + e * EP_W
    pe = 1 - e
    pp = C_EP + pe * EP_W

    # update_window: only the zero-window history letter matters for conn.log.
    if window == 0 and not rst and S[s, C_OSTATE + pe] != CLOSED and S[s, C_OSTATE + e] != RESET:
        _scaled(H, HL, S, s, ep + E_WIN0, 87 if e == 0 else 119)  # 'W'

    if not ((S[s, C_FLAGS] & FL_OCLOSE) and (S[s, C_FLAGS] & FL_RCLOSE)):
        S[s, C_LAST] = now

    if fin:
        S[s, ep + E_FINCNT] += 1
        S[s, ep + E_FINSEQ] = rel_seq + seg_len
    if rst:
        S[s, ep + E_RSTCNT] += 1

    rel_ack = 0
    if ackf:
        if S[s, C_OSTATE + pe] == INACTIVE:
            rel_ack = 1
            a1 = _u32(ack_seq - 1)
            S[s, pp + E_START] = a1
            S[s, pp + E_ACK] = a1
            S[s, pp + E_LAST] = a1
        else:
            rel_ack, aunder = _rel_seq(S, s, pe, ack_seq, S[s, pp + E_ACK], S[s, pp + E_AWRAP])
            if aunder:
                rel_ack = 0
            elif not rst:
                dack = _seq_delta(ack_seq, S[s, pp + E_ACK])
                if ack_seq == 0 and dack > 0x10000000:
                    pass
                elif dack > 0:
                    if ack_seq < S[s, pp + E_ACK]:
                        S[s, pp + E_AWRAP] += 1
                    S[s, pp + E_ACK] = ack_seq

    # update_last_seq
    dl = _seq_delta(past, S[s, ep + E_LAST])
    big = 0x10000000
    if (syn or rst) and (dl > big or dl < -big):
        pass
    elif fin and S[s, ep + E_LAST] == _u32(S[s, ep + E_START] + 1):
        if past < S[s, ep + E_LAST]:
            S[s, ep + E_SWRAP] += 1
        S[s, ep + E_LAST] = past
    elif S[s, C_OSTATE + e] == RESET:
        pass
    elif dl > 0:
        if past < S[s, ep + E_LAST]:
            S[s, ep + E_SWRAP] += 1
        S[s, ep + E_LAST] = past
    elif dl <= 0 and length > 0:
        _scaled(H, HL, S, s, ep + E_RXMT, 84 if e == 0 else 116)  # 'T'

    # UpdateStateMachine
    do_close = False
    st = S[s, C_OSTATE + e]
    peer_st = S[s, C_OSTATE + pe]
    if st == INACTIVE:
        if syn:
            if e == 0:
                _set_state(S, s, e, SYN_ACK_SENT if ackf else SYN_SENT, tcp_to)
                S[s, C_ATTEMPT] = now + attempt
            else:
                if not ackf and peer_st == SYN_ACK_SENT and base_seq == S[s, ep + E_START]:
                    # SYN/SYN-ACK reversal: flip and establish.
                    S[s, C_FLAGS] &= ~FL_PARTIAL
                    _flip(S, H, HL, s)
                    e, pe = pe, e
                    ep, pp = pp, ep
                    _set_state(S, s, pe, ESTABLISHED, tcp_to)
                    S[s, C_FLAGS] |= FL_SEEN_O
                peer_st = S[s, C_OSTATE + pe]
                if peer_st == SYN_SENT:
                    _set_state(S, s, pe, ESTABLISHED, tcp_to)
                _set_state(S, s, e, ESTABLISHED, tcp_to)
        if fin:
            _set_state(S, s, e, CLOSED, tcp_to)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET, tcp_to)
            do_close = True
        if S[s, C_OSTATE + e] == INACTIVE:
            peer_st = S[s, C_OSTATE + pe]
            if e == 1 and length == 0 and S[s, C_OSTATE] == SYN_SENT:
                pass
            elif ackf and peer_st == ESTABLISHED:
                _set_state(S, s, e, ESTABLISHED, tcp_to)
                S[s, C_FLAGS] &= ~FL_PARTIAL
                S[s, C_FLAGS] |= FL_SEEN_O if e == 0 else FL_SEEN_R
            else:
                _set_state(S, s, e, PARTIAL, tcp_to)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(S, s, e, CLOSED, tcp_to)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET, tcp_to)
            S[s, C_FLAGS] &= ~FL_ACTIVE
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn and st == PARTIAL and peer_st == INACTIVE and not ackf:
            _set_state(S, s, e, SYN_SENT, tcp_to)
        if fin and not rst:
            _set_state(S, s, e, CLOSED, tcp_to)
            if S[s, C_OSTATE + pe] == RESET and S[s, C_OPREV + pe] == CLOSED:
                _set_state(S, s, pe, CLOSED, tcp_to)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET, tcp_to)
            do_close = True
            S[s, C_FLAGS] &= ~FL_ACTIVE
    elif st == CLOSED:
        if rst and S[s, C_OSTATE + pe] != CLOSED:
            _set_state(S, s, e, RESET, tcp_to)
            if not (S[s, C_FLAGS] & (FL_OCLOSE if e == 0 else FL_RCLOSE)):
                do_close = True

    if ackf:
        _ack_received(S, H, HL, s, pe, rel_ack)

    # CheckPIA_FirstPacket
    S[s, C_FLAGS] |= FL_SEEN_O if e == 0 else FL_SEEN_R

    rel_data = rel_seq + 1 if syn else rel_seq
    if length > 0 and caplen >= length and not rst and not underflow:
        # Data already acknowledged by the peer is trimmed, as Zeek's reassembler does.
        _data_sent(S, s, e, rel_data, length)

    if do_close:
        _conn_closed(S, s, e, close_delay, session_timer)
    return e


@nb.njit(cache=True, inline="always")
def _hist_check_flag(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, e: int, mask: int,
                     code: int) -> bool:  # fmt: skip
    m = mask if e == 0 else mask << 16
    c = code if e == 0 else code + 32
    return _check_hist(S, H, HL, s, m, c)


@nb.njit(cache=True, inline="always")
def _hist_check(S: np.ndarray, H: np.ndarray, HL: np.ndarray, s: int, e: int, mask: int,
                code: int) -> int:  # fmt: skip
    """CheckHistory for 'A'/'D' and friends, with Zeek's "H then ack" flip; returns the new side."""
    if (code == 65 or code == 68) and HL[s] == 1 and H[s, 0] == 72:
        _flip(S, H, HL, s)
        HL[s] = 0
        _add_hist(H, HL, s, 94)  # '^'
        _add_hist(H, HL, s, 104)  # 'h'
        S[s, C_FLAGS] |= FL_SEEN_O
        e = 1 - e
    _hist_check_flag(S, H, HL, s, e, mask, code)
    return e


@nb.njit(cache=True, _nrt=_NRT)
def sweep(idx: np.ndarray, S: np.ndarray, H: np.ndarray, HL: np.ndarray, K: np.ndarray,
          NX: np.ndarray, free: np.ndarray, n_free: int, now: int, flush_all: bool, out_start: int,
          E: np.ndarray, EH: np.ndarray, EHL: np.ndarray, ESZ: np.ndarray,
          scratch: np.ndarray) -> tuple[int, int]:  # fmt: skip
    """End every connection whose timers fire by ``now`` (or all of them); returns (free, ended).

    ``NX`` holds each slot's earliest pending deadline (``NEVER`` for a free slot), so a sweep
    reads one contiguous array and visits only the slots with a timer due: running the timers of
    every live slot each batch cost a third of tracking on captures of short flows. The due slots
    are listed first so their rows can be asked for ahead of their turn, in the same slot order.
    """
    linger = 5 * NS
    session_timer = 6 * NS
    n_out = out_start
    cap = E.shape[0]
    if flush_all:
        used = scratch  # 1: the slot holds a connection
        for s in range(S.shape[0]):
            used[s] = 1
        for k in range(n_free):
            used[free[k]] = 0
        for s in range(S.shape[0]):
            if not used[s]:
                continue
            if n_out >= cap:
                break
            n_out = _emit(S, H, HL, s, E, EH, EHL, ESZ, n_out)
            remove_slot(idx, K, s)
            NX[s] = NEVER
            free[n_free] = s
            n_free += 1
        return n_free, n_out
    # The due slots first (one read of NX), then their rows, each asked for a few slots ahead.
    n_due = 0
    due = scratch
    for s in range(S.shape[0]):
        if NX[s] <= now:
            due[n_due] = s
            n_due += 1
    mask = idx.shape[0] - 1
    for j in range(n_due):
        if j + _AHEAD < n_due:
            _prefetch_row(S, due[j + _AHEAD])
        if j + _AHEAD // 2 < n_due:
            a = due[j + _AHEAD // 2]
            h = key_hash(K[a, 0], K[a, 1], K[a, 2], K[a, 3], K[a, 4])
            prefetch(idx, tag_of(h) & mask)
        s = due[j]
        if n_out >= cap:
            break
        if _timers(S, s, now, linger, session_timer):
            n_out = _emit(S, H, HL, s, E, EH, EHL, ESZ, n_out)
            remove_slot(idx, K, s)
            NX[s] = NEVER
            free[n_free] = s
            n_free += 1
        else:
            NX[s] = _deadline(S, s)
    return n_free, n_out


# Helpers and constants of keyindex, prefetch compile into these kernels: a change there must
# recompile them too (Numba's cache sees only this file).
depends_on(__name__, "mamori.flows.keyindex", "mamori.prefetch")
