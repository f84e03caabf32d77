"""WebSocket frame reader: what it forwards, however the stream is cut, and never an exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers.websocket import CHUNK, FrameReader
from support.pcap_writer import websocket_frame as frame

messages = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 9, 10]),  # text, binary, ping, pong
        st.lists(st.binary(max_size=300), min_size=1, max_size=3),  # its frames' payloads
        st.one_of(st.just(b""), st.binary(min_size=4, max_size=4)),  # mask (clients mask)
    ),
    max_size=6,
)


@settings(max_examples=200)
@given(messages, st.lists(st.integers(1, 400), max_size=20))
def test_forwards_text_and_binary_payload_whatever_the_cuts(
    msgs: list[tuple[int, list[bytes], bytes]], cuts: list[int]
) -> None:
    stream, expected = b"", b""
    for opcode, parts, mask in msgs:
        if opcode >= 8:
            parts = parts[:1]  # control frames are never fragmented
        for i, part in enumerate(parts):
            stream += frame(part, opcode if i == 0 else 0, mask, fin=i == len(parts) - 1)
        if opcode in (1, 2):
            expected += b"".join(parts)
    reader, got, at = FrameReader(), [], 0
    for n in [*cuts, len(stream)]:
        got += reader.feed(stream[at : at + n])
        at += n
    assert b"".join(got) == expected
    assert all(0 < len(c) <= CHUNK for c in got)


def test_large_frame_is_forwarded_in_chunks_once_each_has_arrived() -> None:
    payload = bytes(range(256)) * 80  # 20480 bytes: chunks of 8192, 8192, 4096
    stream = frame(payload, 2, b"\x01\x02\x03\x04")
    reader = FrameReader()
    assert reader.feed(stream[:8000]) == []  # the first chunk is not complete yet
    got = reader.feed(stream[8000:])
    assert [len(c) for c in got] == [8192, 8192, 4096] and b"".join(got) == payload


def test_continuation_without_a_message_stops_the_reader() -> None:
    reader = FrameReader()
    assert reader.feed(frame(b"abc", 0) + frame(b"def", 1)) == []
    assert reader.failed


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    reader = FrameReader()
    for c in chunks:
        assert isinstance(reader.feed(c), list)
