"""Hand the rest of a stream to another analyser, as Zeek does after a tunnel or an upgrade.

Zeek's SOCKS analyser attaches a PIA (signature recognition) once both sides finished the SOCKS
handshake, and SMTP's STARTTLS and RDP's TLS security protocol attach the SSL analyser directly. In
both cases the child sees only the bytes after the handshake, with the same connection identity, and
its confirmed service is logged after the parent's ("socks,http", "smtp,ssl"). This module builds that
child conversation and runs the child analyser on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from mamori.flows.analyzers.base import Analysis, Analyzer, registered
from mamori.flows.conversation import Conversation, Segment

DPD_BUFFER = 1024  # Zeek's dpd_buffer_size: stream bytes a signature may look at


def child(conv: Conversation, segments: Iterable[Segment]) -> Conversation:
    """The same connection carrying only ``segments`` (the payload after the parent's handshake)."""
    return Conversation(
        conv.uid,
        conv.ts,
        conv.orig_h,
        conv.orig_p,
        conv.resp_h,
        conv.resp_p,
        conv.proto,
        [s for s in segments if s.data or s.gap or s.flags],
        conv.marks,
        conv.partial,
    )


def head(segments: Iterable[Segment], is_orig: bool, limit: int = DPD_BUFFER) -> bytes:
    """One direction's stream up to its first hole, at most ``limit`` bytes (what DPD matches on)."""
    out = bytearray()
    for s in segments:
        if s.is_orig != is_orig:
            continue
        if s.gap or len(out) >= limit:
            break
        out += s.data
    return bytes(out[:limit])


def run(analyzer: Analyzer, conv: Conversation) -> tuple[Analyzer, Analysis] | None:
    """Run a child analyser; one that raises loses its result, never the parent's.

    A parent that took views of the payload (``Analyzer.views``) hands them on as they are only
    to a child that takes views too; any other child gets bytes.
    """
    if not getattr(analyzer, "views", False):
        conv.segments = [
            s if type(s.data) is bytes else Segment(s.ts, s.is_orig, bytes(s.data), s.gap, s.flags)
            for s in conv.segments
        ]
    try:
        return analyzer, analyzer.analyze(conv)
    except Exception:
        return None


def by_service(service: str, conv: Conversation) -> tuple[Analyzer, Analysis] | None:
    """Run the analyser of a known service (STARTTLS -> "ssl") on a child conversation."""
    analyzer = registered().get(service)
    return None if analyzer is None else run(analyzer, conv)


def recognise(conv: Conversation, exclude: str) -> tuple[Analyzer, Analysis] | None:
    """Zeek's PIA on a child conversation: the first analyser whose signature matches, if any.

    Only signatures count here, never ports: a tunnelled stream keeps the tunnel's ports.
    """
    heads = {o: head(conv.segments, o) for o in (True, False)}
    if not heads[True] and not heads[False]:
        return None
    for analyzer in registered().values():
        if analyzer.service == exclude or conv.proto not in analyzer.transports:
            continue
        try:
            ok = analyzer.matches(conv.proto, conv.orig_p, conv.resp_p, heads[True], heads[False])
        except Exception:  # a signature bug must not take the parent down
            ok = False
        if ok:
            return run(analyzer, conv)
    return None
