"""What every protocol analyser provides, and the registry the tracker finds them in.

An analyser is one module under ``flows/analyzers``: it declares the service name Zeek would log in
conn.log's ``service``, the Arrow schema of its table, a cheap payload signature (Zeek's DPD idea:
service is recognised from the bytes, not from the port), and a parser over whole conversations.
The service is only written to conn.log when the parser *confirms* the protocol, as Zeek's
``analyzer_confirmation`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import pyarrow as pa

from mamori.flows.conversation import Conversation


@dataclass(slots=True)
class Analysis:
    """What parsing one conversation produced."""

    confirmed: bool  # the payload really is this protocol (sets conn.log's service)
    records: list[dict[str, object]] = field(default_factory=list)  # rows of the analyser's table
    # Analysers this one handed the rest of the stream to (SOCKS -> HTTP, STARTTLS -> SSL), with what
    # they produced: Zeek attaches them as children, so their confirmed services follow this one's in
    # conn.log ("socks,http") and their rows go to their own tables.
    inner: list[tuple[Analyzer, Analysis]] = field(default_factory=list)

    def services(self, outer: Analyzer) -> list[str]:
        """conn.log's service list: this analyser's, then those of the confirmed inner ones."""
        out = [outer.service] if self.confirmed else []
        for a, res in self.inner:
            out += [s for s in res.services(a) if s not in out]
        return out

    def tables(self, outer: Analyzer) -> dict[str, list[dict[str, object]]]:
        """Rows per table, this analyser's and those of every inner one."""
        out: dict[str, list[dict[str, object]]] = {}
        if self.records:
            out[outer.table] = list(self.records)
        for a, res in self.inner:
            for table, rows in res.tables(a).items():
                out.setdefault(table, []).extend(rows)
        return out


class Analyzer(Protocol):
    service: ClassVar[str]  # conn.log service name, e.g. "dns"
    table: ClassVar[str]  # lake table it writes, e.g. "dns"
    schema: ClassVar[pa.Schema]  # Arrow schema of that table (lake names: orig_h, not id.orig_h)
    transports: ClassVar[tuple[str, ...]]  # ("udp",), ("tcp",) or both
    # What the vectorised prefilter (flows/prefilter.py) lets through to ``matches``: payload that
    # starts with one of ``prefixes`` (either direction, case-blind), traffic on ``ports`` (where
    # Zeek attaches the analyser by port), and optionally ``prefilter(head, valid) -> mask``.
    prefixes: ClassVar[tuple[bytes, ...]]
    # Optional signature helpers the router uses before ``matches`` (read with getattr; each is
    # property-tested to decide exactly as ``matches`` does):
    # ``opens(orig_first_byte, resp_first_byte) -> bool`` (-1: nothing sent yet): False only where
    # ``matches`` cannot hold for TCP prefixes starting with those bytes;
    # ``datagrams(buf, off, size, orig_p, resp_p) -> mask``: for UDP, ``matches`` holds exactly
    # when the first datagram of either direction passes it (computed over a whole batch).
    # True: TCP conversations carry FIN/RST mark segments and ``partial`` (see conversation.py).
    # Read with getattr, default False: most protocols parse the payload alone.
    # control_marks: ClassVar[bool]
    # True: ``Segment.data`` may be any bytes-like object (a memoryview into the capture's buffer,
    # valid during ``analyze`` only), so the router does not copy the payload out. Read with
    # getattr, default False: such an analyser must not keep a view past ``analyze``.
    # views: ClassVar[bool]

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """Does the first payload of each direction (either may be empty) look like this protocol?"""
        ...

    def analyze(self, conv: Conversation) -> Analysis:
        """Parse a whole conversation; must never raise on malformed payload."""
        ...


_REGISTRY: dict[str, Analyzer] = {}


def register(analyzer: Analyzer) -> Analyzer:
    """Add an analyser under its service name; a second one with the same name is a bug."""
    if analyzer.service in _REGISTRY:
        raise ValueError(f"analyser {analyzer.service!r} registered twice")
    _REGISTRY[analyzer.service] = analyzer
    return analyzer


def registered() -> dict[str, Analyzer]:
    """Every analyser, importing the built-in modules on first use."""
    from mamori.flows import analyzers  # noqa: F401  (imports register the built-ins)

    return dict(_REGISTRY)
