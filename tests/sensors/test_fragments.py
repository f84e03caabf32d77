"""IP fragment reassembly: each complete datagram becomes one row right after the fragment that
completed it; every other row keeps its order; tunnelled datagrams keep their parent links.

Datagrams are cut into fragments by the test (sizes and arrival order drawn by hypothesis), so the
expected row sequence is known by construction.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mamori.sensors.pcap.fragments as F
from mamori.sensors.pcap.decode import COLUMNS, FRAGMENT, PacketColumns, decode
from mamori.sensors.pcap.fragments import FragmentReassembler
from sensors import fragments_reference as R
from sensors.test_decode import A4, A6, B4, B6, batch_of
from support.pcap_writer import (
    ether,
    gre,
    ip4,
    ip6,
    ipv4,
    ipv6,
    ipv6_frag,
    ipv6_opts,
    udp,
    vlan_tag,
)

C4, C6 = ip4("203.0.113.9"), ip6("2001:db8:1::9")

LINK_ETHER = 1


def _fragments(ident: int, body: bytes, cuts: list[int], inner: bool) -> list[bytes]:
    """``body`` (a UDP datagram, or GRE carrying one) as IPv4 fragments cut at ``cuts``."""
    proto = 47 if inner else 17
    bounds = [0, *sorted({c * 8 for c in cuts if 0 < c * 8 < len(body)}), len(body)]
    out = []
    for lo, hi in pairwise(bounds):
        more = hi < len(body)
        ip = ipv4(A4, B4, proto, body[lo:hi], ident=ident, frag_off=lo, more_frags=more)
        out.append(ether(0x0800, ip))
    return out


_datagram = st.tuples(
    st.integers(8, 400),  # UDP payload length
    st.lists(st.integers(1, 60), max_size=6),  # cut points, in 8-byte units
    st.booleans(),  # inside GRE
    st.randoms(use_true_random=False),  # arrival order of the fragments
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_datagram, min_size=1, max_size=5), st.integers(0, 3))
def test_datagrams_land_after_their_last_fragment(datagrams: list, plain: int) -> None:  # type: ignore[type-arg]
    frames: list[bytes] = []
    sizes: list[int] = []
    for k, (length, cuts, inner, rnd) in enumerate(datagrams):
        payload = bytes([k]) * length
        dgram = udp(5000 + k, 53, payload)
        if inner:
            dgram = gre(0x0800, ipv4(A4, B4, 17, dgram))
        parts = _fragments(100 + k, dgram, cuts, inner)
        rnd.shuffle(parts)
        frames += parts
        frames += [ether(0x0800, ipv4(A4, B4, 17, udp(1, 2, b"x")))] * plain
        if len(parts) > 1:  # one part is a plain packet, not a fragment
            sizes.append(length)
    batch = batch_of(frames, LINK_ETHER)
    pk = decode(batch)
    before = {k: v.copy() for k, v in pk.cols.items()}
    _buf, out = FragmentReassembler().apply(batch.buf, pk)
    c = out.cols
    # Every original row is still there, in its order.
    n_old = before["rec"].shape[0]
    assert c["rec"].shape[0] >= n_old
    # Rows that came out of reassembly: not fragments, and marked by a record of a fragment.
    synthetic = []
    i = j = 0
    while i < c["rec"].shape[0]:
        if j < n_old and all(c[k][i] == before[k][j] for k in ("rec", "status", "pay_off")):
            i += 1
            j += 1
        else:
            synthetic.append(i)
            i += 1
    assert j == n_old, "an original row went missing or moved"
    # One UDP datagram per input datagram, with its full length, after its completing fragment.
    udp_rows = [r for r in synthetic if c["proto"][r] == 17 and c["status"][r] != FRAGMENT]
    assert sorted(int(c["pay_len"][r]) for r in udp_rows) == sorted(sizes)
    for r in synthetic:
        anchor = r - 1
        while anchor in synthetic:
            anchor -= 1
        assert c["status"][anchor] == FRAGMENT and c["rec"][r] == c["rec"][anchor]
        p = int(c["parent"][r])
        if p >= 0:  # an inner packet's parent is the reassembled outer row before it
            assert p in synthetic and p < r and int(c["proto"][p]) == 47


def test_pending_fragments_are_bounded_in_bytes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """First fragments of datagrams that never complete are dropped oldest first once their
    bytes pass the limit; the newest still completes."""
    import mamori.sensors.pcap.fragments as F

    monkeypatch.setattr(F, "MAX_PENDING_BYTES", 4000)
    body = udp(7, 53, bytes(1000))
    frames = [_fragments(500 + k, body, [64], False)[0] for k in range(10)]  # 512-byte heads
    frames += _fragments(509, body, [64], False)[1:]  # the last datagram's tail
    batch = batch_of(frames, LINK_ETHER)
    r = FragmentReassembler()
    _buf, out = r.apply(batch.buf, decode(batch))
    assert r.pending_bytes <= 4000 and r.dropped >= 3
    assert r.pending_bytes == sum(dg.size for dg in r.pending.values())
    done = [i for i in range(out.cols["rec"].shape[0]) if out.cols["pay_len"][i] == 1000]
    assert len(done) == 1


# --- The compiled reassembler against the Python reference (tests/sensors/fragments_reference.py)

_LIMITS = ("MAX_PENDING", "MAX_PENDING_BYTES", "MAX_DATAGRAM")


def _fragment_frame(v6: bool, src: int, ident: int, proto: int, off: int, more: bool,
                    piece: bytes, vlan: int, hop: bool, cut: int) -> bytes:  # fmt: skip
    """One fragment as an Ethernet frame (802.1Q when ``vlan``), cut to ``cut`` bytes if > 0."""
    if v6:
        ext = ipv6_frag(proto, off, more, ident) + piece
        ip = (
            ipv6(A6 if src else C6, B6, 0, ipv6_opts(44) + ext)
            if hop
            else ipv6(A6 if src else C6, B6, 44, ext)
        )
        etype = 0x86DD
    else:
        ip = ipv4(A4 if src else C4, B4, proto, piece, ident=ident, frag_off=off, more_frags=more)
        etype = 0x0800
    frame = ether(0x8100, vlan_tag(vlan, etype) + ip) if vlan else ether(etype, ip)
    return frame[:cut] if cut > 0 else frame


_piece = st.tuples(
    st.integers(0, 90),  # offset in 8-byte units (past the end sometimes)
    st.integers(0, 300),  # length
    st.integers(0, 255),  # fill byte xor: an overlap with other bytes shows who won
    st.booleans(),  # more fragments (False: a second, differing last fragment)
)

_stream_datagram = st.fixed_dictionaries(
    {
        "v6": st.booleans(),
        "src": st.integers(0, 1),
        "ident": st.integers(0, 2),  # few: keys are reused after completion or drop
        "length": st.integers(0, 500),
        "inner": st.booleans(),  # GRE carrying the UDP packet
        "cuts": st.lists(st.integers(1, 70), max_size=5),
        "missing": st.lists(st.integers(0, 6), max_size=2),  # cover pieces never sent
        "extra": st.lists(_piece, max_size=3),  # overlaps and duplicates
        "vlan": st.sampled_from([0, 0, 7]),
        "hop": st.booleans(),  # IPv6: a hop-by-hop header before the fragment header
        "snap": st.lists(st.integers(0, 6), max_size=1),  # this cover piece cut by snaplen
    }
)


def _stream(d: dict) -> list[bytes]:  # type: ignore[type-arg]
    """Frames of one datagram spec: its cover pieces (some missing or cut) and extra pieces."""
    payload = bytes((d["ident"] * 37 + i) % 251 for i in range(d["length"]))
    body = udp(4000 + d["ident"], 53, payload)
    if d["inner"]:
        body = gre(0x0800, ipv4(A4, B4, 17, body))
    proto = 47 if d["inner"] else 17
    bounds = [0, *sorted({c * 8 for c in d["cuts"] if 0 < c * 8 < len(body)}), len(body)]
    frames = []
    common = (d["v6"], d["src"], d["ident"], proto)
    for k, (lo, hi) in enumerate(pairwise(bounds)):
        if k in d["missing"]:
            continue
        cut = 14 + 60 + (hi - lo) // 2 if k in d["snap"] else 0
        frames.append(
            _fragment_frame(*common, lo, hi < len(body), body[lo:hi], d["vlan"], d["hop"], cut)
        )
    for unit, length, fill, more in d["extra"]:
        lo = unit * 8
        piece = bytes(b ^ fill for b in (body[lo : lo + length] + bytes(length))[:length])
        frames.append(_fragment_frame(*common, lo, more, piece, d["vlan"], d["hop"], 0))
    return frames


def _same(buf: np.ndarray, a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    (buf_a, pk_a), (buf_b, pk_b) = a, b
    for name in COLUMNS:
        assert pk_a.cols[name].dtype == pk_b.cols[name].dtype, name
        assert np.array_equal(pk_a.cols[name], pk_b.cols[name]), name
    assert buf_a.shape == buf_b.shape
    assert np.array_equal(buf_b[: buf.shape[0]], buf)  # the batch's bytes, where they were
    assert np.array_equal(buf_a[buf.shape[0] :], buf_b[buf.shape[0] :])  # the datagrams


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_stream_datagram, min_size=1, max_size=6),
    st.randoms(use_true_random=False),  # arrival order across datagrams
    st.lists(st.integers(0, 40), max_size=4),  # batch boundaries
    st.sampled_from(
        [
            (10_000, 32 << 20, 65_575),
            (2, 32 << 20, 65_575),
            (1, 400, 65_575),
            (3, 900, 65_575),
            (10_000, 32 << 20, 300),
        ]
    ),
    st.integers(0, 2),  # plain packets between fragments
    st.booleans(),  # columns and buffer with room to grow in place (as decode and the reader
    # return them) or without
)
def test_compiled_matches_reference(datagrams, rnd, boundaries, limits, plain, roomy) -> None:  # type: ignore[no-untyped-def]
    """Random fragment streams (IPv4 and IPv6, overlaps, duplicates, out of order, snaplen cuts,
    tunnels, VLANs, split across batches, bounds hit) give the reference's columns and bytes, and
    the same pending datagrams, bytes and drops after every batch."""
    frames = [f for d in datagrams for f in _stream(d)]
    rnd.shuffle(frames)
    other = ether(0x0800, ipv4(A4, B4, 17, udp(1, 2, b"x")))
    frames = [g for f in frames for g in [f] + [other] * plain]
    cuts = sorted({min(b, len(frames)) for b in boundaries})
    saved = [(getattr(F, n), getattr(R, n)) for n in _LIMITS]
    try:
        for name, value in zip(_LIMITS, limits, strict=True):
            setattr(F, name, value)
            setattr(R, name, value)
        new, ref = F.FragmentReassembler(), R.FragmentReassembler()
        for lo, hi in pairwise([0, *cuts, len(frames)]):
            if hi == lo:
                continue
            batch = batch_of(frames[lo:hi], LINK_ETHER)
            pk = decode(batch)
            mine = pk if roomy else PacketColumns({k: v.copy() for k, v in pk.cols.items()})
            expected = ref.apply(
                batch.buf, PacketColumns({k: v.copy() for k, v in pk.cols.items()})
            )
            buf = batch.buf
            if roomy:  # as the reader's buffer: the start of a larger array, datagrams go after
                store = np.full(buf.shape[0] + rnd.choice([0, 40, 1 << 17]), 0xEE, np.uint8)
                store[: buf.shape[0]] = buf
                buf = store[: buf.shape[0]]
            _same(batch.buf, expected, new.apply(buf, mine))
            assert list(new.pending) == list(ref.pending)
            assert [dg.size for dg in new.pending.values()] == [
                dg.size for dg in ref.pending.values()
            ]
            assert (new.pending_bytes, new.dropped) == (ref.pending_bytes, ref.dropped)
    finally:
        for name, (f, r) in zip(_LIMITS, saved, strict=True):
            setattr(F, name, f)
            setattr(R, name, r)


def test_own_datagram_dropped_by_the_byte_bound_is_gone(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An old datagram that passes the byte bound with its own last fragment is the oldest, so it
    is dropped, not completed (the shipped code raised KeyError here)."""
    monkeypatch.setattr(F, "MAX_PENDING_BYTES", 1100)
    body = udp(7, 53, bytes(1000))
    a = _fragments(1, body, [64], False)
    b = _fragments(2, body, [64], False)
    batch = batch_of([a[0], b[0], a[1]], LINK_ETHER)
    r = FragmentReassembler()
    _buf, out = r.apply(batch.buf, decode(batch))
    assert len(out) == 3 and r.dropped == 1 and len(r.pending) == 1
    assert r.pending_bytes == 512


def test_datagram_longer_than_its_length_field_is_never_completed() -> None:
    """65,568 payload bytes do not fit IPv4's 16-bit total length: the datagram stays pending
    (the shipped code raised struct.error)."""
    total = 65_528 + 40
    frames, off = [], 0
    while off < total:
        n = min(1480, total - off)
        frames.append(_fragment_frame(False, 1, 9, 17, off, off + n < total, bytes(n), 0, False, 0))
        off += n
    batch = batch_of(frames, LINK_ETHER)
    r = FragmentReassembler()
    _buf, out = r.apply(batch.buf, decode(batch))
    assert len(out) == len(frames) and len(r.pending) == 1
    assert r.pending_bytes == total
