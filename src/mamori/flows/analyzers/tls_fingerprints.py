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
import struct
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
_DTLS = (0xFEFF, 0xFEFD, 0xFEFC)


def _unpack_u16(buf: bytes, pos: int, count: int) -> tuple[int, ...]:
    """``count`` big-endian 16-bit values at ``pos`` in one C call."""
    return struct.unpack_from(f">{count}H", buf, pos)


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values (0x?A?A with equal bytes) carry no meaning and are ignored."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


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


def _parse_extensions(body: bytes, pos: int) -> list[tuple[int, bytes]]:
    """The extension block starting at ``pos`` (a short block ends the list, as before)."""
    out: list[tuple[int, bytes]] = []
    n = len(body)
    if n - pos < 2:
        return out  # extensions are optional before TLS 1.2
    end = min(pos + 2 + ((body[pos] << 8) | body[pos + 1]), n)
    pos += 2
    while end - pos >= 4:
        code = (body[pos] << 8) | body[pos + 1]
        length = (body[pos + 2] << 8) | body[pos + 3]
        pos += 4
        if length > end - pos:
            break
        out.append((code, body[pos : pos + length]))
        pos += length
    return out


def _hello_start(body: bytes) -> tuple[Hello, int]:
    """version, random and session id (common to both hellos); offsets instead of a reader."""
    n = len(body)
    if n < 35 or 35 + body[34] > n:
        raise ValueError("truncated")
    end = 35 + body[34]
    return Hello((body[0] << 8) | body[1], body[2:34], body[35:end]), end


def parse_client_hello(body: bytes) -> Hello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header)."""
    hello, pos = _hello_start(body)
    n = len(body)
    if hello.version in _DTLS:
        if pos >= n or pos + 1 + body[pos] > n:
            raise ValueError("truncated")
        pos += 1 + body[pos]  # DTLS cookie
    if pos + 2 > n:
        raise ValueError("truncated")
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
    if end > n:
        raise ValueError("truncated")
    count = (end - pos - 2) >> 1
    hello.ciphers = list(_unpack_u16(body, pos + 2, count))
    pos = end
    if pos >= n or pos + 1 + body[pos] > n:
        raise ValueError("truncated")
    end = pos + 1 + body[pos]
    hello.compression = list(body[pos + 1 : end])
    hello.extensions = _parse_extensions(body, end)
    return hello


def parse_server_hello(body: bytes) -> Hello:
    """Parse a ServerHello handshake body; ``ciphers`` holds the one chosen suite."""
    hello, pos = _hello_start(body)
    if pos + 3 > len(body):
        raise ValueError("truncated")
    hello.ciphers = [(body[pos] << 8) | body[pos + 1]]
    hello.compression = [body[pos + 2]]
    hello.extensions = _parse_extensions(body, pos + 3)
    return hello


def u16_list(body: bytes | None, length_bytes: int = 2) -> list[int]:
    """A length-prefixed list of 16-bit values (supported_groups, signature_algorithms, ...)."""
    if not body or len(body) < length_bytes:
        return []
    n = int.from_bytes(body[:length_bytes], "big")
    count = min(n, len(body) - length_bytes) >> 1
    return list(_unpack_u16(body, length_bytes, count))


def server_names(body: bytes | None) -> list[str]:
    """Host names from a server_name extension body (RFC 6066)."""
    names: list[str] = []
    if not body or len(body) < 2:
        return names
    end = min(2 + ((body[0] << 8) | body[1]), len(body))
    pos = 2
    while end - pos >= 3:
        kind = body[pos]
        stop = pos + 3 + ((body[pos + 1] << 8) | body[pos + 2])
        if stop > end:
            break  # a truncated entry ends the list
        if kind == 0:
            names.append(body[pos + 3 : stop].decode("utf-8", "replace"))
        pos = stop
    return names


def alpn_protocols(body: bytes | None) -> list[str]:
    """Protocol names of an ALPN extension body, in wire order."""
    out: list[str] = []
    if not body or len(body) < 2:
        return out
    end = min(2 + ((body[0] << 8) | body[1]), len(body))
    pos = 2
    while pos < end:
        stop = pos + 1 + body[pos]
        if stop > end:
            break  # a truncated entry ends the list
        out.append(body[pos + 1 : stop].decode("latin-1"))
        pos = stop
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


# JA3 and JA4 are functions of a few hello fields only (never the random, session id or key
# shares), and real traffic repeats a handful of client stacks: remember them by those fields.
_FP_CACHE: dict[tuple[object, ...], tuple[str, str]] = {}
_FP_CACHE_MAX = 4096
_FP_EXTS = (
    EXT_SUPPORTED_GROUPS,
    EXT_EC_POINT_FORMATS,
    EXT_SIGNATURE_ALGORITHMS,
    EXT_ALPN,
    EXT_SUPPORTED_VERSIONS,
)


def fingerprints(hello: Hello, transport: str = "tcp") -> tuple[str, str]:
    """``(ja3(hello), ja4(hello, transport))``, cached by exactly the fields they read."""
    exts = hello.extensions
    first = dict(reversed(exts))  # ``Hello.ext`` reads the first extension of a type
    key = (
        transport,
        hello.version,
        tuple(hello.ciphers),
        tuple([c for c, _ in exts]),
        *[first.get(code) for code in _FP_EXTS],
    )
    got = _FP_CACHE.get(key)
    if got is None:
        if len(_FP_CACHE) >= _FP_CACHE_MAX:
            _FP_CACHE.clear()
        got = _FP_CACHE[key] = (ja3(hello), ja4(hello, transport))
    return got


_JA3S_CACHE: dict[tuple[object, ...], str] = {}


def ja3s_cached(hello: Hello) -> str:
    """``ja3s(hello)``, cached by the version, cipher and extension types it reads."""
    key = (hello.version, tuple(hello.ciphers), tuple([c for c, _ in hello.extensions]))
    got = _JA3S_CACHE.get(key)
    if got is None:
        if len(_JA3S_CACHE) >= _FP_CACHE_MAX:
            _JA3S_CACHE.clear()
        got = _JA3S_CACHE[key] = ja3s(hello)
    return got


# The ssl analyser's fast path: one walk over a hello that yields exactly what ssl.log and the
# fingerprints need, with no ``Hello``, no extension tuples and no second pass per field. The general
# parsers above stay the reference (``tests/flows/analyzers/test_tls_fast.py`` checks the two agree
# on arbitrary bytes) and still build the fingerprints on a cache miss.
_CLIENT_KEEP = frozenset(
    (
        EXT_SERVER_NAME,
        EXT_SESSION_TICKET,
        EXT_PRE_SHARED_KEY,
        *_FP_EXTS,
    )
)
_CH_CACHE: dict[tuple[object, ...], tuple[str, str]] = {}
_SH_CACHE: dict[tuple[int, int, tuple[int, ...]], str] = {}


def client_hello_fields(
    body: bytes,
) -> tuple[int, bytes, str | None, bool, bool, str, str]:
    """What the ssl analyser reads from a ClientHello body, in one pass.

    ``(version, session_id, server_name, ticket, psk, ja3, ja4)``: ``server_name`` is the first name
    of the last server_name extension that has one, ``ticket`` says some session_ticket extension
    is non-empty, ``psk`` that a pre_shared_key extension is present. Raises ``ValueError`` exactly
    where ``parse_client_hello`` does. JA3/JA4 are cached by the raw cipher bytes (which determine
    the cipher list), the extension types and the first body of each extension they read.
    """
    n = len(body)
    if n < 35 or 35 + body[34] > n:
        raise ValueError("truncated")
    version = (body[0] << 8) | body[1]
    pos = 35 + body[34]
    session_id = body[35:pos]
    if version in _DTLS:
        if pos >= n or pos + 1 + body[pos] > n:
            raise ValueError("truncated")
        pos += 1 + body[pos]  # DTLS cookie
    if pos + 2 > n:
        raise ValueError("truncated")
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
    if end > n:
        raise ValueError("truncated")
    ciphers = body[pos + 2 : end]
    pos = end
    if pos >= n or pos + 1 + body[pos] > n:
        raise ValueError("truncated")
    pos += 1 + body[pos]
    codes: list[int] = []
    first: dict[int, bytes] = {}
    name: str | None = None
    ticket = psk = False
    if n - pos >= 2:
        end = min(pos + 2 + ((body[pos] << 8) | body[pos + 1]), n)
        pos += 2
        keep = _CLIENT_KEEP
        while end - pos >= 4:
            code = (body[pos] << 8) | body[pos + 1]
            stop = pos + 4 + ((body[pos + 2] << 8) | body[pos + 3])
            if stop > end:
                break
            codes.append(code)
            if code in keep:
                ext = body[pos + 4 : stop]
                if code == EXT_SERVER_NAME:
                    names = server_names(ext)
                    if names:
                        name = names[0]
                elif code == EXT_SESSION_TICKET:
                    ticket = ticket or stop > pos + 4
                elif code == EXT_PRE_SHARED_KEY:
                    psk = True
                if code not in first:
                    first[code] = ext
            pos = stop
    get = first.get
    key = (
        version,
        ciphers,
        tuple(codes),
        get(EXT_SUPPORTED_GROUPS),
        get(EXT_EC_POINT_FORMATS),
        get(EXT_SIGNATURE_ALGORITHMS),
        get(EXT_ALPN),
        get(EXT_SUPPORTED_VERSIONS),
    )
    fps = _CH_CACHE.get(key)
    if fps is None:
        if len(_CH_CACHE) >= _FP_CACHE_MAX:
            _CH_CACHE.clear()
        hello = parse_client_hello(body)
        fps = _CH_CACHE[key] = (ja3(hello), ja4(hello))
    return version, session_id, name, ticket, psk, fps[0], fps[1]


def server_hello_fields(
    body: bytes,
) -> tuple[int, bytes, bytes, int, tuple[int, ...], int | None, str | None, bool, str]:
    """What the ssl analyser reads from a ServerHello body, in one pass.

    ``(version, random, session_id, cipher, versions, group, alpn, psk, ja3s)``: ``versions`` are
    the values of the two-byte supported_versions extensions in wire order, ``group`` the group of
    the last key_share extension of at least two bytes, ``alpn`` the first protocol of the last
    ALPN extension that names one, ``psk`` that a pre_shared_key extension is present. Raises
    ``ValueError`` exactly where ``parse_server_hello`` does.
    """
    n = len(body)
    if n < 35 or 35 + body[34] > n:
        raise ValueError("truncated")
    version = (body[0] << 8) | body[1]
    pos = 35 + body[34]
    if pos + 3 > n:
        raise ValueError("truncated")
    session_id = body[35:pos]
    cipher = (body[pos] << 8) | body[pos + 1]
    pos += 3
    codes: list[int] = []
    versions: list[int] = []
    group: int | None = None
    alpn: str | None = None
    psk = False
    if n - pos >= 2:
        end = min(pos + 2 + ((body[pos] << 8) | body[pos + 1]), n)
        pos += 2
        while end - pos >= 4:
            code = (body[pos] << 8) | body[pos + 1]
            length = (body[pos + 2] << 8) | body[pos + 3]
            pos += 4
            if length > end - pos:
                break
            codes.append(code)
            if code == EXT_SUPPORTED_VERSIONS:
                if length == 2:
                    versions.append((body[pos] << 8) | body[pos + 1])
            elif code == EXT_KEY_SHARE:
                if length >= 2:
                    group = (body[pos] << 8) | body[pos + 1]
            elif code == EXT_ALPN:
                protos = alpn_protocols(body[pos : pos + length])
                if protos:
                    alpn = protos[0]
            elif code == EXT_PRE_SHARED_KEY:
                psk = True
            pos += length
    key = (version, cipher, tuple(codes))
    fp = _SH_CACHE.get(key)
    if fp is None:
        if len(_SH_CACHE) >= _FP_CACHE_MAX:
            _SH_CACHE.clear()
        fp = _SH_CACHE[key] = ja3s(
            Hello(version, ciphers=[cipher], extensions=[(c, b"") for c in codes])
        )
    return version, body[2:34], session_id, cipher, tuple(versions), group, alpn, psk, fp
