"""QUIC's TLS handshake, read from the Initial packets (RFC 9000, 9001; QUIC v2, RFC 9369).

Why only the Initial packets: they are protected with keys anyone can derive from the client's
first Destination Connection ID (RFC 9001 §5.2), so the ClientHello and ServerHello they carry
are as readable as TLS-over-TCP's; everything after them needs the session's secrets. That is
what Zeek's QUIC analyser reads too, and like Zeek this one hands the handshake to the SSL
analyser, so a QUIC connection has an ssl row (server name, version, cipher, JA3/JA4) and the
service ``quic,ssl``. The handshake bytes are re-framed as TLS records for it: CRYPTO frames are
the handshake stream without the record layer.

Per datagram: the coalesced long-header packets are split, an Initial's header protection is
removed and its payload decrypted (AES-128-GCM, the keys of the Initial's version: v1, v2 and
draft-29), and its CRYPTO frames are kept by offset; each direction's stream is what is
contiguous from offset 0. Anything malformed ends that direction's reading, never the analysis.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mamori.flows.analyzers import handover
from mamori.flows.analyzers.base import Analysis, register
from mamori.flows.conversation import Conversation, Segment
from mamori.schema.ssl import SCHEMA

# version -> (initial salt, label prefix, long-header type bits of an Initial packet)
VERSIONS: dict[int, tuple[bytes, str, int]] = {
    0x00000001: (bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), "quic ", 0),
    0x6B3343CF: (bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), "quicv2 ", 1),
    0xFF00001D: (bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899"), "quic ", 0),
}
_CRYPTO, _PADDING, _PING = 0x06, 0x00, 0x01
MAX_CRYPTO = 1 << 16  # bytes of handshake kept per direction (a ClientHello is a few KiB)


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise _Malformed
    first = buf[pos]
    size = 1 << (first >> 6)
    if pos + size > len(buf):
        raise _Malformed
    value = first & 0x3F
    for b in buf[pos + 1 : pos + size]:
        value = (value << 8) | b
    return value, pos + size


def _expand_label(secret: bytes, label: str, length: int) -> bytes:
    """TLS 1.3's HKDF-Expand-Label with an empty context (one block suffices: length <= 32)."""
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def initial_keys(version: int, dcid: bytes, is_client: bool) -> tuple[bytes, bytes, bytes]:
    """(key, iv, header-protection key) of one direction's Initial packets (RFC 9001 §5.2)."""
    salt, prefix, _ = VERSIONS[version]
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()  # HKDF-Extract
    secret = _expand_label(initial, "client in" if is_client else "server in", 32)
    return (
        _expand_label(secret, prefix + "key", 16),
        _expand_label(secret, prefix + "iv", 12),
        _expand_label(secret, prefix + "hp", 16),
    )


class _Keys:
    """One direction's Initial packet protection (RFC 9001 §5.3, §5.4)."""

    def __init__(self, version: int, dcid: bytes, is_client: bool) -> None:
        key, self.iv, hp = initial_keys(version, dcid, is_client)
        self.aead = AESGCM(key)
        self.hp = Cipher(algorithms.AES(hp), modes.ECB())

    def open(self, packet: bytes, pn_offset: int, end: int) -> bytes:
        """The decrypted payload of the protected packet ``packet[:end]``."""
        sample = packet[pn_offset + 4 : pn_offset + 20]
        if len(sample) < 16:
            raise _Malformed
        mask = self.hp.encryptor().update(sample)
        first = packet[0] ^ (mask[0] & 0x0F)
        pn_len = (first & 0x03) + 1
        pn_bytes = bytes(
            b ^ m for b, m in zip(packet[pn_offset : pn_offset + pn_len], mask[1:], strict=False)
        )
        header = bytes([first]) + packet[1:pn_offset] + pn_bytes
        nonce = bytes(a ^ b for a, b in zip(self.iv, bytes(12 - pn_len) + pn_bytes, strict=True))
        try:
            return self.aead.decrypt(nonce, packet[pn_offset + pn_len : end], header)
        except InvalidTag as exc:
            raise _Malformed from exc


def _crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of the CRYPTO frames of an Initial packet's payload."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(payload):
        if payload[pos] == _PADDING:  # a client pads its Initials to 1200 bytes, a frame a byte
            pos = len(payload) - len(payload[pos:].lstrip(b"\x00"))
            continue
        ftype, pos = _varint(payload, pos)
        if ftype == _PING:
            continue
        if ftype in (0x02, 0x03):  # ACK: largest, delay, range count, first range, ranges
            _, pos = _varint(payload, pos)
            _, pos = _varint(payload, pos)
            count, pos = _varint(payload, pos)
            _, pos = _varint(payload, pos)
            for _ in range(2 * count + (3 if ftype == 0x03 else 0)):
                _, pos = _varint(payload, pos)
        elif ftype == _CRYPTO:
            offset, pos = _varint(payload, pos)
            length, pos = _varint(payload, pos)
            if pos + length > len(payload):
                raise _Malformed
            out.append((offset, payload[pos : pos + length]))
            pos += length
        else:  # CONNECTION_CLOSE or anything an Initial should not carry: the rest is unread
            break
    return out


def initial_header(datagram: bytes, pos: int = 0) -> tuple[int, bytes, int, int] | None:
    """(version, DCID, packet-number offset, packet end) of the Initial packet at ``pos``, or
    None when the long-header packet there is of another type or version."""
    if len(datagram) - pos < 7 or datagram[pos] & 0xC0 != 0xC0:
        return None
    version = int.from_bytes(datagram[pos + 1 : pos + 5], "big")
    known = VERSIONS.get(version)
    if known is None or (datagram[pos] >> 4) & 0x03 != known[2]:
        return None
    at = pos + 5
    dcid_len = datagram[at]
    if dcid_len > 20:
        return None
    dcid = datagram[at + 1 : at + 1 + dcid_len]
    at += 1 + dcid_len
    if at >= len(datagram) or datagram[at] > 20:
        return None
    at += 1 + datagram[at]
    try:
        token_len, at = _varint(datagram, at)
        at += token_len
        length, at = _varint(datagram, at)
    except _Malformed:
        return None
    if at + length > len(datagram) or length < 20:
        return None
    return version, dcid, at - pos, at + length


def _long_packets(datagram: bytes) -> list[tuple[int, int]]:
    """(start, end) of the long-header packets coalesced in a datagram (RFC 9000 §12.2)."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos + 7 <= len(datagram) and datagram[pos] & 0x80:
        at = pos + 5
        dcid_len = datagram[at]
        at += 1 + dcid_len
        if at >= len(datagram):
            break
        at += 1 + datagram[at]
        ptype = (datagram[pos] >> 4) & 0x03
        version = int.from_bytes(datagram[pos + 1 : pos + 5], "big")
        try:
            if version in VERSIONS and ptype == VERSIONS[version][2]:  # Initial: a token first
                token_len, at = _varint(datagram, at)
                at += token_len
            if ptype == (3 if version != 0x6B3343CF else 0):  # Retry: the rest of the datagram
                out.append((pos, len(datagram)))
                break
            length, at = _varint(datagram, at)
        except _Malformed:
            break
        if at + length > len(datagram):
            break
        out.append((pos, at + length))
        pos = at + length
    return out


def _hello_done(chunks: dict[int, bytes]) -> bool:
    """Whether a direction's CRYPTO data from offset 0 holds a whole first handshake message."""
    first = chunks.get(0)
    if first is None or len(first) < 4:
        return False
    need = 4 + int.from_bytes(first[1:4], "big")
    have = 0
    for offset in sorted(chunks):
        if offset > have:
            return False
        have = max(have, offset + len(chunks[offset]))
        if have >= need:
            return True
    return False


def _records(stream: bytes) -> bytes:
    """The handshake stream as TLS handshake records (what the SSL analyser reads)."""
    return b"".join(
        b"\x16\x03\x03" + len(stream[i : i + 16384]).to_bytes(2, "big") + stream[i : i + 16384]
        for i in range(0, len(stream), 16384)
    )


class QUICAnalyzer:
    """QUIC's Initial packets: the handshake to the SSL analyser, as Zeek's QUIC analyser does."""

    service: ClassVar[str] = "quic"
    table: ClassVar[str] = "ssl"  # its rows are the SSL analyser's (``Analysis.inner``)
    schema: ClassVar[pa.Schema] = SCHEMA
    transports: ClassVar[tuple[str, ...]] = ("udp",)
    views: ClassVar[bool] = True  # datagrams may be views of the capture: only Initials are copied
    prefixes: ClassVar[tuple[bytes, ...]] = ()
    # Zeek's quic_ports (HTTP/3, DNS over QUIC and its early port); like Zeek, by port only.
    ports: ClassVar[tuple[tuple[str, int], ...]] = (("udp", 443), ("udp", 853), ("udp", 784))

    def matches(self, proto: str, orig_p: int, resp_p: int, orig: bytes, resp: bytes) -> bool:
        """The originator's first datagram opens with an Initial packet of a known version."""
        return proto == "udp" and initial_header(orig) is not None

    def analyze(self, conv: Conversation) -> Analysis:
        crypto: dict[bool, dict[int, bytes]] = {True: {}, False: {}}
        first_ts: dict[bool, float] = {}
        keys: dict[tuple[int, bytes, bool], _Keys] = {}
        dcid: bytes | None = None
        decrypted = False
        for seg in conv.segments:
            if not seg.data or not seg.data[0] & 0x80:
                continue  # a short-header packet: protected by keys no observer has
            if _hello_done(crypto[True]) and _hello_done(crypto[False]):
                break  # both hellos read: later Initials only repeat or acknowledge them
            data = bytes(seg.data)
            for start, end in _long_packets(data):
                head = initial_header(data, start)
                if head is None:
                    continue
                version, packet_dcid, pn_offset, _ = head
                if seg.is_orig:
                    dcid = packet_dcid  # a Retry gives the client a new one; keys follow it
                if dcid is None:
                    continue
                key = (version, dcid, seg.is_orig)
                if key not in keys:
                    keys[key] = _Keys(version, dcid, seg.is_orig)
                try:
                    payload = keys[key].open(data[start:end], pn_offset, end - start)
                    frames = _crypto_frames(payload)
                except _Malformed:
                    continue
                decrypted = True
                for offset, chunk in frames:
                    if offset + len(chunk) <= MAX_CRYPTO:
                        crypto[seg.is_orig].setdefault(offset, chunk)
                        first_ts.setdefault(seg.is_orig, seg.ts)
        if not decrypted:
            return Analysis(confirmed=False)
        segments = []
        for is_orig in (True, False):
            stream = bytearray()
            for offset in sorted(crypto[is_orig]):
                chunk = crypto[is_orig][offset]
                if offset > len(stream):
                    break  # a hole: the rest is not contiguous
                stream += chunk[len(stream) - offset :]
            if stream:
                segments.append(Segment(first_ts[is_orig], is_orig, _records(bytes(stream))))
        segments.sort(key=lambda s: s.ts)
        inner = handover.by_service("ssl", handover.child(conv, segments)) if segments else None
        return Analysis(confirmed=True, inner=[inner] if inner else [])


register(QUICAnalyzer())
