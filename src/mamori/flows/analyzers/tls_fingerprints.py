"""ClientHello / ServerHello parsing and the JA3, JA3S and JA4 fingerprints built from them.

Kept apart from the ssl analyser because the fingerprints are pure functions of one hello message:
they can be unit-tested on a crafted hello without a connection around it, and other modules (a
future QUIC analyser, say) can reuse them.

* JA3 / JA3S follow Salesforce's definition: decimal fields joined with ``-``, five (three) groups
  joined with ``,``, MD5 of that string; GREASE values (RFC 8701) are dropped from every list.
* JA4 follows FoxIO's JA4 specification for the TLS client: ``a_b_c`` where ``a`` describes the
  hello, ``b`` is a truncated SHA-256 of the sorted cipher list and ``c`` one of the sorted extension
  list (SNI and ALPN removed) plus the signature algorithms in wire order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_SUPPORTED_VERSIONS = 43
EXT_KEY_SHARE = 51


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values (0x?A?A with equal bytes) carry no meaning and are ignored."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


class _Reader:
    """Bounds-checked big-endian reader: every short read raises ``ValueError``."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def remaining(self) -> int:
        return len(self.buf) - self.pos


@dataclass(slots=True)
class Hello:
    """The fields of a ClientHello or ServerHello the log and the fingerprints need."""

    version: int  # legacy_version from the hello body
    random: bytes = b""
    session_id: bytes = b""
    ciphers: list[int] = field(default_factory=list)  # the server's choice is ciphers[0]
    compression: list[int] = field(default_factory=list)
    extensions: list[tuple[int, bytes]] = field(default_factory=list)  # (type, body) in wire order

    def ext(self, code: int) -> bytes | None:
        """Body of the first extension of this type, None when absent."""
        for c, body in self.extensions:
            if c == code:
                return body
        return None

    def ext_types(self) -> list[int]:
        return [c for c, _ in self.extensions]


def _parse_extensions(r: _Reader) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    if r.remaining() < 2:
        return out  # extensions are optional before TLS 1.2
    total = r.u16()
    er = _Reader(r.take(min(total, r.remaining())))
    while er.remaining() >= 4:
        code = er.u16()
        length = er.u16()
        if length > er.remaining():
            break
        out.append((code, er.take(length)))
    return out


def parse_client_hello(body: bytes) -> Hello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header)."""
    r = _Reader(body)
    hello = Hello(version=r.u16(), random=r.take(32))
    hello.session_id = r.take(r.u8())
    if hello.version in (0xFEFF, 0xFEFD, 0xFEFC):
        r.take(r.u8())  # DTLS cookie
    cipher_bytes = r.take(r.u16())
    hello.ciphers = [
        int.from_bytes(cipher_bytes[i : i + 2], "big") for i in range(0, len(cipher_bytes) - 1, 2)
    ]
    hello.compression = list(r.take(r.u8()))
    hello.extensions = _parse_extensions(r)
    return hello


def parse_server_hello(body: bytes) -> Hello:
    """Parse a ServerHello handshake body; ``ciphers`` holds the one chosen suite."""
    r = _Reader(body)
    hello = Hello(version=r.u16(), random=r.take(32))
    hello.session_id = r.take(r.u8())
    hello.ciphers = [r.u16()]
    hello.compression = [r.u8()]
    hello.extensions = _parse_extensions(r)
    return hello


def u16_list(body: bytes | None, length_bytes: int = 2) -> list[int]:
    """A length-prefixed list of 16-bit values (supported_groups, signature_algorithms, ...)."""
    if not body or len(body) < length_bytes:
        return []
    n = int.from_bytes(body[:length_bytes], "big")
    data = body[length_bytes : length_bytes + n]
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)]


def server_names(body: bytes | None) -> list[str]:
    """Host names from a server_name extension body (RFC 6066)."""
    names: list[str] = []
    if not body or len(body) < 2:
        return names
    r = _Reader(body[2 : 2 + int.from_bytes(body[:2], "big")])
    try:
        while r.remaining() >= 3:
            kind = r.u8()
            name = r.take(r.u16())
            if kind == 0:
                names.append(name.decode("utf-8", "replace"))
    except ValueError:
        pass
    return names


def alpn_protocols(body: bytes | None) -> list[str]:
    """Protocol names of an ALPN extension body, in wire order."""
    out: list[str] = []
    if not body or len(body) < 2:
        return out
    r = _Reader(body[2 : 2 + int.from_bytes(body[:2], "big")])
    try:
        while r.remaining() >= 1:
            out.append(r.take(r.u8()).decode("latin-1"))
    except ValueError:
        pass
    return out


def _dash(values: list[int]) -> str:
    return "-".join(str(v) for v in values if not is_grease(v))


def ja3_string(hello: Hello) -> str:
    """Salesforce JA3 input string of a ClientHello."""
    point_formats = hello.ext(EXT_EC_POINT_FORMATS)
    formats = list(point_formats[1 : 1 + point_formats[0]]) if point_formats else []
    return ",".join(
        [
            str(hello.version),
            _dash(hello.ciphers),
            _dash(hello.ext_types()),
            _dash(u16_list(hello.ext(EXT_SUPPORTED_GROUPS))),
            _dash(formats),
        ]
    )


def ja3(hello: Hello) -> str:
    return hashlib.md5(ja3_string(hello).encode()).hexdigest()


def ja3s_string(hello: Hello) -> str:
    """Salesforce JA3S input string of a ServerHello."""
    return ",".join([str(hello.version), _dash(hello.ciphers), _dash(hello.ext_types())])


def ja3s(hello: Hello) -> str:
    return hashlib.md5(ja3s_string(hello).encode()).hexdigest()


_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"


def _alpn_chars(alpn: str) -> str:
    if not alpn:
        return "00"
    first, last = alpn[0], alpn[-1]
    if first.isascii() and first.isalnum() and last.isascii() and last.isalnum():
        return first + last
    hexed = alpn.encode("latin-1").hex()  # FoxIO: non-alphanumeric ends use the hex form
    return hexed[0] + hexed[-1]


def ja4(hello: Hello, transport: str = "tcp") -> str:
    """FoxIO JA4 of a ClientHello (``t`` for TCP, ``q`` for QUIC, ``d`` for DTLS)."""
    proto = (
        "d" if hello.version in (0xFEFF, 0xFEFD, 0xFEFC) else ("q" if transport == "quic" else "t")
    )
    versions = [v for v in u16_list(hello.ext(EXT_SUPPORTED_VERSIONS), 1) if not is_grease(v)]
    top = max(versions) if versions else hello.version
    version = _JA4_VERSIONS.get(top, "00")
    sni = "d" if hello.ext(EXT_SERVER_NAME) is not None else "i"
    ciphers = [c for c in hello.ciphers if not is_grease(c)]
    exts = [e for e in hello.ext_types() if not is_grease(e)]
    alpns = alpn_protocols(hello.ext(EXT_ALPN))
    a = f"{proto}{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}"
    a += _alpn_chars(alpns[0] if alpns else "")
    b = _sha12(",".join(f"{c:04x}" for c in sorted(ciphers)))
    ext_part = ",".join(f"{e:04x}" for e in sorted(exts) if e not in (EXT_SERVER_NAME, EXT_ALPN))
    sigs = [s for s in u16_list(hello.ext(EXT_SIGNATURE_ALGORITHMS)) if not is_grease(s)]
    c_input = ext_part + ("_" + ",".join(f"{s:04x}" for s in sigs) if sigs else "")
    c = _sha12(c_input) if ext_part else "000000000000"
    return f"{a}_{b}_{c}"
