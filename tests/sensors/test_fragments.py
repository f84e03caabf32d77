"""IP fragment reassembly: each complete datagram becomes one row right after the fragment that
completed it; every other row keeps its order; tunnelled datagrams keep their parent links.

Datagrams are cut into fragments by the test (sizes and arrival order drawn by hypothesis), so the
expected row sequence is known by construction.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.sensors.pcap.decode import FRAGMENT, decode
from mamori.sensors.pcap.fragments import FragmentReassembler
from sensors.test_decode import A4, B4, batch_of
from support.pcap_writer import ether, gre, ipv4, udp

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
