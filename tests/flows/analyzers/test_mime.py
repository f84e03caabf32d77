"""Body types from magic numbers (``flows.analyzers.mime``) and their place in http rows."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.flows.analyzers.base import registered
from mamori.flows.analyzers.mime import _PREFIXES, sniff
from mamori.flows.conversation import Conversation, Segment

HTTP = registered()["http"]


def conv(*segs: tuple[float, bool, bytes]) -> Conversation:
    c = Conversation("Ctest", segs[0][0], "10.0.0.1", 50000, "10.0.0.80", 80, "tcp", marks=True)
    c.segments = [Segment(*s) for s in segs]
    return c


@given(st.sampled_from(_PREFIXES), st.binary(max_size=40))
def test_a_magic_number_names_its_type_whatever_follows(case: tuple, rest: bytes) -> None:
    prefix, mime = case
    assert sniff(prefix + rest) == mime


@pytest.mark.parametrize(
    ("e_type", "mime"),
    [(1, "application/x-object"), (2, "application/x-executable"),
     (3, "application/x-sharedlib"), (4, "application/x-coredump"), (9, None)],
)  # fmt: skip
@pytest.mark.parametrize("little", [True, False])
def test_elf_type_is_read_in_the_files_byte_order(
    e_type: int, mime: str | None, little: bool
) -> None:
    ident = b"\x7fELF" + bytes([2, 1 if little else 2, 1]) + bytes(9)
    head = ident + struct.pack("<H" if little else ">H", e_type) + bytes(14)
    assert sniff(head) == mime
    assert sniff(head[:17]) is None  # too short to tell


@given(st.binary(max_size=40))
def test_text_and_unknown_bodies_stay_unnamed(body: bytes) -> None:
    """Only a listed prefix (or an ELF or universal Mach-O header) names a type."""
    named = sniff(body)
    if named is not None:
        assert body[:4] in (b"\x7fELF", b"\xca\xfe\xba\xbe") or any(
            body.startswith(p) and m == named for p, m in _PREFIXES
        )


PE = b"MZ\x90\x00\x03" + bytes(59) + b"PE\x00\x00"


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PE) + PE,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(PE)
        + PE
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PE,
    ],
    ids=["length", "chunked", "until-close"],
)
def test_an_executable_reply_is_typed_in_every_framing(reply: bytes) -> None:
    req = b"GET /x.exe HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/8\r\n\r\n"
    (row,) = HTTP.analyze(
        conv((1.0, True, req), (1.1, False, reply[:40]), (1.2, False, reply[40:]))
    ).records
    assert row["resp_mime_types"] == ["application/x-dosexec"]
    assert row.get("orig_mime_types") is None


def test_a_magic_split_across_segments_and_a_text_reply() -> None:
    req = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n"
    rows = HTTP.analyze(
        conv(
            (1.0, True, req),
            (1.05, True, b"%P"),  # the upload's magic split across two segments
            (1.06, True, b"DF-1"),
            (1.1, False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        )
    ).records
    (row,) = rows
    assert row.get("resp_mime_types") is None  # text: left to Zeek's full signature set
    assert row["orig_mime_types"] == ["application/pdf"]


@given(
    st.sampled_from([p for p, _ in _PREFIXES]),
    st.binary(max_size=60),
    st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=8),
    st.sampled_from(["length", "chunked", "close"]),
)
def test_the_type_does_not_depend_on_how_the_body_is_cut(
    magic: bytes, rest: bytes, cuts: list[int], framing: str
) -> None:
    """However the reply's bytes fall into segments (the fast paths take whole deliveries, the
    line path pieces), the type is that of the body's first bytes."""
    body = magic + rest
    if framing == "length":
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        reply += b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in (body[:7], body[7:]) if c)
        reply += b"0\r\n\r\n"
    else:
        reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
    segs, at, t = [(1.0, True, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")], 0, 1.1
    for n in cuts:
        if at < len(reply):
            segs.append((t, False, reply[at : at + n]))
            at, t = at + n, t + 0.01
    segs.append((t, False, reply[at:]))
    (row,) = HTTP.analyze(conv(*segs)).records
    assert row["resp_mime_types"] == [sniff(body[:32])]
