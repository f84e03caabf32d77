"""The contract between the connection tracker and the protocol analysers.

The tracker hands an analyser one :class:`Conversation` per connection whose first payload matched
the analyser's signature. TCP payload arrives already reassembled in order per direction, with
retransmissions removed and holes reported as ``gap`` (Zeek's ``content_gap``), so an analyser parses
messages, never packets. UDP payload arrives one datagram per segment. An analyser whose protocol
reacts to the connection's own events (HTTP ends a message at a FIN or RST, and ignores connections
that began mid-stream, as Zeek's does) asks for them with ``control_marks``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Segment:
    """Contiguous payload from one direction, in the order it was delivered."""

    ts: float  # seconds since the epoch of the packet that completed this data
    is_orig: bool  # True when sent by the connection's originator
    # bytes; for an analyser that sets ``views`` (Analyzer.views) also a memoryview of the
    # capture's buffer, valid only while the conversation is analysed (ingest does not copy payload
    # an analyser only counts, such as HTTP bodies and TLS ciphertext).
    data: bytes
    gap: int = 0  # bytes missing in this direction just before ``data`` (0 when contiguous)
    # A control mark (no data of its own), only in conversations with ``marks``: FIN when this
    # direction's data up to its FIN has been delivered, RST at the reset's arrival.
    flags: int = 0


@dataclass(slots=True)
class Conversation:
    """One connection's identity and its payload, in delivery order across both directions."""

    uid: str
    ts: float  # the connection's start, as in conn.log
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str  # "tcp" or "udp"
    segments: list[Segment] = field(default_factory=list)
    # TCP only, for analysers that ask for them (``Analyzer.control_marks``): the segments carry
    # FIN/RST marks, and ``partial`` says the connection was seen without its handshake.
    marks: bool = False
    partial: bool = False

    def stream(self, is_orig: bool) -> bytes:
        """All payload of one direction, concatenated (holes are simply skipped)."""
        return b"".join(s.data for s in self.segments if s.is_orig == is_orig)

    def id_fields(self) -> dict[str, object]:
        """The ``id`` fields every Zeek protocol log starts with, under the lake's names."""
        return {
            "uid": self.uid,
            "orig_h": self.orig_h,
            "orig_p": self.orig_p,
            "resp_h": self.resp_h,
            "resp_p": self.resp_p,
        }


def segment_rows(segments: Iterable[Segment]) -> Iterable[tuple[float, bool, bytes, int, int]]:
    """``(ts, is_orig, data, gap, flags)`` of each segment, in order.

    What a hot analyser loop reads instead of ``Segment`` objects: the conversations ingest
    assembles (``payload.Segments``) make these tuples without a Python step per segment.
    """
    rows = getattr(segments, "rows", None)
    if rows is not None:
        return rows()  # type: ignore[no-any-return]
    return ((s.ts, s.is_orig, s.data, s.gap, getattr(s, "flags", 0)) for s in segments)
