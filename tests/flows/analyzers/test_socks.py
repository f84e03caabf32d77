"""socks analyser: handshakes, hand-over of the tunnelled stream, and robustness."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.analyzers.test_ssl import _client_hello, _rec
from mamori.flows.analyzers.base import Analysis, registered
from mamori.flows.conversation import Conversation, Segment

SOCKS = registered()["socks"]

GET = b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
SOCKS5 = [
    (True, b"\x05\x01\x00"),
    (False, b"\x05\x00"),
    (True, b"\x05\x01\x00\x03\x0bexample.com\x00\x50"),
    (False, b"\x05\x00\x00\x01\x0a\x00\x00\x01\x1f\x90"),
]


def _conv(*segments: tuple[bool, bytes]) -> Conversation:
    conv = Conversation("Csocks", 100.0, "10.0.0.55", 53994, "192.0.2.9", 1080, "tcp")
    conv.segments = [Segment(100.0 + i, o, d) for i, (o, d) in enumerate(segments)]
    return conv


def test_matches_zeek_signatures() -> None:
    assert SOCKS.matches("tcp", 1, 1080, b"\x05\x01\x00", b"\x05\x00")
    assert SOCKS.matches("tcp", 1, 1080, b"\x04\x01\x00\x50\x01\x02\x03\x04user\x00", b"\x00\x5a")
    assert not SOCKS.matches("tcp", 1, 1080, b"\x05\x01\x00", b"")  # needs the server's answer
    assert not SOCKS.matches("tcp", 1, 80, GET, OK)
    assert not SOCKS.matches("udp", 1, 1080, b"\x05\x01\x00", b"\x05\x00")


def test_socks5_hands_the_stream_to_http() -> None:
    res = SOCKS.analyze(_conv(*SOCKS5, (True, GET), (False, OK)))
    assert res.confirmed
    assert res.services(SOCKS) == ["socks", "http"]
    (row,) = res.tables(SOCKS)["http"]
    assert row["uid"] == "Csocks" and row["resp_p"] == 1080
    assert (row["method"], row["host"], row["uri"], row["status_code"]) == (
        "GET",
        "example.com",
        "/x",
        200,
    )
    assert row["ts"] == 104.0


def test_socks5_with_password_and_socks4a_hand_over_tls() -> None:
    hello = _rec(22, _client_hello("tunnelled.example"), 0x0301)
    socks5_auth = [
        (True, b"\x05\x02\x00\x02"),
        (False, b"\x05\x02"),
        (True, b"\x01\x04user\x04pass"),
        (False, b"\x01\x00"),
        *SOCKS5[2:],
    ]
    socks4a = [(True, b"\x04\x01\x01\xbb\x00\x00\x00\x01me\x00tunnelled.example\x00"),
               (False, b"\x00\x5a\x00\x00\x00\x00\x00\x00")]  # fmt: skip
    for handshake in (socks5_auth, socks4a):
        res = SOCKS.analyze(_conv(*handshake, (True, hello)))
        assert res.services(SOCKS) == ["socks", "ssl"]
        (row,) = res.tables(SOCKS)["ssl"]
        assert row["server_name"] == "tunnelled.example"


def test_refused_handshake_is_not_confirmed_and_hands_nothing_over() -> None:
    res = SOCKS.analyze(_conv((True, b"\x05\x01\x00"), (False, b"\x05\xff"), (True, GET)))
    assert not res.confirmed and not res.inner and res.services(SOCKS) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=64)), max_size=8))
def test_random_bytes_never_raise(segments: list[tuple[bool, bytes]]) -> None:
    res = SOCKS.analyze(_conv(*SOCKS5[:1], *segments))
    assert isinstance(res, Analysis)
