"""The sped-up analysers give exactly the records of their frozen references (``ref/``).

The references are the analysers as they were before their hot paths were rewritten (HEAD
7454125). Each fast analyser is run beside its reference on real traces (every TCP conversation of
the Zeek test traces of its protocol), on protocol-shaped pieces cut and interleaved at random with
gaps and FIN/RST marks, and on arbitrary bytes: services, rows and their order must be the same.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.analyzers.ref.ftp import FTPAnalyzer as RefFTP
from flows.analyzers.ref.http import HttpAnalyzer as RefHttp
from flows.analyzers.ref.ssh import SSHAnalyzer as RefSSH
from flows.analyzers.ref.ssl import SSLAnalyzer as RefSSL
from mamori.flows.analyzers.base import Analysis, Analyzer
from mamori.flows.analyzers.ftp import FTPAnalyzer
from mamori.flows.analyzers.http import HttpAnalyzer
from mamori.flows.analyzers.ssh import SSHAnalyzer
from mamori.flows.analyzers.ssl import SSLAnalyzer
from mamori.flows.conversation import Conversation, Segment
from support.dpkt_conversations import conversations

PAIRS: dict[str, tuple[Analyzer, Analyzer]] = {
    "http": (HttpAnalyzer(), RefHttp()),
    "ssl": (SSLAnalyzer(), RefSSL()),
    "ssh": (SSHAnalyzer(), RefSSH()),
    "ftp": (FTPAnalyzer(), RefFTP()),
}
FIN, RST = 0x01, 0x04


# Added after the references were frozen (``mime.sniff`` of a body's first bytes): compared with
# the body itself in test_mime.py instead.
NEWER = ("orig_mime_types", "resp_mime_types")


def _out(a: Analyzer, res: Analysis) -> tuple[list[str], dict[str, list[dict[str, object]]]]:
    tables = {
        name: [{k: v for k, v in row.items() if k not in NEWER} for row in rows]
        for name, rows in res.tables(a).items()
    }
    return res.services(a), tables


def assert_same(service: str, conv: Conversation) -> None:
    fast, ref = PAIRS[service]
    want = _out(ref, ref.analyze(conv))
    assert _out(fast, fast.analyze(conv)) == want
    if getattr(fast, "views", False):  # payload as views of one buffer, as ingest hands it over
        assert _out(fast, fast.analyze(_as_views(conv))) == want


def _as_views(conv: Conversation) -> Conversation:
    """The conversation with every segment's payload a memoryview into one NumPy buffer."""
    buf = np.frombuffer(b"".join(s.data for s in conv.segments), np.uint8)
    out = replace(conv, segments=[])
    at = 0
    for s in conv.segments:
        out.segments.append(replace(s, data=memoryview(buf)[at : at + len(s.data)]))
        at += len(s.data)
    return out


def _conv(
    segs: list[Segment], partial: bool = False, marks: bool = True, resp_h: str = "10.0.0.2"
) -> Conversation:
    c = Conversation("Cref", 1.0, "10.0.0.1", 50000, resp_h, 80, "tcp", marks=marks)
    c.partial = partial
    c.segments = segs
    return c


@pytest.mark.parametrize(
    ("service", "traces"),
    [
        ("http", ["zeek-btest/Traces/http", "zeek-btest/Traces/tcp-http-with-padding.pcap"]),
        ("ssl", ["zeek-btest/Traces/tls", "zeek-btest/Traces/socks-with-ssl.pcap"]),
        ("ssh", ["zeek-btest/Traces/ssh"]),
        ("ftp", ["zeek-btest/Traces/ftp"]),
    ],
)
def test_same_records_on_zeek_traces(data_dir: Path, service: str, traces: list[str]) -> None:
    checked = 0
    for rel in traces:
        root = data_dir / rel
        files = sorted(root.rglob("*.pcap*")) if root.is_dir() else [root]
        for path in files:
            for conv in conversations(path):
                if conv.proto == "tcp":
                    assert_same(service, conv)
                    checked += 1
    assert checked > 10


# -- HTTP --------------------------------------------------------------------------------------
_EOLS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]
_HTTP_PIECES = [
    b"GET /a%41b%u0041?x=1 HTTP/1.1", b"POST /up HTTP/1.0", b"HEAD / HTTP/1.1", b"GET /09",
    b"CONNECT h:443 HTTP/1.1", b"HTTP/1.1 200 OK", b"HTTP/1.1 100 Continue", b"HTTP/1.0 304 NM",
    b"HTTP/1.1 101 Switching", b"Host: example.com", b"Content-Length: 5", b"Content-Length: 0",
    b"Transfer-Encoding: chunked", b"Connection: close", b"Connection: keep-alive",
    b"Connection: Upgrade", b"Upgrade: websocket", b"Content-Encoding: gzip",
    b"Content-Type: multipart/form-data; boundary=XyZ", b"--XyZ", b"--XyZ--",
    b"User-Agent: t\x00\xff", b" folded", b"\tfolded", b"Authorization: Basic dXNlcjpwdw==",
    b"X-Forwarded-For: 1.2.3.4", b"5", b"0", b"hello", b"abcdefghij", b"", b"\x00junk",
]  # fmt: skip


@st.composite
def _http_stream(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.tuples(st.sampled_from(_HTTP_PIECES), st.sampled_from(_EOLS))))
    return b"".join(p + e for p, e in parts)


@st.composite
def _segments(
    draw: st.DrawFn,
    stream: st.SearchStrategy[bytes],
    resp_stream: st.SearchStrategy[bytes] | None = None,
) -> list[Segment]:
    """Each direction's stream cut at random points, interleaved, with gaps and marks."""
    out: list[Segment] = []
    streams = {True: draw(stream), False: draw(stream if resp_stream is None else resp_stream)}
    pos = {True: 0, False: 0}
    ts = 1.0
    while pos[True] < len(streams[True]) or pos[False] < len(streams[False]):
        side = draw(st.booleans())
        if pos[side] >= len(streams[side]):
            side = not side
        cut = draw(st.integers(1, max(1, len(streams[side]) - pos[side])))
        gap = draw(st.sampled_from([0, 0, 0, 0, 0, 3, 100]))
        out.append(Segment(ts, side, streams[side][pos[side] : pos[side] + cut], gap))
        pos[side] += cut
        ts += 0.5
        if draw(st.integers(0, 9)) == 0:
            out.append(Segment(ts, draw(st.booleans()), b"", flags=draw(st.sampled_from([FIN, RST]))))  # fmt: skip
    return out


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_segments(_http_stream()), st.booleans(), st.booleans())
def test_http_same_on_protocol_pieces(segs: list[Segment], partial: bool, marks: bool) -> None:
    assert_same("http", _conv(segs, partial, marks))


@_SETTINGS
@given(_segments(st.binary(max_size=300)), st.booleans())
def test_http_same_on_arbitrary_bytes(segs: list[Segment], marks: bool) -> None:
    assert_same("http", _conv(segs, False, marks))


# -- TLS ---------------------------------------------------------------------------------------
def _rec(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([ctype]) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _hs(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _ext(code: int, body: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


_SNI = _ext(0, b"\x00\x0e\x00\x00\x0bexample.com")
_EXTS = [
    _SNI, _ext(10, b"\x00\x04\x00\x1d\x00\x17"), _ext(11, b"\x01\x00"), _ext(16, b"\x00\x03\x02h2"),
    _ext(13, b"\x00\x04\x04\x03\x08\x04"), _ext(43, b"\x04\x03\x04\x03\x03"), _ext(43, b"\x03\x04"),
    _ext(51, b"\x00\x1d\x00\x02ab"), _ext(35, b""), _ext(35, b"tk"), _ext(41, b"\x00\x00"),
    _ext(0x1A1A, b""),
]  # fmt: skip


@st.composite
def _hello(draw: st.DrawFn, client: bool) -> bytes:
    version = draw(st.sampled_from([0x0303, 0x0301, 0x0300, 0x0304, 0x7F12, 0x1234]))
    sid = draw(st.sampled_from([b"", b"\x00" * 32, b"\x01" * 32]))
    exts = b"".join(draw(st.lists(st.sampled_from(_EXTS), max_size=5)))
    rnd = draw(st.sampled_from([b"\x11" * 32, bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A2117ABB8C5E079E09E2C8A8339C")]))  # fmt: skip
    head = version.to_bytes(2, "big") + rnd + bytes([len(sid)]) + sid
    if client:
        body = head + b"\x00\x04\x2a\x2a\xc0\x2f\x01\x00"
    else:
        body = head + draw(st.sampled_from([b"\xc0\x2f", b"\x13\x01", b"\xff\xfe"])) + b"\x00"
    body += len(exts).to_bytes(2, "big") + exts
    return _hs(1 if client else 2, body[: draw(st.integers(30, len(body)))])


_CERT = b"\x30\x82\x00\x04\x30\x02\x05\x00"  # not a real certificate: its names stay empty


@st.composite
def _tls_stream(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        version = draw(st.sampled_from([0x0303, 0x0303, 0x0301, 0x0304, 0x0200]))
        if kind <= 1:
            out += _rec(22, draw(_hello(kind == 0)), version)
        elif kind == 2:
            certs = _CERT * draw(st.integers(0, 3))
            cert = len(certs).to_bytes(3, "big") + certs
            body = _hs(11, cert) + _hs(12, b"\x03\x00\x17") + _hs(14, b"") + _hs(16, b"k")
            out += _rec(22, body, version)
        elif kind == 3:
            out += _rec(20, b"\x01", version)
        elif kind == 4:
            out += _rec(21, draw(st.sampled_from([b"\x02\x28", b"\x01\x00\x02\x2f", b"\x01"])))
        elif kind == 5:
            out += _rec(23, b"ciphertext", version)
        elif kind == 6:
            out += _rec(24, b"hb", version)
        elif kind == 7:  # SSLv2 CLIENT-HELLO / SERVER-HELLO
            out += draw(st.sampled_from([
                b"\x80\x1c\x01\x00\x02\x00\x03\x00\x00\x00\x10\x07\x00\xc0" + b"\x22" * 16,
                b"\x80\x13\x04\x00\x01\x00\x02\x00\x00\x00\x03\x00\x10\x07\x00\xc0" + b"\x00" * 5,
                b"\x80\x03\x02\x00\x00",
            ]))  # fmt: skip
        else:
            out += draw(st.binary(max_size=20))
    return out


@_SETTINGS
@given(_segments(_tls_stream()))
def test_ssl_same_on_protocol_pieces(segs: list[Segment]) -> None:
    assert_same("ssl", _conv(segs))


@_SETTINGS
@given(_segments(st.binary(max_size=300)))
def test_ssl_same_on_arbitrary_bytes(segs: list[Segment]) -> None:
    assert_same("ssl", _conv(segs))


# -- SSH ---------------------------------------------------------------------------------------
def _ssh_string(raw: bytes) -> bytes:
    return len(raw).to_bytes(4, "big") + raw


def _ssh_packet(payload: bytes, pad: int = 4) -> bytes:
    return (len(payload) + pad + 1).to_bytes(4, "big") + bytes([pad]) + payload + b"\0" * pad


_LISTS = [b"curve25519-sha256,diffie-hellman-group-exchange-sha256", b"ssh-ed25519,rsa-sha2-512",
          b"aes128-ctr,chacha20-poly1305@openssh.com", b"aes256-ctr,aes128-ctr", b"hmac-sha2-256",
          b"umac-64@openssh.com,hmac-sha2-256", b"none,zlib@openssh.com", b"zlib", b""]  # fmt: skip


@st.composite
def _ssh_stream(draw: st.DrawFn, is_orig: bool) -> list[bytes]:
    """One side: optional pre-banner text, a banner, cleartext packets, then encrypted pieces."""
    out = []
    if not is_orig and draw(st.booleans()):
        out.append(b"Welcome\r\n")
    out.append(draw(st.sampled_from([b"SSH-2.0-OpenSSH_9.6", b"SSH-1.99-x", b"SSH-1.5-old"])) + b"\r\n")  # fmt: skip
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            lists = b"".join(_ssh_string(draw(st.sampled_from(_LISTS))) for _ in range(10))
            out.append(_ssh_packet(b"\x14" + b"\x01" * 16 + lists + b"\0\0\0\0\0"))
        elif kind == 1:
            out.append(_ssh_packet(b"\x15"))
        elif kind == 2:
            out.append(_ssh_packet(bytes([draw(st.sampled_from([31, 33]))]) + _ssh_string(b"hostkey")))  # fmt: skip
        elif kind == 3:
            out.append(draw(st.binary(max_size=40)))
        elif kind == 4:
            out.append(_ssh_packet(b"\x1e" + b"k" * draw(st.integers(0, 30))))
        else:  # SSH-1 framing: length, 8 - length % 8 bytes of padding, type and data, CRC
            body = bytes([draw(st.sampled_from([2, 3]))]) + b"\x07" * draw(st.integers(0, 40))
            plen = len(body) + 4
            out.append(plen.to_bytes(4, "big") + b"\0" * (8 - plen % 8) + body + b"crc!")
    for _ in range(draw(st.integers(0, 8))):  # encrypted segments: only their sizes matter
        out.append(b"x" * draw(st.sampled_from([36, 52, 68, 84, 100, 400])))
    return out


@_SETTINGS
@given(st.data(), st.sampled_from(["10.0.0.2", "8.8.8.8"]))
def test_ssh_same_on_protocol_pieces(data: st.DataObject, resp_h: str) -> None:
    sides = {o: data.draw(_ssh_stream(o)) for o in (True, False)}
    segs, ts = [], 1.0
    while sides[True] or sides[False]:
        o = data.draw(st.booleans()) if sides[True] and sides[False] else bool(sides[True])
        gap = data.draw(st.sampled_from([0] * 15 + [7]))
        segs.append(Segment(ts, o, sides[o].pop(0), gap))
        ts += 0.25
    assert_same("ssh", _conv(segs, resp_h=resp_h))


@_SETTINGS
@given(_segments(st.binary(max_size=300)))
def test_ssh_same_on_arbitrary_bytes(segs: list[Segment]) -> None:
    assert_same("ssh", _conv(segs))


# -- FTP ---------------------------------------------------------------------------------------
_FTP_COMMANDS = [
    b"USER anonymous", b"USER bob", b"PASS x@y", b"CWD /a/b/../c", b"CWD ..//d", b"CDUP", b"PWD",
    b"CWD a/..", b"RETR d/..",
    b"RETR f.txt", b"STOR /up/../x", b"SIZE f.txt", b"PASV", b"EPSV", b"PORT 10,0,0,1,4,1",
    b"EPRT |1|10.0.0.1|2000|", b"QUIT", b"junk",
]  # fmt: skip
_FTP_REPLIES = [
    b"220 FTP ready", b"331 Need password", b"230 OK", b"250 CWD ok", b"200 OK", b'257 "/a/c"',
    b"150 Opening (1234 bytes)", b"213 99", b"226 Done", b"227 Entering Passive Mode (10,0,0,2,7,208)",
    b"229 Entering (|||5000|)", b"550 No", b"230-Welcome", b"230-  more text here", b"230 end",
    b"500 what",
]  # fmt: skip


def _ftp_stream(pieces: list[bytes]) -> st.SearchStrategy[bytes]:
    line = st.tuples(st.sampled_from(pieces), st.sampled_from(_EOLS[:2]))
    return st.lists(line, max_size=12).map(lambda parts: b"".join(p + e for p, e in parts))


@_SETTINGS
@given(_segments(_ftp_stream(_FTP_COMMANDS), _ftp_stream(_FTP_REPLIES)))
def test_ftp_same_on_protocol_pieces(segs: list[Segment]) -> None:
    assert_same("ftp", _conv(segs))


@_SETTINGS
@given(_segments(st.binary(max_size=300)))
def test_ftp_same_on_arbitrary_bytes(segs: list[Segment]) -> None:
    assert_same("ftp", _conv(segs))
