"""HTTP analyser: crafted exchanges, fuzzing, and conformance with Zeek 7.2.2's http.log."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers.base import Analysis, registered
from mamori.flows.conversation import Conversation, Segment

HTTP = registered()["http"]


def conv(*segs: tuple[float, bool, bytes]) -> Conversation:
    c = Conversation("Ctest", segs[0][0], "10.0.0.1", 50000, "10.0.0.80", 80, "tcp")
    c.segments = [Segment(ts, o, d) for ts, o, d in segs]
    return c


REQ = (
    b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\n"
    b"Referer: http://ref/\r\nAuthorization: Basic "
    + base64.b64encode(b"alice:secret")
    + b"\r\n\r\n"
)
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_simple_exchange() -> None:
    res = HTTP.analyze(conv((1.0, True, REQ), (1.2, False, RESP)))
    assert res.confirmed
    (r,) = res.records
    assert (r["method"], r["uri"], r["host"]) == ("GET", "/a b?x=1", "example.com:8080")
    assert (r["user_agent"], r["referrer"], r["version"]) == ("curl/8", "http://ref/", "1.1")
    assert (r["status_code"], r["status_msg"], r["response_body_len"]) == (200, "OK", 5)
    assert r["username"] == "alice" and r["password"] is None  # Zeek does not log passwords
    assert r["trans_depth"] == 1 and r["ts"] == 1.0 and r["request_body_len"] == 0


def test_pipelining_chunked_and_head() -> None:
    reqs = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  # HEAD: no body despite the length
    rows = HTTP.analyze(
        conv((1.0, True, reqs), (1.1, False, chunked[:30]), (1.2, False, chunked[30:] + head))
    ).records
    by = {r["trans_depth"]: r for r in rows}
    assert (by[1]["uri"], by[1]["response_body_len"]) == ("/1", 7)
    assert (by[2]["method"], by[2]["response_body_len"], by[2]["status_code"]) == ("HEAD", 0, 200)


def test_100_continue_post_and_until_close_body() -> None:
    post = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    final = b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1234
    (r,) = HTTP.analyze(
        conv((1.0, True, post), (1.1, False, cont), (1.2, True, b"data"), (1.3, False, final))
    ).records
    assert (r["info_code"], r["info_msg"], r["status_code"]) == (100, "Continue", 200)
    assert (r["request_body_len"], r["response_body_len"], r["version"]) == (4, 1234, "1.0")


def test_gzip_body_counts_decompressed_bytes() -> None:
    body = gzip.compress(b"z" * 5000)
    resp = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    (r,) = HTTP.analyze(conv((1.0, True, REQ), (1.1, False, resp))).records
    assert r["response_body_len"] == 5000


def test_request_without_reply_is_still_logged() -> None:
    (r,) = HTTP.analyze(conv((1.0, True, REQ))).records
    assert r["status_code"] is None and r["method"] == "GET"


def test_matches() -> None:
    assert HTTP.matches("tcp", 50000, 1234, b"POST /x HTTP/1.0\r\n", b"")
    assert HTTP.matches("tcp", 50000, 1234, b"", b"HTTP/1.1 404 Not Found\r\n")
    assert not HTTP.matches("tcp", 50000, 80, b"SSH-2.0-OpenSSH\r\n", b"")
    assert not HTTP.matches("udp", 50000, 80, REQ, b"")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.binary(max_size=400), st.integers(0, 3)), min_size=1, max_size=6
    )
)
def test_random_bytes_never_raise(segs: list[tuple[bool, bytes, int]]) -> None:
    c = conv(*[(1.0 + i, o, d) for i, (o, d, _) in enumerate(segs)])
    for s, (_, _, gap) in zip(c.segments, segs, strict=True):
        s.gap = gap
    assert isinstance(HTTP.analyze(c), Analysis)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_exchanges_never_raise(data: st.DataObject) -> None:
    parts = []
    for base in (REQ, RESP + b"HTTP/1.1 304 Not Modified\r\n\r\n"):
        b = bytearray(base)
        for _ in range(data.draw(st.integers(1, 8))):
            b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        parts.append(bytes(b[: data.draw(st.integers(0, len(b)))]))
    res = HTTP.analyze(conv((1.0, True, parts[0]), (1.1, False, parts[1])))
    assert isinstance(res, Analysis)
    for r in res.records:
        assert set(r) == set(HTTP.schema.names)


# ---- conformance with Zeek's own http.log ----------------------------------------------------

EXCLUDED = {
    "zeek-btest/Traces/socks.pcap": "HTTP inside SOCKS: Zeek decapsulates, the dpkt builder does not",
    "zeek-btest/Traces/tunnels/gtp/gtp1_gn_normal_incl_fragmentation.pcap": "GTP tunnel",
    "zeek-btest/Traces/snap-tcp.pcap": "802.2 SNAP framing the dpkt builder does not decode",
    # Bytes missing from the capture: Zeek counts content gaps inside a Content-Length body into
    # response_body_len (HTTP_Entity::Undelivered); the dpkt builder never reports ``gap``.
    "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/manx-tcp.pcap": "content gaps",
    "zeek-detector-pcaps/zeek-caldera-detector/testing/Traces/sandcat.pcap": "content gaps",
    "pcaps-ddos-stopddos/amp.dns.RRSIG.fragmented.pcap": "partial TCP connections: Zeek skips HTTP on "
    "connections without a handshake, and the builder does not say which those are",
}
FIELDS = ("method", "host", "uri", "status_code", "request_body_len", "response_body_len")


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="body lengths still differ from Zeek on 4 captures (nmap_80_all after RST, multipart "
    "trailer, putty-upload early reply, websocket frames); strict: passes -> this mark must go",
)
def test_conformance_with_zeek_http_log(data_dir: Path) -> None:
    from flows.analyzers.test_dns import compare

    share = compare(data_dir, "http", "trans_depth", FIELDS, EXCLUDED)
    assert share >= 0.95
