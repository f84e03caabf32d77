"""tls_fingerprints' one-pass hello readers agree with the general parsers on arbitrary bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mamori.flows.analyzers import tls_fingerprints as tf

_CODES = st.sampled_from([0, 5, 10, 11, 13, 16, 21, 23, 35, 41, 43, 45, 51, 0x0A0A, 0xFF01])


def _ext(code: int, body: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _names(names: list[bytes]) -> bytes:
    entries = b"".join(b"\x00" + len(n).to_bytes(2, "big") + n for n in names)
    return len(entries).to_bytes(2, "big") + entries


def _alpn(protos: list[bytes]) -> bytes:
    entries = b"".join(bytes([len(p)]) + p for p in protos)
    return len(entries).to_bytes(2, "big") + entries


@st.composite
def _extensions(draw: st.DrawFn) -> bytes:
    out = b""
    for code in draw(st.lists(_CODES, max_size=12)):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            body = draw(st.binary(max_size=12))
        elif code == 0:
            body = _names(draw(st.lists(st.binary(min_size=1, max_size=6), max_size=2)))
        elif code == 16:
            body = _alpn(draw(st.lists(st.binary(max_size=4), max_size=3)))
        elif code in (43, 51):
            body = draw(st.sampled_from([b"\x03\x04", b"\x7f\x1c", b"\x00\x1d\x00", b"\x03"]))
        else:
            count = draw(st.integers(0, 4))
            body = (2 * count).to_bytes(2, "big") + draw(
                st.binary(min_size=2 * count, max_size=2 * count)
            )
        out += _ext(code, body)
    return len(out).to_bytes(2, "big") + out


_VERSIONS = st.sampled_from([0x0301, 0x0303, 0x0304, 0xFEFD, 0x7F1C, 0x0002, 0x1234])


@st.composite
def _client_hellos(draw: st.DrawFn) -> bytes:
    sid = draw(st.sampled_from([b"", b"\x00" * 32, b"\x05" * 32, b"\x01"]))
    ciphers = draw(st.binary(max_size=10))
    body = draw(_VERSIONS).to_bytes(2, "big") + draw(st.binary(min_size=32, max_size=32))
    body += bytes([len(sid)]) + sid
    if body[:2] in (b"\xfe\xfd",):
        body += b"\x02ab"  # DTLS cookie
    body += len(ciphers).to_bytes(2, "big") + ciphers + b"\x01\x00" + draw(_extensions())
    return _mutate(draw, body)


@st.composite
def _server_hellos(draw: st.DrawFn) -> bytes:
    sid = draw(st.sampled_from([b"", b"\x05" * 32]))
    body = draw(_VERSIONS).to_bytes(2, "big") + draw(st.binary(min_size=32, max_size=32))
    body += bytes([len(sid)]) + sid + draw(st.binary(min_size=2, max_size=2)) + b"\x00"
    return _mutate(draw, body + draw(_extensions()))


def _mutate(draw: st.DrawFn, body: bytes) -> bytes:
    """Truncate or overwrite a byte now and then, so the error paths are compared too."""
    if draw(st.booleans()):
        return body
    if draw(st.booleans()):
        return body[: draw(st.integers(0, len(body)))]
    i = draw(st.integers(0, len(body) - 1))
    return body[:i] + bytes([draw(st.integers(0, 255))]) + body[i + 1 :]


def _reference_client(body: bytes) -> tuple[object, ...]:
    hello = tf.parse_client_hello(body)
    name, ticket, psk = None, False, False
    for code, ext in hello.extensions:  # the ssl analyser's former loop over every extension
        if code == tf.EXT_SERVER_NAME:
            names = tf.server_names(ext)
            if names:
                name = names[0]
        elif code == tf.EXT_SESSION_TICKET and ext:
            ticket = True
        elif code == tf.EXT_PRE_SHARED_KEY:
            psk = True
    return (hello.version, hello.session_id, name, ticket, psk, tf.ja3(hello), tf.ja4(hello))


def _reference_server(body: bytes) -> tuple[object, ...]:
    hello = tf.parse_server_hello(body)
    versions: list[int] = []
    group, alpn, psk = None, None, False
    for code, ext in hello.extensions:
        if code == tf.EXT_SUPPORTED_VERSIONS and len(ext) == 2:
            versions.append(int.from_bytes(ext, "big"))
        elif code == tf.EXT_KEY_SHARE and len(ext) >= 2:
            group = int.from_bytes(ext[:2], "big")
        elif code == tf.EXT_ALPN:
            protos = tf.alpn_protocols(ext)
            if protos:
                alpn = protos[0]
        elif code == tf.EXT_PRE_SHARED_KEY:
            psk = True
    return (
        hello.version,
        hello.random,
        hello.session_id,
        hello.ciphers[0],
        tuple(versions),
        group,
        alpn,
        psk,
        tf.ja3s(hello),
    )


def _outcome(f: object, body: bytes) -> tuple[object, ...] | str:
    try:
        return f(body)  # type: ignore[operator,no-any-return]
    except ValueError:
        return "ValueError"


def _reseeded(body: bytes, seed: int) -> bytes:
    """The same hello with another random and session id (which no cache may key on)."""
    if len(body) < 35 or 35 + body[34] > len(body):
        return body
    sid = bytes([seed]) * body[34]
    return body[:2] + bytes([seed ^ 0x5A]) * 32 + body[34:35] + sid + body[35 + body[34] :]


@settings(max_examples=400, deadline=None)
@given(_client_hellos(), st.integers(0, 255))
def test_client_hello_fields_equal_the_general_parser(body: bytes, seed: int) -> None:
    for b in (body, body, _reseeded(body, seed)):  # fingerprint cache miss, hit, and new random/sid
        assert _outcome(tf.client_hello_fields, b) == _outcome(_reference_client, b)


@settings(max_examples=400, deadline=None)
@given(_server_hellos(), st.integers(0, 255))
def test_server_hello_fields_equal_the_general_parser(body: bytes, seed: int) -> None:
    for b in (body, body, _reseeded(body, seed)):
        assert _outcome(tf.server_hello_fields, b) == _outcome(_reference_server, b)


@given(st.binary(max_size=120))
def test_hello_fields_on_arbitrary_bytes(body: bytes) -> None:
    assert _outcome(tf.client_hello_fields, body) == _outcome(_reference_client, body)
    assert _outcome(tf.server_hello_fields, body) == _outcome(_reference_server, body)
