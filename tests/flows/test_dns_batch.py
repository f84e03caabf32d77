"""The column path for UDP DNS (dns_batch + dns_kernel) writes exactly the rows and service the
Python analyser writes, on generated conversations, garbled ones included; the kernel never reads
outside its messages whatever the bytes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows import dns_batch
from mamori.flows import dns_kernel as K
from mamori.flows.analyzers.dns import DnsAnalyzer
from mamori.flows.analyzers.dns_names import qclass_name, qtype_name, rcode_name
from mamori.flows.conversation import Conversation, Segment
from mamori.flows.pipeline import _to_table

LABELS = st.one_of(
    st.sampled_from([b"www", b"Example", b"COM", b"a", b"x-y", b"local", b"in-addr", b"arpa"]),
    # NetBIOS first-level encodings ("WORKGROUP", "*" then NULs, one with a \x01 byte)
    st.sampled_from(
        [
            b"FHEPFCELEHFCEPFFFACACACACACACAAA",
            b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            b"fhepfcelehfcepffacacacacacacacab",
            b"ABACFPFPENFDECFCEPFHFDEFFPFPACAB",
        ]
    ),
    st.binary(min_size=0, max_size=70),
)


def _name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([min(len(x), 255)]) + x[:255] for x in labels) + b"\x00"


@st.composite
def names(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return b"\xc0\x0c"  # the question's name
    if kind == 1:
        return bytes([0xC0, draw(st.integers(0, 80))])  # any pointer, forward ones too
    labels = draw(st.lists(LABELS if kind == 2 else LABELS.filter(lambda x: 0 < len(x) < 20)))
    return _name(labels)


@st.composite
def rdata(draw: st.DrawFn, rtype: int) -> bytes:
    if rtype == 1:
        return draw(st.sampled_from([b"\x0a\x00\x00\x01", b"\xc0\xa8\x01\xfe", b"\x01\x02"]))
    if rtype == 28:
        return draw(
            st.sampled_from(
                [
                    bytes(16),
                    b"\x00" * 10 + b"\xff\xff\x01\x02\x03\x04",
                    b"\x20\x01\x0d\xb8" + bytes(10) + b"\x00\x01",
                    bytes(12) + b"\x01\x02\x03\x04",
                    bytes(15) + b"\x01",
                    b"\xfe\x80" + bytes(6) + b"\x12\x34\x00\x00\x00\x00\xab\xcd",
                    b"\x00\x01" * 8,
                ]
            )
            | st.binary(min_size=16, max_size=16)
        )
    if rtype in (2, 5, 12):
        return draw(names())
    if rtype in (15, 65):
        return b"\x00\x0a" + draw(names()) + draw(st.binary(max_size=3))
    if rtype == 6:
        return draw(names()) + draw(names()) + draw(st.binary(min_size=18, max_size=22))
    if rtype in (16, 99):
        strings = draw(st.lists(st.binary(max_size=8) | st.just(b"v=spf1 -all"), max_size=3))
        raw = b"".join(bytes([len(x) + draw(st.sampled_from([0, 0, 0, 1]))]) + x for x in strings)
        return raw
    if rtype == 46:
        return b"\x00\x01" + bytes(16) + draw(names()) + draw(st.binary(max_size=6))
    return draw(st.binary(max_size=12))


@st.composite
def messages(draw: st.DrawFn, qr: bool | None = None) -> bytes:
    qr = draw(st.booleans()) if qr is None else qr
    opcode = draw(st.sampled_from([0, 0, 0, 0, 1, 5]))
    flags = (qr << 15) | (opcode << 11) | draw(st.integers(0, 0x7FF))
    questions = draw(
        st.lists(st.tuples(names(), st.sampled_from([1, 28, 12, 255, 32, 33])), max_size=2)
    )
    answers = []
    for _ in range(draw(st.integers(0, 4))):
        rtype = draw(st.sampled_from([1, 1, 28, 5, 12, 2, 15, 16, 99, 65, 46, 6, 13, 32, 33, 4321]))
        data = draw(rdata(rtype))
        answers.append(
            draw(names()) + struct.pack(">HHIH", rtype, 1, draw(st.integers(0, 2**32 - 1)), len(data))
            + data
        )  # fmt: skip
    counts = [len(questions), len(answers), draw(st.integers(0, 1)), draw(st.integers(0, 1))]
    if draw(st.integers(0, 9)) == 0:
        counts = [draw(st.integers(0, 30)) for _ in range(4)]
    tid = draw(st.sampled_from([1, 2, 0xBEEF]))
    msg = struct.pack(">6H", tid, flags, *counts)
    msg += b"".join(n + struct.pack(">HH", t, 1) for n, t in questions) + b"".join(answers)
    cut = draw(st.integers(0, 20))
    if cut == 0:
        msg = msg[: draw(st.integers(0, len(msg)))]
    elif cut == 1 and msg:
        at = draw(st.integers(0, len(msg) - 1))
        msg = msg[:at] + bytes([draw(st.integers(0, 255))]) + msg[at + 1 :]
    return msg


@st.composite
def conversations(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, bool, int, bytes]]]:
    ports = draw(st.sampled_from([(40000, 53), (53, 53), (5353, 5353), (137, 137), (4000, 137)]))
    ts = 1_700_000_000_000_000_000
    parts = []
    lookups = draw(st.booleans())  # queries and replies taking turns, as resolvers send them
    for k in range(draw(st.integers(1, 5))):
        ts += draw(st.sampled_from([0, 1, 1000, 10**9 * 9, 10**10, 10**10 + 1]))
        if lookups:
            parts.append((ts, k % 2 == 0, 0, draw(messages(qr=k % 2 == 1))))
        else:
            parts.append((ts, draw(st.booleans()), 0, draw(messages())))
    return ports[0], ports[1], parts


def _reference(conv: Conversation) -> tuple[bool, list[dict[str, object]]]:
    got = DnsAnalyzer().analyze(conv)
    return got.confirmed, _to_table("dns", got.records).to_pylist() if got.records else []


@settings(max_examples=150, deadline=None)
@given(st.lists(conversations(), min_size=1, max_size=6))
def test_columns_equal_the_python_analyser(convs) -> None:
    _check_against_the_python_analyser(convs)


# NetBIOS names as queries carry them: one label, mostly the 32-letter first-level encoding of
# a few names (valid letters A-P in either case), sometimes not quite one.
NETBIOS_NAMES = st.sampled_from(
    [
        b"FHEPFCELEHFCEPFFFACACACACACACAAA",
        b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        b"fhepfcelehfcepffacacacacacacacab",
        b"ABACFPFPENFDECFCEPFHFDEFFPFPACAB",
        b"EBEBEBEBEBEBEBEBEBEBEBEBEBEBEBAB",
    ]
) | st.text(alphabet="ABCDEFGHIJKLMNOPabcpQZ", min_size=30, max_size=33).map(str.encode)


@st.composite
def netbios_lookups(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, bool, int, bytes]]]:
    ts = 1_700_000_000_000_000_000
    parts = []
    for k in range(draw(st.integers(1, 4))):
        ts += draw(st.sampled_from([1, 1000, 10**9]))
        tid, reply = draw(st.integers(1, 3)), k % 2 == 1
        msg = struct.pack(">6H", tid, 0x8500 if reply else 0x0110, 1, 0, 0, 0)
        msg += _name([draw(NETBIOS_NAMES)]) + struct.pack(">HH", draw(st.sampled_from([32, 33])), 1)
        parts.append((ts, not reply, 0, msg))
    return draw(st.sampled_from([137, 4000])), 137, parts


@settings(max_examples=100, deadline=None)
@given(st.lists(netbios_lookups(), min_size=1, max_size=6))
def test_netbios_names_in_columns_equal_the_python_analyser(convs) -> None:
    """NetBIOS queries log their decoded names (each distinct one decoded once per batch)."""
    _check_against_the_python_analyser(convs)


def _check_against_the_python_analyser(convs) -> None:
    """The column path's rows and confirmation equal the Python analyser's for every
    conversation it keeps."""
    batch = dns_batch.Batch([], [], [], [], [], [], [], [])
    expected = []
    for k, (op, rp, parts) in enumerate(convs):
        uid = f"C{k}"
        for col, value in zip(
            (batch.nos, batch.ts, batch.uid, batch.orig_h, batch.orig_p, batch.resp_h,
             batch.resp_p, batch.parts),
            (k, 1.0, uid, "10.0.0.1", op, "10.0.0.2", rp, parts),
            strict=True,
        ):  # fmt: skip
            col.append(value)
        conv = Conversation(uid, 1.0, "10.0.0.1", op, "10.0.0.2", rp, "udp")
        conv.segments = [Segment(t / 1e9, o, d) for t, o, _s, d in parts]
        expected.append(_reference(conv))
    table, confirmed, rest = dns_batch.analyze(batch)
    rows = table.to_pylist() if table is not None else []
    for k, (ref_confirmed, ref_rows) in enumerate(expected):
        mine = [r for r in rows if r["uid"] == f"C{k}"]
        if rest[k]:
            assert not mine
            continue
        assert bool(confirmed[k]) == ref_confirmed
        assert mine == ref_rows


def test_the_common_shapes_take_the_column_path() -> None:
    """A lookup and its reply, a lone query, a lone reply: no Python analyser for any."""
    q = (
        struct.pack(">6H", 7, 0x0100, 1, 0, 0, 0)
        + _name([b"Example", b"org"])
        + b"\x00\x01\x00\x01"
    )
    r = struct.pack(">6H", 7, 0x8180, 1, 1, 0, 0) + q[12:]
    r += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 300, 4) + b"\x5d\xb8\xd8\x22"
    shapes = [
        [(0, True, 0, q), (5000, False, 0, r)],
        [(0, True, 0, q)],
        [(0, False, 0, r)],
        [
            (0, True, 0, q),
            (1, False, 0, r),
            (2 * 10**10, True, 0, q),
            (2 * 10**10 + 1, False, 0, r),
        ],
    ]
    n = len(shapes)
    batch = dns_batch.Batch(
        list(range(n)), [0.0] * n, [f"C{k}" for k in range(n)], ["10.0.0.1"] * n, [5000] * n,
        ["10.0.0.2"] * n, [53] * n, shapes,
    )  # fmt: skip
    table, confirmed, rest = dns_batch.analyze(batch)
    assert not rest.any() and confirmed.all()
    rows = {r["uid"]: r for r in table.to_pylist()}
    assert rows["C0"]["query"] == "example.org" and rows["C0"]["answers"] == ["93.184.216.34"]
    assert rows["C0"]["rtt"] == 5e-6 and rows["C1"]["answers"] is None
    assert rows["C2"]["query"] == "example.org" and rows["C2"]["qtype"] is None
    assert len(table.filter(pa.compute.equal(table["uid"], "C3"))) == 2  # a lookup every 20 s


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=80) | messages(), max_size=20))
def test_kernel_survives_any_bytes(msgs: list[bytes]) -> None:
    buf = np.frombuffer(b"".join(msgs) + b"\x00", np.uint8)
    lens = np.array([len(m) for m in msgs], np.int64)
    offs = np.zeros(len(msgs), np.int64)
    offs[1:] = np.cumsum(lens)[:-1]
    header, _status, _nq, question, answers, text = K.parse(buf, offs, lens, lens % 2 == 0)
    assert header.shape[0] == len(msgs)
    assert ((answers[:, 5] + answers[:, 6]) <= text.shape[0]).all()
    assert ((question[:, 0] + question[:, 1]) <= text.shape[0]).all()


def test_kernel_stays_in_bounds_as_plain_python() -> None:
    """A fuzz corpus through the kernel's Python source (NUMBA_DISABLE_JIT): NumPy raises on any
    read past a message, which compiled code would not (every index is built from non-negative
    lengths and offsets, so wrapping negative indices cannot hide one)."""
    code = textwrap.dedent(
        """
        import numpy as np
        from mamori.flows import dns_kernel as K
        rng = np.random.default_rng(7)
        seed = bytes.fromhex(
            "0007818000010002000000000377777707657861"
            "6d706c6503636f6d0000010001c00c0005000100"
            "00012c0002c010c0100001000100000e10000401020304"
        )
        msgs = [seed[:k] for k in range(len(seed) + 1)]
        for _ in range(400):
            m = bytearray(seed)
            for _ in range(rng.integers(1, 6)):
                m[rng.integers(0, len(m))] = rng.integers(0, 256)
            msgs.append(bytes(m[: rng.integers(0, len(m) + 1)]))
            msgs.append(rng.integers(0, 256, rng.integers(0, 60), dtype=np.uint8).tobytes())
        for m in msgs:  # one message per buffer: any read past it is out of bounds
            buf = np.frombuffer(m, np.uint8) if m else np.zeros(0, np.uint8)
            K.parse(
                buf, np.zeros(1, np.int64), np.array([len(m)], np.int64), np.ones(1, np.bool_)
            )
        print("ok", len(msgs))
        """
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok")


def test_a_failing_column_path_hands_every_conversation_to_the_analyser(monkeypatch) -> None:
    """A bug in the column path costs speed, never records: the Python analyser gets them all."""
    from mamori.flows import pipeline

    q = (
        struct.pack(">6H", 7, 0x0100, 1, 0, 0, 0)
        + _name([b"example", b"org"])
        + b"\x00\x01\x00\x01"
    )
    batch = dns_batch.Batch(
        [3], [0.0], ["C3"], ["10.0.0.1"], [5000], ["10.0.0.2"], [53], [[(0, True, 0, q)]]
    )

    def broken(_batch: dns_batch.Batch) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(dns_batch, "analyze", broken)
    table, rows, services, jobs = pipeline.analyze_dns_batch(batch, np.array([0]))
    assert table is None and rows.size == 0 and not services
    assert [(no, service, conv.uid) for no, service, conv in jobs] == [(3, "dns", "C3")]
    assert pipeline.analyze_jobs(jobs)[1]["dns"][0]["query"] == "example.org"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 0xFFFF) | st.integers(0, 300), st.booleans())),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([qclass_name, qtype_name, rcode_name]),
)
def test_name_columns_name_each_code(batches, name) -> None:
    """Name columns (cached per-code tables, grown as larger codes come) hold name(code) on every
    valid row and null elsewhere, whichever codes earlier batches brought."""
    for rows in batches:
        codes = np.array([c for c, _v in rows], np.int64)
        valid = np.array([v for _c, v in rows], np.bool_)
        got = dns_batch._names(codes, valid, name).to_pylist()
        assert got == [name(c) if v else None for c, v in rows]
